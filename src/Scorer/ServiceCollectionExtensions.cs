using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Attribution.Scorer;

/// <summary>Registers the Scorer service.</summary>
public static class ScorerServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="ScorerWorker"/> (hosted; also resolvable as itself), <see cref="ProbeIndex"/>,
    /// <see cref="ScorerMetrics"/>, options from the <c>Scorer</c> section validated at start-up, and the "scorer" health
    /// check. Needs <c>AddEventLog</c>; publishes contamination alerts when <c>AddAlertBus</c> is registered too.
    /// </summary>
    public static IServiceCollection AddScorer(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return services.AddScorer(o => configuration.GetSection(ScorerOptions.SectionName).Bind(o));
    }

    /// <summary>As <see cref="AddScorer(IServiceCollection, IConfiguration)"/>, configured in code.</summary>
    public static IServiceCollection AddScorer(this IServiceCollection services, Action<ScorerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<ScorerOptions>().Configure(configure).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ScorerOptions>, ScorerOptionsValidator>();
        services.AddSingleton<ScorerMetrics>();
        services.AddSingleton<ProbeIndex>();
        services.AddSingleton<ScorerWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<ScorerWorker>());
        services.AddHealthChecks().AddCheck<ScorerHealthCheck>("scorer", tags: ["scorer"]);
        return services;
    }
}

/// <summary>Degraded until a probe set is live (queries wait), unhealthy when the worker stopped on a fatal error.</summary>
public sealed class ScorerHealthCheck(ScorerWorker worker) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var m = worker.Metrics;
        var model = worker.Index.Scorer;
        var text = $"model {model?.Version ?? "none yet"}; {m.QueriesScored} scored, {m.QueriesRejected} rejected, {m.DuplicatesSkipped} duplicates skipped, {m.QueriesRerouted} re-keyed, p50 {m.LatencyP50Micros} us, p99 {m.LatencyP99Micros} us";
        return Task.FromResult(worker.ExecuteTask is { IsFaulted: true } ? HealthCheckResult.Unhealthy(text, worker.ExecuteTask.Exception)
            : model is null ? HealthCheckResult.Degraded(text + (worker.Index.LastError is { } e ? $"; {e}" : "")) : HealthCheckResult.Healthy(text));
    }
}
