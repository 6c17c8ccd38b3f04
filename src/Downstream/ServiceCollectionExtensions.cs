using Attribution.Downstream.Feed;
using Attribution.Downstream.Ledger;
using Attribution.Downstream.Store;
using Attribution.Downstream.Web;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Attribution.Downstream;

/// <summary>Registers the downstream consumers of the attribution stream.</summary>
public static class DownstreamServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="AttributionFeed"/> (hosted) and its sinks: <see cref="SourceLedger"/> (published by the hosted
    /// <see cref="LedgerPublisher"/>), <see cref="AttributionStore"/> (DuckDB) and <see cref="LiveAttributions"/>; plus
    /// <see cref="AlertFeed"/>, <see cref="TrainingCatalog"/> and <see cref="DownstreamOptions"/> from the <c>Downstream</c>
    /// section, validated at start-up. Needs <c>AddEventLog</c> (or an <c>IEventLog</c> and <c>IEventProducer</c>).
    /// </summary>
    public static IServiceCollection AddDownstream(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<DownstreamOptions>().Bind(configuration.GetSection(DownstreamOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<DownstreamOptions>, DownstreamOptionsValidator>();
        services.AddSingleton(sp => TrainingCatalog.Load(sp.GetRequiredService<IOptions<DownstreamOptions>>().Value.RunDirectory));
        services.AddSingleton<SourceLedger>();
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<DownstreamOptions>>().Value;
            return new AttributionStore(o.StorePath, o.Retention, sp.GetRequiredService<TrainingCatalog>(), sp.GetService<TimeProvider>());
        });
        services.AddSingleton(sp => new LiveAttributions(sp.GetRequiredService<IOptions<DownstreamOptions>>().Value.LiveWindow));
        services.AddSingleton<IAttributionSink>(sp => sp.GetRequiredService<SourceLedger>());
        services.AddSingleton<IAttributionSink>(sp => sp.GetRequiredService<AttributionStore>());
        services.AddSingleton<IAttributionSink>(sp => sp.GetRequiredService<LiveAttributions>());
        services.TryAddSingleton<AlertFeed>();
        services.AddSingleton<AttributionFeed>();
        services.AddHostedService(sp => sp.GetRequiredService<AttributionFeed>());
        services.AddHealthChecks().AddCheck<DownstreamHealthCheck>("downstream", tags: ["downstream"]);
        services.AddSingleton(sp => new DownstreamInstruments(sp.GetRequiredService<AttributionFeed>(), sp.GetRequiredService<AttributionStore>(),
            sp.GetRequiredService<LedgerPublisher>(), sp.GetRequiredService<AlertFeed>(), sp.GetService<Flight.FlightSubscriptions>()));
        services.AddSingleton<LedgerPublisher>();
        services.AddHostedService(sp => sp.GetRequiredService<LedgerPublisher>());
        return services;
    }
}
