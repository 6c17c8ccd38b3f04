namespace Attribution.Downstream.Web;

/// <summary>The most recent attribution events, numbered in arrival order, for the console's live view. Thread-safe.</summary>
public sealed class LiveAttributions(int capacity) : IAttributionSink
{
    private readonly Queue<(long Seq, AttributionEnvelope Event)> _recent = new();
    private readonly Lock _lock = new();
    private long _seq;

    /// <summary>Sequence number of the newest event (0 when none).</summary>
    public long Latest
    {
        get
        {
            lock (_lock)
            {
                return _seq;
            }
        }
    }

    /// <inheritdoc/>
    public void Accept(IReadOnlyList<AttributionEnvelope> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        lock (_lock)
        {
            foreach (var e in batch)
            {
                _recent.Enqueue((++_seq, e));
                if (_recent.Count > capacity)
                {
                    _recent.Dequeue();
                }
            }
        }
    }

    /// <summary>Up to <paramref name="limit"/> of the newest events after sequence number <paramref name="after"/>, oldest first.</summary>
    public IReadOnlyList<(long Seq, AttributionEnvelope Event)> After(long after, int limit)
    {
        lock (_lock)
        {
            var list = _recent.Where(r => r.Seq > after).ToList();
            return list.Count <= limit ? list : list[^limit..];
        }
    }
}
