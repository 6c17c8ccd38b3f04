using Microsoft.Extensions.Logging;

namespace Attribution.Scorer;

/// <summary>
/// Where the Scorer remembers which query ids already have an attribution, per attribution partition
/// (<see cref="AttributionDeduplicator"/> reads them back from the attributions topic).
/// </summary>
internal interface IAttributionLedger
{
    /// <summary>Makes <see cref="Contains"/> exact for <paramref name="partitions"/> before a batch from them is admitted.</summary>
    void CatchUp(IReadOnlyCollection<int> partitions, CancellationToken cancellationToken);

    /// <summary>Whether <paramref name="queryId"/> already has an attribution in <paramref name="partition"/>.</summary>
    bool Contains(int partition, string queryId);

    /// <summary>Records an attribution this Scorer produced.</summary>
    void AddOwn(int partition, long offset, string queryId);

    /// <summary>Marks partitions whose attributions may have been written by someone else (new owner, failed produce).</summary>
    void MarkStale(IEnumerable<int> partitions);
}

/// <summary>
/// Delivery and deduplication: decides, once per query id at a time, whether a query is scored, follows a copy of
/// itself that is being published (redelivered meanwhile), or is skipped because its id already has an attribution
/// (counted in <see cref="ScorerMetrics.DuplicatesSkipped"/> and logged); then completes each query's lane when its
/// attribution is acknowledged or failed. Thread-safe across concurrent batches.
/// </summary>
internal sealed class DeliveryGate(IAttributionLedger ledger, ScorerMetrics metrics, ILogger logger)
{
    private readonly Dictionary<string, Task> _inFlight = new(StringComparer.Ordinal);

    /// <summary>Query ids being published now.</summary>
    public int InFlight
    {
        get
        {
            lock (_inFlight)
            {
                return _inFlight.Count;
            }
        }
    }

    /// <summary>
    /// Admits a batch: returns the queries to score (now in flight) in batch order. Duplicates of an attributed id are
    /// completed as skipped; copies of an id in flight complete with the first copy's outcome.
    /// </summary>
    public List<PendingQuery> Admit(IReadOnlyList<PendingQuery> batch, CancellationToken cancellationToken)
    {
        ledger.CatchUp([.. batch.Select(p => p.Home).Distinct()], cancellationToken);
        var work = new List<PendingQuery>(batch.Count);
        foreach (var p in batch)
        {
            Task? first;
            lock (_inFlight)
            {
                // One decision per query id at a time, across concurrent batches.
                if (!_inFlight.TryGetValue(p.QueryId, out first) && !ledger.Contains(p.Home, p.QueryId))
                {
                    _inFlight[p.QueryId] = p.Done.Task;
                    work.Add(p);
                    continue;
                }
            }

            if (first is not null)
            {
                _ = FollowAsync(p, first);
            }
            else
            {
                Skip(p);
            }
        }

        return work;
    }

    /// <summary>The query's attribution was acknowledged at <paramref name="offset"/> of its home partition.</summary>
    public void Delivered(PendingQuery query, long offset)
    {
        ledger.AddOwn(query.Home, offset, query.QueryId);
        Release(query, null);
    }

    /// <summary>
    /// Publishing the query's attribution failed. A produce that failed may still have been written (acknowledged after
    /// the client gave up), so its partition is re-read before the retry is admitted: the retry then finds it.
    /// </summary>
    public void Failed(PendingQuery query, Exception error)
    {
        ledger.MarkStale([query.Home]);
        Release(query, error);
    }

    /// <summary>Ends a query's in-flight state and completes its lane (with <paramref name="error"/> when it failed).</summary>
    public void Release(PendingQuery query, Exception? error)
    {
        lock (_inFlight)
        {
            if (_inFlight.TryGetValue(query.QueryId, out var t) && t == query.Done.Task)
            {
                _inFlight.Remove(query.QueryId);
            }
        }

        if (error is null)
        {
            query.Done.TrySetResult();
        }
        else
        {
            query.Done.TrySetException(error);
        }
    }

    private void Skip(PendingQuery duplicate)
    {
        metrics.Duplicate();
        logger.DuplicateSkipped(duplicate.QueryId, duplicate.Record.ToString());
        duplicate.Done.TrySetResult();
    }

    private async Task FollowAsync(PendingQuery duplicate, Task first)
    {
        try
        {
            await first.ConfigureAwait(false);
            Skip(duplicate);
        }
        catch (Exception e)
        {
            duplicate.Done.TrySetException(e);
        }
    }
}
