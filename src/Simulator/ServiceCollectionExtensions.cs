using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Attribution.Simulator;

/// <summary>Registers the Simulator service.</summary>
public static class SimulatorServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="SimulatorWorker"/> (hosted; also resolvable as itself for counters and completion), its
    /// options from the <c>Simulator</c> section validated at start-up, and the "simulator" health check. Needs
    /// <c>AddEventLog</c>; publishes ProbeSetCompleteMessage when <c>AddAlertBus</c> is registered too.
    /// </summary>
    public static IServiceCollection AddSimulator(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return services.AddSimulator(o => configuration.GetSection(SimulatorOptions.SectionName).Bind(o));
    }

    /// <summary>As <see cref="AddSimulator(IServiceCollection, IConfiguration)"/>, configured in code.</summary>
    public static IServiceCollection AddSimulator(this IServiceCollection services, Action<SimulatorOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<SimulatorOptions>().Configure(configure).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SimulatorOptions>, SimulatorOptionsValidator>();
        services.AddSingleton<SimulatorWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<SimulatorWorker>());
        services.AddSingleton<SimulatorInstruments>();
        services.AddHealthChecks().AddCheck<SimulatorHealthCheck>("simulator", tags: ["simulator"]);
        return services;
    }
}

/// <summary>Reports the Simulator's progress; degraded once it dead-lettered a checkpoint.</summary>
public sealed class SimulatorHealthCheck(SimulatorWorker worker) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var text = $"{worker.ProbeSetsCompleted} probe sets, {worker.ProbesPublished} probes published, {worker.ProbesSkipped} skipped, {worker.DeadLetteredCount} checkpoints dead-lettered";
        return Task.FromResult(worker.ExecuteTask is { IsFaulted: true } ? HealthCheckResult.Unhealthy(text, worker.ExecuteTask.Exception)
            : worker.DeadLetteredCount > 0 ? HealthCheckResult.Degraded(text) : HealthCheckResult.Healthy(text));
    }
}
