using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Attribution.Transport;

/// <summary>Reports whether the registered <see cref="IEventLog"/> is usable (Kafka: brokers answer metadata).</summary>
public sealed class EventLogHealthCheck(IEventLog log) : IHealthCheck
{
    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var health = await log.CheckHealthAsync(cancellationToken).ConfigureAwait(false);
        return health.Healthy ? HealthCheckResult.Healthy(health.Description) : HealthCheckResult.Unhealthy(health.Description);
    }
}
