using Attribution.Contracts;

namespace Attribution.Downstream.Ledger;

/// <summary>
/// Attribution mass per source, per model version, per minute, hour and day window, summed from attribution events as
/// they arrive. Pure state (no clock, no log): the event time is the caller's. Remembers which cells changed since the
/// last <see cref="TakeChanged"/>, so a publisher sends only those. Thread-safe.
/// </summary>
public sealed class SourceLedger : IAttributionSink
{
    private readonly Dictionary<LedgerKey, Cell> _cells = [];
    private readonly HashSet<LedgerKey> _changed = [];
    private readonly Lock _lock = new();
    private long _events;

    /// <summary>Attribution events added so far.</summary>
    public long Events => Interlocked.Read(ref _events);

    /// <summary>Adds one attribution event that happened at <paramref name="time"/>.</summary>
    public void Add(AttributionResult result, DateTimeOffset time)
    {
        ArgumentNullException.ThrowIfNull(result);
        lock (_lock)
        {
            foreach (var window in LedgerWindows.All)
            {
                var start = LedgerWindows.Start(window, time);
                for (int i = 0; i < result.SourceIds.Count; i++)
                {
                    var key = new LedgerKey(window, start, result.ModelVersion, result.SourceIds[i]);
                    if (!_cells.TryGetValue(key, out var cell))
                    {
                        _cells[key] = cell = new Cell();
                    }

                    double score = result.SourceScores[i];
                    cell.Mass += score;
                    cell.Positive += Math.Max(0, score);
                    cell.Queries++;
                    _changed.Add(key);
                }
            }

            _events++;
        }
    }

    /// <summary>Adds each event at its log time.</summary>
    public void Accept(IReadOnlyList<AttributionEnvelope> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        foreach (var e in batch)
        {
            Add(e.Result, e.Timestamp);
        }
    }

    /// <summary>The cells changed since the previous call (current totals), and forgets them as changed.</summary>
    public IReadOnlyList<LedgerEntry> TakeChanged()
    {
        lock (_lock)
        {
            var list = _changed.Select(k => Entry(k, _cells[k])).ToList();
            _changed.Clear();
            return list;
        }
    }

    /// <summary>Marks cells as changed again (their publication failed), so the next <see cref="TakeChanged"/> retries them.</summary>
    public void MarkChanged(IEnumerable<LedgerKey> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        lock (_lock)
        {
            _changed.UnionWith(keys.Where(_cells.ContainsKey));
        }
    }

    /// <summary>
    /// The cells of one window kind, optionally for one model version and/or source, with window start in
    /// [<paramref name="from"/>, <paramref name="to"/>), ordered by window start then mass (largest first).
    /// </summary>
    public IReadOnlyList<LedgerEntry> Query(LedgerWindow window, string? modelVersion = null, long? sourceId = null, DateTimeOffset? from = null, DateTimeOffset? to = null)
    {
        lock (_lock)
        {
            return _cells.Where(kv => kv.Key.Window == window
                    && (modelVersion is null || kv.Key.ModelVersion == modelVersion)
                    && (sourceId is null || kv.Key.SourceId == sourceId)
                    && (from is null || kv.Key.Start >= from)
                    && (to is null || kv.Key.Start < to))
                .Select(kv => Entry(kv.Key, kv.Value))
                .OrderBy(e => e.Key.Start).ThenByDescending(e => e.PositiveMass).ThenBy(e => e.Key.SourceId)
                .ToList();
        }
    }

    private static LedgerEntry Entry(LedgerKey key, Cell cell) => new(key, cell.Mass, cell.Positive, cell.Queries);

    private sealed class Cell
    {
        public double Mass;
        public double Positive;
        public long Queries;
    }
}
