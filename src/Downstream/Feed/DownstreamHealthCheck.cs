using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Attribution.Downstream.Feed;

/// <summary>Healthy while the feed runs (with its events, rejections and lag), unhealthy when it stopped on an error.</summary>
public sealed class DownstreamHealthCheck(AttributionFeed feed) : IHealthCheck
{
    /// <inheritdoc/>
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var text = $"{feed.Events} attributions read, {feed.Rejected} dead-lettered, lag {feed.Lag.Values.Sum()}";
        return Task.FromResult(feed.ExecuteTask is { IsFaulted: true } ? HealthCheckResult.Unhealthy(text, feed.ExecuteTask.Exception) : HealthCheckResult.Healthy(text));
    }
}
