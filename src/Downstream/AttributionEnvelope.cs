using Attribution.Contracts;

namespace Attribution.Downstream;

/// <summary>An attribution event as read from the <c>attributions</c> topic: the decoded result and where it was in the log.</summary>
/// <param name="Result">The decoded attribution.</param>
/// <param name="Partition">Partition of the <c>attributions</c> topic.</param>
/// <param name="Offset">Offset within the partition.</param>
/// <param name="Timestamp">When the Scorer's record was appended to the log (the event time used for windows and retention).</param>
/// <param name="TraceParent">The W3C <c>traceparent</c> header carried by the record, when the producer sent one.</param>
public sealed record AttributionEnvelope(AttributionResult Result, int Partition, long Offset, DateTimeOffset Timestamp, string? TraceParent = null);

/// <summary>
/// A consumer of the attribution stream inside the downstream host (ledger, SQL store, live console view). The feed calls
/// sinks one at a time, in log order per partition, from its consume thread.
/// </summary>
public interface IAttributionSink
{
    /// <summary>Takes a batch of consecutive events (one or more partitions, each in offset order).</summary>
    void Accept(IReadOnlyList<AttributionEnvelope> batch);
}
