using Attribution.Transport.Messages;
using Microsoft.Extensions.Logging;

namespace Attribution.Scorer;

/// <summary>Every log line of the Scorer, with stable event ids (7xxx). No query contents are logged.</summary>
internal static partial class LogMessages
{
    [LoggerMessage(7001, LogLevel.Information, "Scorer index: probe set {Version} is live ({Examples} examples, {Sources} sources, {Format}) after {Seconds:F2} s")]
    public static partial void ModelSwapped(this ILogger logger, string version, int examples, int sources, string format, double seconds);

    [LoggerMessage(7009, LogLevel.Information, "Scorer index: serving {Version} ({Examples} examples, {Sources} sources, method {Method}) built from its run")]
    public static partial void ScorerServed(this ILogger logger, string version, int examples, int sources, string method);

    [LoggerMessage(7002, LogLevel.Warning, "Scorer index: probe set {Version} cannot be used: {Error}")]
    public static partial void ModelRejected(this ILogger logger, string version, string error);

    [LoggerMessage(7003, LogLevel.Warning, "Scorer index: skipped probe {Record}: {Error}")]
    public static partial void ProbeSkipped(this ILogger logger, string record, string error);

    [LoggerMessage(7004, LogLevel.Information, "Query {QueryId} at {Record} already has an attribution (a duplicate, or redelivered after a restart or rebalance); skipped")]
    public static partial void DuplicateSkipped(this ILogger logger, string queryId, string record);

    [LoggerMessage(7005, LogLevel.Warning, "Contamination: query {QueryId} flagged by rule {Rule}: {Score:G3} (threshold {Threshold:G3})")]
    public static partial void Contamination(this ILogger logger, string queryId, AlertRule rule, double score, double threshold);

    [LoggerMessage(7006, LogLevel.Warning, "Alert for query {QueryId} could not be published on the alert bus")]
    public static partial void AlertPublishFailed(this ILogger logger, Exception error, string queryId);

    [LoggerMessage(7008, LogLevel.Information, "Query {QueryId} at {Record} is not on its id's partition {Home}; re-keyed there (the copy on its home is attributed)")]
    public static partial void QueryRerouted(this ILogger logger, string queryId, string record, int home);

    [LoggerMessage(7007, LogLevel.Error, "Scorer index follower stopped")]
    public static partial void IndexFailed(this ILogger logger, Exception error);

    [LoggerMessage(7010, LogLevel.Information, "Scorer index: span index of {Version} loaded ({Documents} documents, {Tokens} tokens) in {Seconds:F2} s")]
    public static partial void SpanIndexLoaded(this ILogger logger, string version, int documents, long tokens, double seconds);

    [LoggerMessage(7011, LogLevel.Warning, "Scorer index: span index {Record} dead-lettered: {Error}")]
    public static partial void SpanIndexRejected(this ILogger logger, string record, string error);
}
