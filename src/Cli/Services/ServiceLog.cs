using Microsoft.Extensions.Logging;

namespace Attribution.Cli.Services;

/// <summary>Stable-id log messages of the service commands.</summary>
internal static partial class ServiceLog
{
    [LoggerMessage(EventId = 1201, Level = LogLevel.Information, Message = "Started {Services} on Kafka {Bootstrap}; SIGINT/SIGTERM stops it gracefully")]
    public static partial void Started(ILogger logger, string services, string bootstrap);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Error, Message = "Could not start: {Reason}")]
    public static partial void StartFailed(ILogger logger, string reason, Exception exception);

    [LoggerMessage(EventId = 1207, Level = LogLevel.Debug, Message = "Start failed")]
    public static partial void StartFailedDetail(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1203, Level = LogLevel.Error, Message = "Service failed: {Failure}")]
    public static partial void ServiceFailed(ILogger logger, string failure);

    [LoggerMessage(EventId = 1204, Level = LogLevel.Information, Message = "Stopped {How}")]
    public static partial void Stopped(ILogger logger, string how);

    [LoggerMessage(EventId = 1205, Level = LogLevel.Information, Message = "Health endpoint: http://localhost:{Port}/health")]
    public static partial void HealthListening(ILogger logger, int port);

    [LoggerMessage(EventId = 1206, Level = LogLevel.Warning, Message = "Health endpoint on port {Port} failed: {Reason}")]
    public static partial void HealthFailed(ILogger logger, int port, string reason);

    [LoggerMessage(EventId = 1210, Level = LogLevel.Information, Message = "ingest: {Published} checkpoints published, {Skipped} already there, {Batches} batch events")]
    public static partial void IngestStatus(ILogger logger, long published, long skipped, long batches);

    [LoggerMessage(EventId = 1211, Level = LogLevel.Information, Message = "simulator: {Probes} probes published, {Skipped} already there, {Sets} probe sets complete, {DeadLettered} dead-lettered")]
    public static partial void SimulatorStatus(ILogger logger, long probes, long skipped, long sets, long deadLettered);

    [LoggerMessage(EventId = 1212, Level = LogLevel.Information, Message = "scorer: model {Model}; {Scored} queries scored, {Rejected} rejected, {Duplicates} duplicates skipped, {Alerts} alerts; latency p50 {P50Ms:F1} ms, p99 {P99Ms:F1} ms")]
    public static partial void ScorerStatus(ILogger logger, string model, long scored, long rejected, long duplicates, long alerts, double p50Ms, double p99Ms);
}
