namespace Attribution.Transport.Embedded;

/// <summary>One partition: an offset-ordered list of records, with back-pressure and (for compacted topics) key compaction.</summary>
internal sealed class EmbeddedPartition
{
    private readonly Lock _lock = new();
    private readonly List<Entry> _entries = [];
    private readonly Dictionary<byte[], Entry>? _latestByKey;
    private readonly int _capacity;
    private long _nextOffset;
    private long _startOffset;
    private int _superseded;
    private TaskCompletionSource? _space;

    public EmbeddedPartition(EmbeddedTopic topic, int index, int capacity)
    {
        Topic = topic;
        Index = index;
        _capacity = capacity;
        if (topic.Spec.Compacted)
        {
            _latestByKey = new Dictionary<byte[], Entry>(ByteArrayComparer.Instance);
        }
    }

    public EmbeddedTopic Topic { get; }

    public int Index { get; }

    public long EndOffset
    {
        get
        {
            lock (_lock)
            {
                return _nextOffset;
            }
        }
    }

    public long StartOffset
    {
        get
        {
            lock (_lock)
            {
                return _startOffset;
            }
        }
    }

    /// <summary>Appends when there is room; otherwise returns a task that completes when room may have been made.</summary>
    public bool TryAppend(EventMessage message, DateTimeOffset timestamp, out long offset, out Task? spaceAvailable)
    {
        lock (_lock)
        {
            // Compacted topics are bounded by their key space, not by consumption; everything else waits for commits.
            if (_latestByKey is null && _entries.Count >= _capacity)
            {
                // Commits trim the log; a producer that finds it full waits for the next commit.
                _space ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                offset = -1;
                spaceAvailable = _space.Task;
                return false;
            }

            offset = _nextOffset++;
            var record = new EventRecord(Topic.Spec.Name, Index, offset, message.Key, message.Value, message.Headers ?? [], timestamp);
            var entry = new Entry(record);
            _entries.Add(entry);
            if (_latestByKey is not null && message.Key.Length > 0)
            {
                if (_latestByKey.TryGetValue(message.Key, out var previous))
                {
                    previous.Superseded = true;
                    _superseded++;
                }

                _latestByKey[message.Key] = entry;
                if (_superseded > 1024 && _superseded > _entries.Count / 2)
                {
                    _entries.RemoveAll(e => e.Superseded);
                    _superseded = 0;
                    _startOffset = _entries.Count > 0 ? _entries[0].Record.Offset : _nextOffset;
                }
            }

            spaceAvailable = null;
            return true;
        }
    }

    /// <summary>Copies up to <paramref name="max"/> live records at or after <paramref name="position"/> into <paramref name="into"/>.</summary>
    public long Read(long position, int max, Queue<EventRecord> into)
    {
        lock (_lock)
        {
            var i = IndexOfFirstAtOrAfter(position);
            var n = 0;
            for (; i < _entries.Count && n < max; i++)
            {
                var e = _entries[i];
                position = e.Record.Offset + 1;
                if (!e.Superseded)
                {
                    into.Enqueue(e.Record);
                    n++;
                }
            }

            return position;
        }
    }

    /// <summary>
    /// Retention for a full partition that no group consumes (only standalone readers, e.g. downstream subscribers of
    /// attributions): drops the oldest sixteenth, as Kafka's size-based retention would, instead of blocking producers forever.
    /// </summary>
    public void EvictOldest()
    {
        long cut;
        lock (_lock)
        {
            if (_entries.Count == 0)
            {
                return;
            }

            var k = Math.Min(_entries.Count, Math.Max(1, _capacity / 16));
            cut = k < _entries.Count ? _entries[k].Record.Offset : _nextOffset;
        }

        TrimBelow(cut);
    }

    /// <summary>Drops records below <paramref name="offset"/> (all groups committed past them) and wakes blocked producers.</summary>
    public void TrimBelow(long offset)
    {
        lock (_lock)
        {
            if (_latestByKey is not null || _entries.Count == 0 || offset <= _entries[0].Record.Offset)
            {
                return;
            }

            var n = IndexOfFirstAtOrAfter(offset);
            _entries.RemoveRange(0, n);
            _startOffset = Math.Max(_startOffset, Math.Min(offset, _nextOffset));
            if (_space is not null && _entries.Count < _capacity)
            {
                _space.TrySetResult();
                _space = null;
            }
        }
    }

    private int IndexOfFirstAtOrAfter(long offset)
    {
        if (_entries.Count == 0)
        {
            return 0;
        }

        // Non-compacted partitions are contiguous, so the index is a subtraction; compacted ones need a search.
        var guess = offset - _entries[0].Record.Offset;
        if (guess <= 0)
        {
            return 0;
        }

        if (guess < _entries.Count && _entries[(int)guess].Record.Offset == offset)
        {
            return (int)guess;
        }

        int lo = 0, hi = _entries.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_entries[mid].Record.Offset < offset)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    private sealed class Entry(EventRecord record)
    {
        public EventRecord Record { get; } = record;

        public bool Superseded { get; set; }
    }
}

/// <summary>Compares byte arrays by content, for keys.</summary>
internal sealed class ByteArrayComparer : IEqualityComparer<byte[]>
{
    public static readonly ByteArrayComparer Instance = new();

    public bool Equals(byte[]? x, byte[]? y) => ReferenceEquals(x, y) || (x is not null && y is not null && x.AsSpan().SequenceEqual(y));

    public int GetHashCode(byte[] obj)
    {
        var h = new HashCode();
        h.AddBytes(obj);
        return h.ToHashCode();
    }
}
