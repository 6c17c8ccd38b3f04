using Microsoft.Extensions.Logging;

namespace Attribution.Downstream;

internal static partial class DownstreamLog
{
    [LoggerMessage(EventId = 1401, Level = LogLevel.Warning, Message = "Attribution event {Record} does not decode, dead-lettered: {Error}")]
    public static partial void EventRejected(ILogger logger, string record, string error);

    [LoggerMessage(EventId = 1402, Level = LogLevel.Error, Message = "Sink {Sink} failed on {Count} attribution events: {Error}")]
    public static partial void SinkFailed(ILogger logger, string sink, int count, string error, Exception exception);

    [LoggerMessage(EventId = 1403, Level = LogLevel.Warning, Message = "Publishing {Count} ledger entries failed, retrying next round: {Error}")]
    public static partial void LedgerPublishFailed(ILogger logger, int count, string error);

    [LoggerMessage(EventId = 1404, Level = LogLevel.Information, Message = "Flight subscriber {Peer} started (model {Model}, source {Source}, from {From})")]
    public static partial void FlightSubscribed(ILogger logger, string peer, string model, string source, string from);

    [LoggerMessage(EventId = 1405, Level = LogLevel.Error, Message = "Stopping: {Failure}")]
    public static partial void ConsoleServiceFailed(ILogger logger, string failure, Exception exception);
}
