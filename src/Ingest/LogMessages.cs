using Microsoft.Extensions.Logging;

namespace Attribution.Ingest;

/// <summary>Every log line of Ingest, with stable event ids (5xxx). No payloads are logged.</summary>
internal static partial class LogMessages
{
    [LoggerMessage(5001, LogLevel.Information, "Ingest following {Directory} as run {RunId} ({Mode})")]
    public static partial void IngestStarted(this ILogger logger, string directory, string runId, string mode);

    [LoggerMessage(5002, LogLevel.Information, "Run {RunId} step {Step}: published {Examples} examples in {Events} batch events, then checkpoint {Checksum}")]
    public static partial void CheckpointPublished(this ILogger logger, string runId, long step, int examples, int events, string checksum);

    [LoggerMessage(5003, LogLevel.Debug, "Run {RunId} step {Step}: already published ({Checksum}), skipped")]
    public static partial void CheckpointSkipped(this ILogger logger, string runId, long step, string checksum);

    [LoggerMessage(5004, LogLevel.Warning, "Run directory {Directory}: {Error}; will retry at the next scan")]
    public static partial void ScanFailed(this ILogger logger, string directory, string error);

    [LoggerMessage(5005, LogLevel.Information, "Ingest finished: {Published} checkpoints published, {Skipped} already there")]
    public static partial void IngestFinished(this ILogger logger, long published, long skipped);

    [LoggerMessage(5006, LogLevel.Error, "Ingest stopped on an error")]
    public static partial void IngestFailed(this ILogger logger, Exception error);
}
