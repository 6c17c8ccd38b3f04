using System.Diagnostics;
using Attribution.Contracts;
using Attribution.Transport;

namespace Attribution.Scorer;

/// <summary>
/// Remembers which query ids already have an attribution, per attribution partition, from a standalone reader of the
/// attributions topic. The attributions topic has the queries topic's partition count and the same key (query id), so
/// the attributions of query partition p are all in attribution partition p. Before a batch is scored the reader is
/// caught up to the current end offsets, so attributions produced by an earlier owner of the partition (a crashed or
/// rebalanced Scorer that did not commit) are seen and their queries skipped. Each partition keeps the last
/// <see cref="ScorerOptions.DedupWindow"/> ids (bounded memory). Used from one thread.
/// </summary>
internal sealed class AttributionDeduplicator : IDisposable
{
    private readonly IEventConsumer _reader;
    private readonly int _partitions;
    private readonly int _window;
    private readonly long[] _next;
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
        _ids = [.. Enumerable.Range(0, partitions).Select(_ => new HashSet<string>(StringComparer.Ordinal))];
        _order = [.. Enumerable.Range(0, partitions).Select(_ => new Queue<string>())];
    }

    /// <summary>Reads <paramref name="partitions"/> of the attributions topic up to their end offsets as of now
    /// (records of other partitions read on the way are remembered too).</summary>
    public void CatchUp(IReadOnlyCollection<int> partitions, CancellationToken cancellationToken)
    {
        var ends = new Dictionary<int, long>();
        foreach (var p in partitions)
        {
            if (p < _partitions)
            {
                ends[p] = _reader.GetEndOffset(new TopicPartition(Topics.Attributions, p));
            }
        }

        var quiet = Stopwatch.StartNew();
        while (ends.Any(e => _next[e.Key] < e.Value) && quiet.Elapsed < TimeSpan.FromSeconds(2))
        {
            if (_reader.Consume(TimeSpan.FromMilliseconds(20), cancellationToken) is { } r && r.Partition < _partitions)
            {
                quiet.Restart();
                _next[r.Partition] = Math.Max(_next[r.Partition], r.Offset + 1);
                if (r.Key.Length > 0)
                {
                    Add(r.Partition, r.KeyString);
                }
            }
        }
    }

    /// <summary>
    /// Records an attribution this Scorer produced at <paramref name="offset"/> (acknowledged, so in offset order per
    /// partition). When the reader has read everything before it, the reader's position moves past it too, so the next
    /// <see cref="CatchUp"/> does not wait to read this Scorer's own output back; a record another producer interleaved
    /// leaves a gap, which the next catch-up reads.
    /// </summary>
    public void AddOwn(int partition, long offset, string queryId)
    {
        Add(partition, queryId);
        if (partition < _partitions && _next[partition] == offset)
        {
            _next[partition] = offset + 1;
        }
    }

    /// <summary>Whether <paramref name="queryId"/> already has an attribution in <paramref name="partition"/>.</summary>
    public bool Contains(int partition, string queryId) => partition < _partitions && _ids[partition].Contains(queryId);

    /// <summary>Records an attribution (also done when the reader reads it back).</summary>
    public void Add(int partition, string queryId)
    {
        if (partition >= _partitions || !_ids[partition].Add(queryId))
        {
            return;
        }

        _order[partition].Enqueue(queryId);
        if (_order[partition].Count > _window)
        {
            _ids[partition].Remove(_order[partition].Dequeue());
        }
    }

    public void Dispose() => _reader.Dispose();
}
