using System.Diagnostics;
using Attribution.Contracts;
using Attribution.Transport;

namespace Attribution.Scorer;

/// <summary>
/// Remembers which query ids already have an attribution, per attribution partition, from a standalone reader of the
/// attributions topic. The attributions topic has the queries topic's partition count and the same key (query id), so
/// the attributions of query partition p are all in attribution partition p.
/// <para>
/// When this Scorer is assigned a partition (at start, after a rebalance or a lost session) the partition is
/// <em>stale</em>: before the next batch with one of its queries is scored the reader is caught up to the partition's
/// end offset as of then, so attributions produced by an earlier owner (a crashed or rebalanced Scorer that did not
/// commit) are seen and their queries skipped. While a partition stays assigned its new attributions are this
/// Scorer's own (<see cref="AddOwn"/>), so later batches only take what the reader has already fetched, without a
/// round trip to the broker. Each partition keeps the last <see cref="ScorerOptions.DedupWindow"/> ids (bounded memory).
/// </para>
/// <para>Thread-safe: concurrent batches catch up one at a time; <see cref="AddOwn"/>, <see cref="MarkStale"/> and
/// <see cref="Contains"/> may run on any thread.</para>
/// </summary>
internal sealed class AttributionDeduplicator : IAttributionLedger, IDisposable
{
    // At most this many already-fetched records are taken per batch from partitions that are not stale.
    private const int DrainLimit = 10_000;
    private readonly IEventConsumer _reader;
    private readonly int _partitions;
    private readonly int _window;
    private readonly Lock _lock = new();
    private readonly Lock _reading = new();
    private readonly long[] _next;
    private readonly bool[] _stale;
    private readonly HashSet<string>[] _ids;
    private readonly Queue<string>[] _order;

    public AttributionDeduplicator(IEventLog log, int partitions, int window)
    {
        // Only the last `window` attributions of a partition can belong to queries not yet committed (the window is
        // validated to exceed the uncommitted span), so the reader starts there instead of at the topic's beginning.
        _reader = log.CreateConsumer(new ConsumerSettings { Topics = [Topics.Attributions], Start = StartPosition.Beginning, TailRecords = window });
        _partitions = partitions;
        _window = window;
        _next = new long[partitions];
        _stale = [.. Enumerable.Repeat(true, partitions)];
        _ids = [.. Enumerable.Range(0, partitions).Select(_ => new HashSet<string>(StringComparer.Ordinal))];
        _order = [.. Enumerable.Range(0, partitions).Select(_ => new Queue<string>())];
    }

    /// <summary>Marks partitions (newly assigned to this Scorer) as needing an exact catch-up before their next batch.</summary>
    public void MarkStale(IEnumerable<int> partitions)
    {
        lock (_lock)
        {
            foreach (var p in partitions)
            {
                if (p >= 0 && p < _partitions)
                {
                    _stale[p] = true;
                }
            }
        }
    }

    /// <summary>
    /// Before a batch from <paramref name="partitions"/>: reads each stale one up to its end offset as of now (at most 2 s
    /// without progress), then takes what the reader has already fetched of the others without waiting.
    /// </summary>
    public void CatchUp(IReadOnlyCollection<int> partitions, CancellationToken cancellationToken)
    {
        // Concurrent batches catch up one at a time (the reader is one consumer).
        lock (_reading)
        {
            CatchUpLocked(partitions, cancellationToken);
        }
    }

    private void CatchUpLocked(IReadOnlyCollection<int> partitions, CancellationToken cancellationToken)
    {
        var ends = new Dictionary<int, long>();
        lock (_lock)
        {
            foreach (var p in partitions)
            {
                if (p >= 0 && p < _partitions && _stale[p])
                {
                    ends[p] = -1;
                }
            }
        }

        foreach (var p in ends.Keys.ToList())
        {
            ends[p] = _reader.GetEndOffset(new TopicPartition(Topics.Attributions, p));
        }

        var quiet = Stopwatch.StartNew();
        while (Behind(ends) && quiet.Elapsed < TimeSpan.FromSeconds(2))
        {
            if (_reader.Consume(TimeSpan.FromMilliseconds(20), cancellationToken) is { } r)
            {
                quiet.Restart();
                Read(r);
            }
        }

        lock (_lock)
        {
            foreach (var (p, end) in ends)
            {
                // Still behind after 2 s without progress (e.g. the partition's leader is unreachable): stays stale and
                // the next batch tries again; this batch goes on with what was read.
                if (_next[p] >= end)
                {
                    _stale[p] = false;
                }
            }
        }

        for (int i = 0; i < DrainLimit && _reader.Consume(TimeSpan.Zero, cancellationToken) is { } r; i++)
        {
            Read(r);
        }
    }

    /// <summary>
    /// Records an attribution this Scorer produced at <paramref name="offset"/>. When the reader has read everything
    /// before it, the reader's position moves past it too, so a later exact catch-up does not wait to read this
    /// Scorer's own output back; a record another producer interleaved leaves a gap, which a catch-up reads.
    /// </summary>
    public void AddOwn(int partition, long offset, string queryId)
    {
        lock (_lock)
        {
            AddLocked(partition, queryId);
            if (partition >= 0 && partition < _partitions && _next[partition] == offset)
            {
                _next[partition] = offset + 1;
            }
        }
    }

    /// <summary>Whether <paramref name="queryId"/> already has an attribution in <paramref name="partition"/>.</summary>
    public bool Contains(int partition, string queryId)
    {
        lock (_lock)
        {
            return partition >= 0 && partition < _partitions && _ids[partition].Contains(queryId);
        }
    }

    /// <summary>Records an attribution (also done when the reader reads it back).</summary>
    public void Add(int partition, string queryId)
    {
        lock (_lock)
        {
            AddLocked(partition, queryId);
        }
    }

    public void Dispose() => _reader.Dispose();

    private bool Behind(Dictionary<int, long> ends)
    {
        lock (_lock)
        {
            return ends.Any(e => _next[e.Key] < e.Value);
        }
    }

    private void Read(EventRecord r)
    {
        if (r.Partition < 0 || r.Partition >= _partitions)
        {
            return;
        }

        lock (_lock)
        {
            _next[r.Partition] = Math.Max(_next[r.Partition], r.Offset + 1);
            if (r.Key.Length > 0)
            {
                AddLocked(r.Partition, r.KeyString);
            }
        }
    }

    private void AddLocked(int partition, string queryId)
    {
        if (partition < 0 || partition >= _partitions || !_ids[partition].Add(queryId))
        {
            return;
        }

        _order[partition].Enqueue(queryId);
        if (_order[partition].Count > _window)
        {
            _ids[partition].Remove(_order[partition].Dequeue());
        }
    }
}
