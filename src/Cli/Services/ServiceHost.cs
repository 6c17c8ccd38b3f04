using System.Globalization;
using Attribution.Ingest;
using Attribution.Observability;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Serilog.Extensions.Logging;

namespace Attribution.Cli.Services;

/// <summary>Which services one process runs.</summary>
[Flags]
internal enum ServiceRoles
{
    None = 0,
    Ingest = 1,
    Simulator = 2,
    Scorer = 4,
    All = Ingest | Simulator | Scorer,
}

internal static class ServiceRolesParser
{
    public static bool TryParse(IReadOnlyList<string> names, out ServiceRoles roles, out string? error)
    {
        roles = names.Count == 0 ? ServiceRoles.All : ServiceRoles.None;
        error = null;
        foreach (var name in names)
        {
            var role = name.ToLowerInvariant() switch
            {
                "ingest" => ServiceRoles.Ingest,
                "simulator" or "simulate" => ServiceRoles.Simulator,
                "scorer" or "score" => ServiceRoles.Scorer,
                _ => ServiceRoles.None,
            };
            if (role == ServiceRoles.None)
            {
                error = $"unknown service '{name}': use any of ingest, simulator, scorer.";
                return false;
            }

            roles |= role;
        }

        return true;
    }

    public static string Describe(ServiceRoles roles) =>
        string.Join('+', new[] { (ServiceRoles.Ingest, "ingest"), (ServiceRoles.Simulator, "simulator"), (ServiceRoles.Scorer, "scorer") }
            .Where(r => roles.HasFlag(r.Item1)).Select(r => r.Item2));
}

/// <summary>What the service commands share.</summary>
internal sealed record ServiceHostSettings
{
    public string? KafkaBootstrap { get; init; }

    public string? RabbitMq { get; init; }

    public string? ConfigFile { get; init; }

    public IReadOnlyList<string> Overrides { get; init; } = [];

    public int? HealthPort { get; init; }

    public double StatusSeconds { get; init; } = 10;

    public bool Verbose { get; init; }
}

/// <summary>Thrown for configuration a service cannot start with; the message says what and how to fix it.</summary>
internal sealed class ServiceConfigurationException(string message) : Exception(message);

/// <summary>
/// Runs the chosen services in one generic host over Kafka until SIGINT/SIGTERM (or, for <c>ingest</c> alone in
/// once mode, until the run is published). Exit codes: 0 clean stop, 1 a service failed, 2 bad configuration.
/// </summary>
internal static class ServiceHost
{
    public static async Task<int> RunAsync(ServiceRoles roles, ServiceHostSettings settings, IReadOnlyDictionary<string, string?> serviceSettings, CancellationToken cancellationToken)
    {
        IConfigurationRoot configuration;
        try
        {
            configuration = BuildConfiguration(roles, settings, serviceSettings);
        }
        catch (ServiceConfigurationException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }

        using var loggerFactory = CliLogging.CreateFactory(settings.Verbose);
        var logger = loggerFactory.CreateLogger("pipeline." + ServiceRolesParser.Describe(roles));
        IHost host;
        try
        {
            host = Build(roles, configuration, settings);
            ValidateOptions(host.Services, roles);
        }
        catch (Exception e) when (e is OptionsValidationException or ArgumentException or InvalidOperationException)
        {
            var message = e is OptionsValidationException v ? string.Join(" ", v.Failures) : e.Message;
            Console.Error.WriteLine($"error: invalid configuration: {message}");
            return 2;
        }

        using var disposeHost = host;
        try
        {
            // Before any service starts: the event log (a librdkafka that does not load, a cluster out of reach) and the
            // topics of every service hosted here, so an operator error is one line (exit 2; 1 when it may pass), no
            // stack trace; --verbose logs the exception.
            await new TopicProvisioner(host.Services.GetRequiredService<IEventLog>(), logger).EnsureAsync(RequiredTopics(host.Services, roles), cancellationToken);
        }
        catch (Exception e) when (e is TopicProvisioningException or EventLogException)
        {
            ServiceLog.StartFailedDetail(logger, e);
            Console.Error.WriteLine($"error: {e.Message}");
            return e is EventLogException { IsTransient: true } ? 1 : 2;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return 0;
        }

        try
        {
            await host.StartAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
        catch (Exception e)
        {
            ServiceLog.StartFailed(logger, e.Message, e);
            return 1;
        }

        ServiceLog.Started(logger, ServiceRolesParser.Describe(roles), configuration["Transport:Kafka:BootstrapServers"] ?? "");
        using var health = settings.HealthPort is { } port ? HealthEndpoint.Start(host.Services, port, logger) : null;
        _ = host.Services.GetService<SimulatorInstruments>();
        using var status = settings.StatusSeconds > 0 ? new StatusReporter(host.Services, logger, TimeSpan.FromSeconds(settings.StatusSeconds)) : null;
        try
        {
            // Waits for SIGINT/SIGTERM (the token), or for a service that stops the host (ingest once, a failure).
            await host.WaitForShutdownAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Shutdown was requested while stopping; the host has drained what it could.
        }

        status?.Report();
        var failures = host.Services.GetServices<IHostedService>().OfType<BackgroundService>()
            .Where(s => s.ExecuteTask is { IsFaulted: true }).Select(s => $"{s.GetType().Name}: {s.ExecuteTask!.Exception!.GetBaseException().Message}").ToList();
        if (roles.HasFlag(ServiceRoles.Ingest) && host.Services.GetRequiredService<IngestWorker>().LastError is { } ingestError)
        {
            failures.Add($"IngestWorker: {ingestError}");
        }

        foreach (var f in failures)
        {
            ServiceLog.ServiceFailed(logger, f);
        }

        ServiceLog.Stopped(logger, failures.Count == 0 ? "cleanly" : $"with {failures.Count} failure(s)");
        return failures.Count == 0 ? 0 : 1;
    }

    /// <summary>The topics the hosted services will ask for.</summary>
    private static IEnumerable<TopicSpec> RequiredTopics(IServiceProvider services, ServiceRoles roles) =>
        [
            .. roles.HasFlag(ServiceRoles.Ingest) ? services.GetRequiredService<IOptions<IngestOptions>>().Value.RequiredTopics() : [],
            .. roles.HasFlag(ServiceRoles.Simulator) ? services.GetRequiredService<IOptions<SimulatorOptions>>().Value.RequiredTopics() : [],
            .. roles.HasFlag(ServiceRoles.Scorer) ? services.GetRequiredService<IOptions<ScorerOptions>>().Value.RequiredTopics() : [],
        ];

    /// <summary>Resolves each service's options so a bad setting is reported as one line before anything starts.</summary>
    private static void ValidateOptions(IServiceProvider services, ServiceRoles roles)
    {
        _ = services.GetRequiredService<IOptions<TransportOptions>>().Value;
        if (roles.HasFlag(ServiceRoles.Ingest))
        {
            _ = services.GetRequiredService<IOptions<IngestOptions>>().Value;
        }

        if (roles.HasFlag(ServiceRoles.Simulator))
        {
            _ = services.GetRequiredService<IOptions<SimulatorOptions>>().Value;
        }

        if (roles.HasFlag(ServiceRoles.Scorer))
        {
            _ = services.GetRequiredService<IOptions<ScorerOptions>>().Value;
        }
    }

    /// <summary>Defaults, then the config file, then environment variables, then the command's options, then --set.</summary>
    internal static IConfigurationRoot BuildConfiguration(ServiceRoles roles, ServiceHostSettings settings, IReadOnlyDictionary<string, string?> serviceSettings)
    {
        var builder = new ConfigurationBuilder();
        builder.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Transport:Kafka:ClientId"] = "pipeline-" + ServiceRolesParser.Describe(roles),
            // A Scorer process alone: one BLAS thread leaves a core to the transport (measured: more q/s, lower p99).
            // One batch at a time: two gave ~8 % more q/s over Kafka but a higher p99 (docs/benchmarks/pipeline.md).
            ["Scorer:BlasThreads"] = roles == ServiceRoles.Scorer ? "1" : null,
        });
        if (settings.ConfigFile is { } file)
        {
            var full = Path.GetFullPath(file);
            if (!File.Exists(full))
            {
                throw new ServiceConfigurationException($"configuration file '{full}' does not exist (--config): give a JSON file with Transport/Ingest/Simulator/Scorer sections, see docs/SERVICES.md.");
            }

            builder.AddJsonFile(full, optional: false, reloadOnChange: false);
        }

        builder.AddEnvironmentVariables();
        var named = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (settings.KafkaBootstrap is { } kafka)
        {
            named["Transport:Kind"] = "kafka";
            named["Transport:Kafka:BootstrapServers"] = kafka;
        }

        if (settings.RabbitMq is { } rabbit)
        {
            var (host, port) = SplitHostPort(rabbit, 5672, "--rabbitmq");
            named["Transport:AlertBus:Kind"] = "rabbitmq";
            named["Transport:AlertBus:RabbitMq:Host"] = host;
            named["Transport:AlertBus:RabbitMq:Port"] = port.ToString(CultureInfo.InvariantCulture);
        }

        foreach (var (k, v) in serviceSettings)
        {
            named[k] = v;
        }

        builder.AddInMemoryCollection(named);
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var pair in settings.Overrides)
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !pair[..eq].Contains(':', StringComparison.Ordinal))
            {
                throw new ServiceConfigurationException($"--set '{pair}' is not Section:Key=Value (for example --set Scorer:MaxBatch=32).");
            }

            overrides[pair[..eq].Trim()] = pair[(eq + 1)..];
        }

        builder.AddInMemoryCollection(overrides);
        IConfigurationRoot configuration;
        try
        {
            configuration = builder.Build();
        }
        catch (Exception e) when (e is FormatException or InvalidDataException)
        {
            throw new ServiceConfigurationException($"configuration file '{settings.ConfigFile}' is not valid JSON: {e.GetBaseException().Message}");
        }

        try
        {
            // Telemetry:Traces and the OTLP settings: a value the exporter cannot honour stops the command (exit 2).
            _ = TraceExportOptions.From(configuration);
        }
        catch (ArgumentException e)
        {
            throw new ServiceConfigurationException(e.Message);
        }

        if (!string.Equals(configuration["Transport:Kind"], "kafka", StringComparison.OrdinalIgnoreCase))
        {
            throw new ServiceConfigurationException(
                "a service started on its own needs a Kafka cluster: give --kafka HOST:PORT (or Transport__Kind=kafka and " +
                "Transport__Kafka__BootstrapServers). The embedded event log lives inside one process; './pipeline demo' runs every service in it. " +
                "For a local Kafka-protocol cluster: dotnet run --project infra/MockKafka -- --pipeline-topics 4.");
        }

        if (roles.HasFlag(ServiceRoles.Ingest) && string.IsNullOrWhiteSpace(configuration["Ingest:RunDirectory"]))
        {
            throw new ServiceConfigurationException("ingest needs a run directory: give --run DIR (a './pipeline train' output, or a trainer's checkpoints/ + batches/ directory).");
        }

        return configuration;
    }

    private static (string Host, int Port) SplitHostPort(string value, int defaultPort, string option)
    {
        var colon = value.LastIndexOf(':');
        if (colon < 0)
        {
            return (value, defaultPort);
        }

        if (!int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new ServiceConfigurationException($"{option} '{value}': the port must be a number from 1 to 65535 (host or host:port).");
        }

        return (value[..colon], port);
    }

    private static IHost Build(ServiceRoles roles, IConfigurationRoot configuration, ServiceHostSettings settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddConfiguration(configuration);
        // Ingest alone in once mode is a job: it stops the host when the run is published.
        if (roles == ServiceRoles.Ingest && !string.Equals(configuration["Ingest:Mode"], "follow", StringComparison.OrdinalIgnoreCase))
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Ingest:StopHostWhenDone"] = "true" });
        }

        builder.Services.Configure<HostOptions>(o =>
        {
            o.ShutdownTimeout = TimeSpan.FromSeconds(25);
            o.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.StopHost;
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        var serilog = CliLogging.CreateSerilog(settings.Verbose);
        builder.Logging.AddProvider(new SerilogLoggerProvider(serilog, dispose: true));
        builder.Services.AddEventLog(builder.Configuration);
        builder.Services.AddAlertBus(builder.Configuration);
        // Prometheus scrapes GET /metrics beside /health on the health port; traces follow queries by their traceparent.
        builder.Services.AddPipelineTelemetry(settings.HealthPort, configuration: builder.Configuration);
        if (roles.HasFlag(ServiceRoles.Ingest))
        {
            builder.Services.AddIngest(builder.Configuration);
        }

        if (roles.HasFlag(ServiceRoles.Simulator))
        {
            builder.Services.AddSimulator(builder.Configuration);
        }

        if (roles.HasFlag(ServiceRoles.Scorer))
        {
            builder.Services.AddScorer(builder.Configuration);
        }

        return builder.Build();
    }
}
