using System.Diagnostics;

namespace Attribution.Transport.Embedded;

/// <summary>A consumer of the embedded log; see <see cref="IEventConsumer"/> for the contract.</summary>
internal sealed class EmbeddedConsumer : IEventConsumer
{
    private const int FetchBatch = 256;
    private readonly EmbeddedEventLog _log;
    private readonly ConsumerSettings _settings;
    private readonly EmbeddedGroup? _group;
    private readonly Dictionary<string, EmbeddedTopic> _topics = new(StringComparer.Ordinal);
    private readonly Lock _stateLock = new();
    private readonly Dictionary<TopicPartition, Fetch> _held = [];
    private readonly List<Fetch> _heldOrder = [];
    private readonly Dictionary<TopicPartition, long> _stored = [];
    private int _generation = -1;
    private bool _pending = true;
    private int _next;
    private bool _left;
    private bool _disposed;

    public EmbeddedConsumer(EmbeddedEventLog log, ConsumerSettings settings)
    {
        _log = log;
        _settings = settings;
        foreach (var name in settings.Topics)
        {
            _topics[name] = log.GetTopic(name);
        }

        if (settings.GroupId is { } groupId)
        {
            lock (log.GroupsLock)
            {
                _group = log.GetGroupLocked(groupId);
                _group.Members.Add(this);
                _group.RecomputeLocked();
            }

            log.Signal();
        }
    }

    public IReadOnlyCollection<string> Topics => _topics.Keys;

    public string? GroupId => _settings.GroupId;

    public IReadOnlyList<TopicPartition> Assignment
    {
        get
        {
            lock (_stateLock)
            {
                return [.. _held.Keys.OrderBy(tp => tp.Topic, StringComparer.Ordinal).ThenBy(tp => tp.Partition)];
            }
        }
    }

    public int PartitionCount(string topic) => _topics[topic].Partitions.Length;

    public EventRecord? Consume(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_log.IsDisposed, _log);
            var version = _log.Version;
            if (_pending || (_group is not null && Volatile.Read(ref _generation) != GroupGeneration()))
            {
                Rebalance();
            }

            if (TryNext() is { } record)
            {
                return record;
            }

            var remaining = timeout - Stopwatch.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                return null;
            }

            _log.Wait(version, remaining, cancellationToken);
        }
    }

    public void StoreOffset(EventRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        StoreOffset(record.TopicPartition, record.Offset + 1);
    }

    public void StoreOffset(TopicPartition partition, long nextOffset)
    {
        lock (_stateLock)
        {
            if (!_held.ContainsKey(partition))
            {
                throw new EventLogException($"Cannot store offset {nextOffset} for {partition}: the partition is not assigned to this consumer (revoked by a rebalance?). Store offsets before returning from PartitionsRevoked.");
            }

            _stored[partition] = nextOffset;
        }
    }

    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CommitPartitions(null);
    }

    public void SeekToBeginning()
    {
        lock (_stateLock)
        {
            foreach (var f in _heldOrder)
            {
                f.Position = f.Partition.StartOffset;
                f.Buffer.Clear();
            }
        }
    }

    public long GetEndOffset(TopicPartition partition)
    {
        var topic = _log.GetTopic(partition.Topic);
        if ((uint)partition.Partition >= (uint)topic.Partitions.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(partition), partition, $"Topic '{partition.Topic}' has {topic.Partitions.Length} partitions.");
        }

        return topic.Partitions[partition.Partition].EndOffset;
    }

    public PartitionWatermark? GetLocalWatermark(TopicPartition partition)
    {
        lock (_stateLock)
        {
            if (!_held.TryGetValue(partition, out var f))
            {
                return null;
            }

            return new PartitionWatermark(f.Partition.EndOffset, f.Position - f.Buffer.Count);
        }
    }

    public void Close()
    {
        if (_disposed)
        {
            return;
        }

        CommitPartitions(null);
        Dispose();
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Leave();
    }

    private int GroupGeneration()
    {
        lock (_log.GroupsLock)
        {
            return _group!.Generation;
        }
    }

    private EventRecord? TryNext()
    {
        var count = _heldOrder.Count;
        for (var i = 0; i < count; i++)
        {
            var f = _heldOrder[(_next + i) % count];
            if (f.Buffer.Count == 0)
            {
                f.Position = f.Partition.Read(f.Position, FetchBatch, f.Buffer);
            }

            if (f.Buffer.TryDequeue(out var record))
            {
                _next = (_next + i + 1) % count;
                return record;
            }
        }

        return null;
    }

    private void Rebalance()
    {
        if (_group is null)
        {
            // A standalone reader owns every partition of its topics.
            var all = _topics.Values.SelectMany(t => t.Partitions).ToList();
            lock (_stateLock)
            {
                foreach (var p in all)
                {
                    AddHeldLocked(p, StartOf(p, null));
                }
            }

            _pending = false;
            _settings.PartitionsAssigned?.Invoke([.. all.Select(p => new TopicPartition(p.Topic.Spec.Name, p.Index))]);
            return;
        }

        List<TopicPartition> revoked;
        lock (_log.GroupsLock)
        {
            var desired = _group.Desired.GetValueOrDefault(this) ?? [];
            lock (_stateLock)
            {
                revoked = [.. _held.Keys.Where(tp => !desired.Contains(tp))];
            }
        }

        if (revoked.Count > 0)
        {
            // The handler drains in-flight work and stores offsets; commit them before anyone else may read on.
            _settings.PartitionsRevoked?.Invoke(revoked);
            CommitPartitions(revoked);
            lock (_log.GroupsLock)
            {
                lock (_stateLock)
                {
                    foreach (var tp in revoked)
                    {
                        _heldOrder.Remove(_held[tp]);
                        _held.Remove(tp);
                        _stored.Remove(tp);
                        if (_group.Owners.GetValueOrDefault(tp) == this)
                        {
                            _group.Owners.Remove(tp);
                        }
                    }
                }
            }

            _log.Signal();
        }

        var assigned = new List<TopicPartition>();
        lock (_log.GroupsLock)
        {
            var generation = _group.Generation;
            var desired = _group.Desired.GetValueOrDefault(this) ?? [];
            var pending = false;
            lock (_stateLock)
            {
                foreach (var tp in desired.OrderBy(tp => tp.Topic, StringComparer.Ordinal).ThenBy(tp => tp.Partition))
                {
                    if (_held.ContainsKey(tp))
                    {
                        continue;
                    }

                    if (_group.Owners.ContainsKey(tp))
                    {
                        // The previous owner has not released it yet: it will on its next Consume, and signal us.
                        pending = true;
                        continue;
                    }

                    _group.Owners[tp] = this;
                    var p = _topics[tp.Topic].Partitions[tp.Partition];
                    AddHeldLocked(p, StartOf(p, _group.Committed.TryGetValue(tp, out var c) ? c : null));
                    assigned.Add(tp);
                }

                // If the generation moved on while we revoked, run again on the next Consume.
                pending |= _held.Keys.Any(tp => !desired.Contains(tp));
            }

            _pending = pending;
            Volatile.Write(ref _generation, generation);
        }

        if (assigned.Count > 0)
        {
            _settings.PartitionsAssigned?.Invoke(assigned);
        }
    }

    private long StartOf(EmbeddedPartition p, long? committed) => _settings.Start switch
    {
        StartPosition.Beginning => _settings.TailRecords is { } tail ? Math.Max(p.StartOffset, p.EndOffset - tail) : p.StartOffset,
        _ when committed is { } c => Math.Max(c, p.StartOffset),
        _ => _settings.NoCommitFallback == NoCommitFallback.Earliest ? p.StartOffset : p.EndOffset,
    };

    private void AddHeldLocked(EmbeddedPartition p, long position)
    {
        var tp = new TopicPartition(p.Topic.Spec.Name, p.Index);
        if (_held.ContainsKey(tp))
        {
            return;
        }

        var f = new Fetch(p, position);
        _held.Add(tp, f);
        _heldOrder.Add(f);
    }

    private void CommitPartitions(List<TopicPartition>? only)
    {
        if (_group is null)
        {
            return;
        }

        List<KeyValuePair<TopicPartition, long>> toCommit;
        lock (_stateLock)
        {
            toCommit = [.. _stored.Where(kv => only is null || only.Contains(kv.Key))];
        }

        if (toCommit.Count == 0)
        {
            return;
        }

        lock (_log.GroupsLock)
        {
            foreach (var (tp, offset) in toCommit)
            {
                _group.Committed[tp] = offset;
            }

            _log.TrimLocked(toCommit.Select(kv => kv.Key.Topic).Distinct());
        }
    }

    private void Leave()
    {
        if (_group is null || _left)
        {
            return;
        }

        _left = true;
        lock (_log.GroupsLock)
        {
            _group.Members.Remove(this);
            foreach (var tp in _group.Owners.Where(kv => kv.Value == this).Select(kv => kv.Key).ToList())
            {
                _group.Owners.Remove(tp);
            }

            _group.RecomputeLocked();
            _log.TrimLocked(_topics.Keys);
        }

        _log.Signal();
    }

    private sealed class Fetch(EmbeddedPartition partition, long position)
    {
        public EmbeddedPartition Partition { get; } = partition;

        public long Position { get; set; } = position;

        public Queue<EventRecord> Buffer { get; } = new();
    }
}
