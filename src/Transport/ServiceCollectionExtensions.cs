using Attribution.Transport.Alerts;
using Attribution.Transport.Embedded;
using Attribution.Transport.Kafka;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Attribution.Transport;

/// <summary>Registers the event log and the alert bus.</summary>
public static class ServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="IEventLog"/> (embedded or Kafka, from <c>Transport:Kind</c>), a shared
    /// <see cref="IEventProducer"/>, <see cref="TransportOptions"/> validated at start-up, and the "event-log" health check.
    /// </summary>
    public static IServiceCollection AddEventLog(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return services.AddEventLog(o => configuration.GetSection(TransportOptions.SectionName).Bind(o));
    }

    /// <summary>As <see cref="AddEventLog(IServiceCollection, IConfiguration)"/>, configured in code.</summary>
    public static IServiceCollection AddEventLog(this IServiceCollection services, Action<TransportOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<TransportOptions>().Configure(configure).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TransportOptions>, TransportOptionsValidator>();
        services.AddSingleton<IEventLog>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<TransportOptions>>().Value;
            return options.UsesKafka
                ? new KafkaEventLog(options.Kafka, sp.GetService<ILoggerFactory>())
                : new EmbeddedEventLog(options.Embedded, sp.GetService<TimeProvider>());
        });
        services.AddSingleton(sp => sp.GetRequiredService<IEventLog>().CreateProducer());
        services.AddHealthChecks().AddCheck<EventLogHealthCheck>("event-log", tags: ["transport"]);
        return services;
    }

    /// <summary>
    /// Registers MassTransit for alerts and control events, bound from <c>Transport:AlertBus</c> (in-memory unless
    /// <c>Kind</c> is "rabbitmq"). <paramref name="configureConsumers"/> adds consumers (e.g. an alert monitor).
    /// </summary>
    public static IServiceCollection AddAlertBus(this IServiceCollection services, IConfiguration configuration, Action<IBusRegistrationConfigurator>? configureConsumers = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = new AlertBusOptions();
        configuration.GetSection(TransportOptions.SectionName + ":AlertBus").Bind(options);
        return services.AddAlertBus(options, configureConsumers);
    }

    /// <summary>
    /// Registers MassTransit for alerts and control events with <paramref name="options"/>. Consumers added through
    /// <paramref name="configureConsumers"/> get endpoints by convention. Publish with <see cref="IPublishEndpoint"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid (checked here, at registration).</exception>
    public static IServiceCollection AddAlertBus(this IServiceCollection services, AlertBusOptions options, Action<IBusRegistrationConfigurator>? configureConsumers = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Validate() is { } error)
        {
            throw new ArgumentException(error, nameof(options));
        }

        services.AddSingleton(Options.Create(options));
        services.AddMassTransit(x =>
        {
            // MassTransit 8 reports usage telemetry to its vendor over the internet by default; a data pipeline must
            // not phone home (and here it cannot: the call fails and logs a warning).
            x.DisableUsageTelemetry();
            configureConsumers?.Invoke(x);
            if (options.UsesRabbitMq)
            {
                var r = options.RabbitMq;
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(r.Host, (ushort)r.Port, r.VirtualHost, h =>
                    {
                        h.Username(r.Username);
                        h.Password(r.Password);
                    });
                    cfg.ConfigureEndpoints(context);
                });
            }
            else
            {
                x.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
            }
        });
        return services;
    }
}
