using System.Collections.Concurrent;

namespace Attribution.Transport.Embedded;

/// <summary>
/// The in-process event log: Kafka's semantics (partitions, per-key order, consumer groups with rebalancing, stored and
/// committed offsets, compacted topics) held in memory, with no broker. Used on one machine and by
/// <c>./pipeline demo</c>. Bounded: a producer waits while a partition holds
/// <see cref="EmbeddedOptions.MaxRecordsPerPartition"/> records that an active group has not committed past.
/// Committed offsets live as long as this object (a restarted consumer in the same process resumes from them).
/// Thread-safe.
/// </summary>
public sealed class EmbeddedEventLog : IEventLog
{
    private readonly ConcurrentDictionary<string, EmbeddedTopic> _topics = new(StringComparer.Ordinal);
    private readonly Dictionary<string, EmbeddedGroup> _groups = new(StringComparer.Ordinal);
    private readonly object _signal = new();
    private long _version;
    private int _waiters;
    private volatile bool _disposed;

    /// <summary>Creates an empty log.</summary>
    public EmbeddedEventLog(EmbeddedOptions? options = null, TimeProvider? timeProvider = null)
    {
        Options = options ?? new EmbeddedOptions();
        if (Options.Validate() is { } error)
        {
            throw new ArgumentException(error, nameof(options));
        }

        Time = timeProvider ?? TimeProvider.System;
    }

    /// <inheritdoc />
    public string Kind => "embedded";

    internal EmbeddedOptions Options { get; }

    internal TimeProvider Time { get; }

    /// <summary>Guards every consumer group (membership, ownership, commits). Taken before any partition lock.</summary>
    internal Lock GroupsLock { get; } = new();

    internal long Version => Interlocked.Read(ref _version);

    internal bool IsDisposed => _disposed;

    /// <inheritdoc />
    public Task CreateTopicAsync(TopicSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        ObjectDisposedException.ThrowIf(_disposed, this);
        _topics.GetOrAdd(spec.Name, static (_, s) => new EmbeddedTopic(s.spec, s.capacity), (spec, capacity: Options.MaxRecordsPerPartition));
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<int?> GetPartitionCountAsync(string topic, CancellationToken cancellationToken = default) =>
        Task.FromResult(_topics.TryGetValue(topic, out var t) ? t.Partitions.Length : (int?)null);

    /// <inheritdoc />
    public Task<IReadOnlyDictionary<string, TopicDescription>> DescribeTopicsAsync(IReadOnlyCollection<string> topics, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topics);
        IReadOnlyDictionary<string, TopicDescription> found = topics.Distinct(StringComparer.Ordinal)
            .Select(n => _topics.TryGetValue(n, out var t) ? new TopicDescription(n, t.Partitions.Length, t.Spec.Compacted) : null)
            .OfType<TopicDescription>()
            .ToDictionary(d => d.Name, StringComparer.Ordinal);
        return Task.FromResult(found);
    }

    /// <inheritdoc />
    public IEventProducer CreateProducer()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new EmbeddedProducer(this);
    }

    /// <inheritdoc />
    public IEventConsumer CreateConsumer(ConsumerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new EmbeddedConsumer(this, settings);
    }

    /// <inheritdoc />
    public Task<EventLogHealth> CheckHealthAsync(CancellationToken cancellationToken = default)
    {
        int groups;
        lock (GroupsLock)
        {
            groups = _groups.Count;
        }

        return Task.FromResult(_disposed
            ? new EventLogHealth(false, "embedded event log is disposed")
            : new EventLogHealth(true, $"embedded event log: {_topics.Count} topics, {groups} consumer groups"));
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _disposed = true;
        Signal();
        return ValueTask.CompletedTask;
    }

    internal EmbeddedTopic GetTopic(string name)
    {
        if (_topics.TryGetValue(name, out var topic))
        {
            return topic;
        }

        TopicNames.Validate(name);
        if (!Options.AutoCreateTopics)
        {
            throw new EventLogException($"Topic '{name}' does not exist in the embedded log; create it with IEventLog.CreateTopicAsync or set Transport:Embedded:AutoCreateTopics=true.");
        }

        return _topics.GetOrAdd(name, static (n, o) => new EmbeddedTopic(new TopicSpec(n, o.DefaultPartitions), o.MaxRecordsPerPartition), Options);
    }

    internal EmbeddedGroup GetGroupLocked(string id)
    {
        if (!_groups.TryGetValue(id, out var group))
        {
            group = new EmbeddedGroup(id);
            _groups.Add(id, group);
        }

        return group;
    }

    /// <summary>Whether a consumer group with members subscribes to <paramref name="topic"/> (back-pressure applies only then).</summary>
    internal bool HasActiveSubscriber(string topic)
    {
        lock (GroupsLock)
        {
            foreach (var g in _groups.Values)
            {
                if (g.Members.Count > 0 && g.Subscribes(topic))
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>Drops, in each partition of <paramref name="topics"/>, what every active group has committed past.</summary>
    internal void TrimLocked(IEnumerable<string> topics)
    {
        foreach (var name in topics)
        {
            if (!_topics.TryGetValue(name, out var topic) || topic.Spec.Compacted)
            {
                continue;
            }

            foreach (var p in topic.Partitions)
            {
                var min = long.MaxValue;
                var any = false;
                foreach (var g in _groups.Values)
                {
                    if (g.Members.Count == 0 || !g.Subscribes(name))
                    {
                        continue;
                    }

                    any = true;
                    min = Math.Min(min, g.Committed.TryGetValue(new TopicPartition(name, p.Index), out var c) ? c : 0);
                }

                if (any && min > 0)
                {
                    p.TrimBelow(min);
                }
            }
        }
    }

    /// <summary>Wakes consumers waiting for records or a rebalance.</summary>
    internal void Signal()
    {
        Interlocked.Increment(ref _version);
        if (Volatile.Read(ref _waiters) > 0)
        {
            lock (_signal)
            {
                Monitor.PulseAll(_signal);
            }
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for a <see cref="Signal"/> after <paramref name="seenVersion"/>.</summary>
    internal void Wait(long seenVersion, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static s => ((EmbeddedEventLog)s!).Signal(), this)
            : default;
        lock (_signal)
        {
            Interlocked.Increment(ref _waiters);
            try
            {
                // Dekker pairing with Signal: increment waiters, then re-read the version (both full fences).
                if (Interlocked.Read(ref _version) == seenVersion && !cancellationToken.IsCancellationRequested)
                {
                    Monitor.Wait(_signal, timeout);
                }
            }
            finally
            {
                Interlocked.Decrement(ref _waiters);
            }
        }
    }
}

/// <summary>A consumer group: members in join order, the partition owners, the committed offsets.</summary>
internal sealed class EmbeddedGroup(string id)
{
    public string Id { get; } = id;

    public List<EmbeddedConsumer> Members { get; } = [];

    public int Generation { get; private set; }

    public Dictionary<EmbeddedConsumer, HashSet<TopicPartition>> Desired { get; } = [];

    public Dictionary<TopicPartition, EmbeddedConsumer> Owners { get; } = [];

    public Dictionary<TopicPartition, long> Committed { get; } = [];

    public bool Subscribes(string topic) => Members.Exists(m => m.Topics.Contains(topic));

    /// <summary>Round-robin assignment of each topic's partitions over the members subscribed to it, in join order.</summary>
    public void RecomputeLocked()
    {
        Generation++;
        Desired.Clear();
        foreach (var m in Members)
        {
            Desired[m] = [];
        }

        foreach (var topic in Members.SelectMany(m => m.Topics.Select(t => (name: t, partitions: m.PartitionCount(t)))).Distinct().OrderBy(t => t.name, StringComparer.Ordinal))
        {
            var subscribers = Members.Where(m => m.Topics.Contains(topic.name)).ToList();
            for (var p = 0; p < topic.partitions; p++)
            {
                Desired[subscribers[p % subscribers.Count]].Add(new TopicPartition(topic.name, p));
            }
        }
    }
}
