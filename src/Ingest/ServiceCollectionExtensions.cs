using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Attribution.Ingest;

/// <summary>Registers the Ingest service.</summary>
public static class IngestServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="IngestWorker"/> (hosted; also resolvable as itself for its counters), its options from the
    /// <c>Ingest</c> section validated at start-up, and the "ingest" health check. Needs <c>AddEventLog</c>.
    /// </summary>
    public static IServiceCollection AddIngest(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return services.AddIngest(o => configuration.GetSection(IngestOptions.SectionName).Bind(o));
    }

    /// <summary>As <see cref="AddIngest(IServiceCollection, IConfiguration)"/>, configured in code.</summary>
    public static IServiceCollection AddIngest(this IServiceCollection services, Action<IngestOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<IngestOptions>().Configure(configure).ValidateOnStart();
        services.AddSingleton<IValidateOptions<IngestOptions>, IngestOptionsValidator>();
        services.AddSingleton<IngestWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<IngestWorker>());
        services.AddHealthChecks().AddCheck<IngestHealthCheck>("ingest", tags: ["ingest"]);
        return services;
    }
}

/// <summary>Unhealthy while the last scan failed (the error says why).</summary>
public sealed class IngestHealthCheck(IngestWorker worker) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(worker.LastError is { } e
            ? HealthCheckResult.Unhealthy(e)
            : HealthCheckResult.Healthy($"{worker.CheckpointsPublished} checkpoints published, {worker.CheckpointsSkipped} skipped"));
}
