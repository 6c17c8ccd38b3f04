using Microsoft.Extensions.Logging;

namespace Attribution.Transport;

/// <summary>Every log line of the transport, with stable event ids (1xxx). No payloads are logged.</summary>
internal static partial class LogMessages
{
    [LoggerMessage(1001, LogLevel.Warning, "Kafka client {Client} reported {Code}: {Reason}")]
    public static partial void KafkaClientError(this ILogger logger, string client, string code, string reason);

    [LoggerMessage(1002, LogLevel.Debug, "librdkafka {Client} [{Facility}] {Message}")]
    public static partial void KafkaClientLog(this ILogger logger, string client, string facility, string message);

    [LoggerMessage(1003, LogLevel.Warning, "Produce to {Topic} failed (attempt {Attempt}): {Error}; retrying in {DelayMs} ms")]
    public static partial void ProduceRetry(this ILogger logger, string topic, int attempt, string error, double delayMs);

    [LoggerMessage(1004, LogLevel.Warning, "Consumer of group {Group} got a transient error: {Error}")]
    public static partial void ConsumeError(this ILogger logger, string group, string error);

    [LoggerMessage(1005, LogLevel.Information, "Group {Group}: assigned {Partitions}")]
    public static partial void PartitionsAssigned(this ILogger logger, string group, string partitions);

    [LoggerMessage(1006, LogLevel.Information, "Group {Group}: revoked {Partitions}")]
    public static partial void PartitionsRevoked(this ILogger logger, string group, string partitions);

    [LoggerMessage(1007, LogLevel.Warning, "Group {Group}: partitions lost (not committed) {Partitions}")]
    public static partial void PartitionsLost(this ILogger logger, string group, string partitions);

    [LoggerMessage(1008, LogLevel.Warning, "Group {Group}: commit failed: {Error}")]
    public static partial void CommitFailed(this ILogger logger, string group, string error);

    [LoggerMessage(1009, LogLevel.Information, "Topic {Topic} created ({Partitions} partitions, compacted {Compacted})")]
    public static partial void TopicCreated(this ILogger logger, string topic, int partitions, bool compacted);

    [LoggerMessage(1010, LogLevel.Warning, "Admin request {Operation} failed (attempt {Attempt}): {Error}; retrying in {DelayMs} ms")]
    public static partial void AdminRetry(this ILogger logger, string operation, int attempt, string error, double delayMs);

    [LoggerMessage(1011, LogLevel.Information, "Kafka client: {Library}")]
    public static partial void LibrdkafkaLoaded(this ILogger logger, string library);

    [LoggerMessage(1012, LogLevel.Debug, "DescribeConfigs of {Topics} failed: {Error}")]
    public static partial void DescribeConfigsFailed(this ILogger logger, string topics, string error, Exception exception);

    [LoggerMessage(1013, LogLevel.Warning, "Could not create topic {Topic} ({Error}); using it only if it already exists and fits")]
    public static partial void TopicCreateFailed(this ILogger logger, string topic, string error);

    [LoggerMessage(1014, LogLevel.Warning, "Topic {Topic} is used without checking its cleanup.policy ({Reason})")]
    public static partial void TopicConfigUnverified(this ILogger logger, string topic, string reason);

    [LoggerMessage(1020, LogLevel.Information, "Worker {Worker} consuming {Topics} in group {Group}")]
    public static partial void WorkerStarted(this ILogger logger, string worker, string topics, string group);

    [LoggerMessage(1021, LogLevel.Information, "Worker {Worker} stopped after {Handled} events ({DeadLettered} dead-lettered)")]
    public static partial void WorkerStopped(this ILogger logger, string worker, long handled, long deadLettered);

    [LoggerMessage(1022, LogLevel.Warning, "Worker {Worker}: handling {Position} failed (attempt {Attempt}); retrying in {DelayMs} ms")]
    public static partial void HandlerRetry(this ILogger logger, Exception exception, string worker, string position, int attempt, double delayMs);

    [LoggerMessage(1023, LogLevel.Error, "Worker {Worker}: {Position} dead-lettered to {DeadLetterTopic} ({ErrorClass}: {Error})")]
    public static partial void DeadLettered(this ILogger logger, string worker, string position, string deadLetterTopic, string errorClass, string error);

    [LoggerMessage(1024, LogLevel.Critical, "Worker {Worker}: fatal error handling {Position}; stopping")]
    public static partial void WorkerFatal(this ILogger logger, Exception exception, string worker, string position);
}
