using Attribution.Contracts;
using Attribution.Transport;

namespace Attribution.Scorer;

/// <summary>
/// A validated query on its way through the Scorer: its record, decoded query and the attribution partition its id
/// hashes to (its home). Its lane waits on <see cref="Done"/>: completed once the query has its outcome (attribution
/// acknowledged or duplicate skipped), faulted when it failed (the lane then retries or dead-letters it).
/// </summary>
internal sealed class PendingQuery(EventRecord record, ModelQuery query, int home)
{
    public EventRecord Record { get; } = record;

    public ModelQuery Query { get; } = query;

    public string QueryId => Query.QueryId;

    /// <summary>The partition of the attributions topic that holds this query id's attribution.</summary>
    public int Home { get; } = home;

    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>When the query was handed to the batcher (<see cref="System.Diagnostics.Stopwatch"/> timestamp): its wait for a readout starts here.</summary>
    public long Enqueued { get; } = System.Diagnostics.Stopwatch.GetTimestamp();
}
