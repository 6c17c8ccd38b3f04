using Microsoft.Extensions.Logging;

namespace Attribution.Simulator;

/// <summary>Every log line of the Simulator, with stable event ids (6xxx). No payloads are logged.</summary>
internal static partial class LogMessages
{
    [LoggerMessage(6001, LogLevel.Information, "Run {RunId} step {Step}: {Examples} examples in {Sources} sources; {DoneExamples} example probes already published; simulating the share of {Share}")]
    public static partial void SimulationPlanned(this ILogger logger, string runId, long step, int examples, int sources, int doneExamples, string share);

    [LoggerMessage(6002, LogLevel.Information, "Run {RunId} step {Step}: step size {StepSize}, probe format {Format} ({Bytes} bytes per example probe)")]
    public static partial void SimulatorReady(this ILogger logger, string runId, long step, float stepSize, string format, int bytes);

    [LoggerMessage(6003, LogLevel.Debug, "Run {RunId} step {Step}: published {Count} {Subject} probes ({Done}/{Total})")]
    public static partial void BlockPublished(this ILogger logger, string runId, long step, int count, string subject, int done, int total);

    [LoggerMessage(6004, LogLevel.Information, "Run {RunId} step {Step}: probe set complete ({Probes} probes, {Published} published now) in {Seconds:F1} s")]
    public static partial void ProbeSetComplete(this ILogger logger, string runId, long step, long probes, long published, double seconds);

    [LoggerMessage(6005, LogLevel.Warning, "Probe-set-complete message for run {RunId} step {Step} could not be published on the alert bus")]
    public static partial void ControlPublishFailed(this ILogger logger, Exception error, string runId, long step);

    [LoggerMessage(6006, LogLevel.Information, "Run {RunId} step {Step}: span index of {Documents} documents ({Tokens} tokens, {Bytes} bytes) published at {Uri}")]
    public static partial void SpanIndexPublished(this ILogger logger, string runId, long step, int documents, long tokens, long bytes, string uri);
}
