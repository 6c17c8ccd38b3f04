using System.Diagnostics;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using KafkaTopicPartition = Confluent.Kafka.TopicPartition;

namespace Attribution.Transport.Kafka;

/// <summary>A Confluent.Kafka consumer behind <see cref="IEventConsumer"/>; offsets stored by hand, committed on request.</summary>
internal sealed class KafkaConsumer : IEventConsumer
{
    private static readonly TimeSpan PollSlice = TimeSpan.FromMilliseconds(100);
    private readonly KafkaOptions _options;
    private readonly ConsumerSettings _settings;
    private readonly ILogger _logger;
    private readonly IConsumer<byte[]?, byte[]> _consumer;
    private readonly string _group;
    private bool _closed;

    public KafkaConsumer(KafkaOptions options, ConsumerSettings settings, ILogger logger)
    {
        _options = options;
        _settings = settings;
        _logger = logger;
        var standalone = settings.GroupId is null;

        // A standalone reader still needs a group.id for librdkafka; it never joins it (Assign, not Subscribe).
        _group = settings.GroupId ?? "standalone-" + Guid.NewGuid().ToString("N");
        var config = new ConsumerConfig
        {
            BootstrapServers = options.BootstrapServers,
            GroupId = _group,
            ClientId = settings.ClientId ?? options.ClientId + "-consumer",
            EnableAutoOffsetStore = false,
            EnableAutoCommit = !standalone && options.AutoCommitIntervalMs > 0,
            AutoCommitIntervalMs = Math.Max(options.AutoCommitIntervalMs, 1),
            AutoOffsetReset = settings.NoCommitFallback == NoCommitFallback.Earliest ? AutoOffsetReset.Earliest : AutoOffsetReset.Latest,
            SessionTimeoutMs = options.SessionTimeoutMs,
            HeartbeatIntervalMs = Math.Max(options.SessionTimeoutMs / 5, 100),
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.RoundRobin,
            EnablePartitionEof = false,
            FetchWaitMaxMs = options.FetchWaitMaxMs,
        };
        KafkaLibrary.Apply(options, config);
        _consumer = new ConsumerBuilder<byte[]?, byte[]>(config)
            .SetErrorHandler((_, e) => _logger.KafkaClientError("consumer " + _group, e.Code.ToString(), e.Reason))
            .SetLogHandler((_, m) => _logger.KafkaClientLog(m.Name, m.Facility, m.Message))
            .SetPartitionsAssignedHandler(OnAssigned)
            .SetPartitionsRevokedHandler(OnRevoked)
            .SetPartitionsLostHandler(OnLost)
            .Build();

        if (standalone)
        {
            AssignAllPartitions();
        }
        else
        {
            _consumer.Subscribe(settings.Topics);
        }
    }

    public string? GroupId => _settings.GroupId;

    public IReadOnlyList<TopicPartition> Assignment => [.. _consumer.Assignment.Select(tp => new TopicPartition(tp.Topic, tp.Partition.Value))];

    public EventRecord? Consume(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var remaining = timeout - Stopwatch.GetElapsedTime(started);
            try
            {
                // Short slices so cancellation is observed promptly without librdkafka's own token polling.
                var result = _consumer.Consume(remaining < PollSlice ? (remaining < TimeSpan.Zero ? TimeSpan.Zero : remaining) : PollSlice);
                if (result is { IsPartitionEOF: false, Message: not null })
                {
                    return Convert(result);
                }
            }
            catch (ConsumeException e) when (!e.Error.IsFatal)
            {
                _logger.ConsumeError(_group, e.Error.ToString());
            }
            catch (ConsumeException e)
            {
                throw new EventLogException($"Consumer of group '{_group}' failed fatally: {e.Error.Code} {e.Error.Reason}", false, e);
            }

            if (Stopwatch.GetElapsedTime(started) >= timeout)
            {
                return null;
            }
        }
    }

    public void StoreOffset(EventRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        StoreOffset(record.TopicPartition, record.Offset + 1);
    }

    public void StoreOffset(TopicPartition partition, long nextOffset)
    {
        try
        {
            _consumer.StoreOffset(new TopicPartitionOffset(partition.Topic, partition.Partition, nextOffset));
        }
        catch (KafkaException e)
        {
            throw new EventLogException(
                $"Cannot store offset {nextOffset} for {partition}: {e.Error.Reason}. The partition is probably no longer assigned to this consumer (store offsets before returning from PartitionsRevoked).",
                false,
                e);
        }
    }

    public void Commit()
    {
        if (_settings.GroupId is null)
        {
            return;
        }

        try
        {
            _consumer.Commit();
        }
        catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_NoOffset)
        {
            // Nothing stored since the last commit.
        }
        catch (KafkaException e)
        {
            throw new EventLogException($"Commit of group '{_group}' failed: {e.Error.Code} {e.Error.Reason}", KafkaLibrary.IsTransient(e.Error), e);
        }
    }

    public void SeekToBeginning()
    {
        foreach (var tp in _consumer.Assignment)
        {
            _consumer.Seek(new TopicPartitionOffset(tp, Offset.Beginning));
        }
    }

    public long GetEndOffset(TopicPartition partition)
    {
        // Asks the partition's leader: right after a failover the client's metadata may still name the old one, which
        // answers "not leader" until the metadata refresh; that is worth a few short retries, not a failed event.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return _consumer.QueryWatermarkOffsets(new KafkaTopicPartition(partition.Topic, partition.Partition), TimeSpan.FromMilliseconds(_options.AdminTimeoutMs)).High.Value;
            }
            catch (KafkaException e) when (KafkaLibrary.IsTransient(e.Error) && attempt <= _options.ProduceRetries)
            {
                Thread.Sleep(Math.Min(_options.RetryBackoffMs * (1 << Math.Min(attempt, 6)), 2_000));
            }
            catch (KafkaException e)
            {
                throw new EventLogException($"End offset of {partition} unavailable on {_options.BootstrapServers}: {e.Error.Code} {e.Error.Reason}", KafkaLibrary.IsTransient(e.Error), e);
            }
        }
    }

    public PartitionWatermark? GetLocalWatermark(TopicPartition partition)
    {
        var tp = new KafkaTopicPartition(partition.Topic, partition.Partition);
        try
        {
            // Both are librdkafka's cached values: no request to the broker.
            var high = _consumer.GetWatermarkOffsets(tp).High;
            var position = _consumer.Position(tp);
            return high == Offset.Unset || position == Offset.Unset ? null : new PartitionWatermark(high.Value, position.Value);
        }
        catch (KafkaException)
        {
            // Not assigned (any more).
            return null;
        }
    }

    public void Close()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        try
        {
            Commit();
        }
        catch (EventLogException e)
        {
            _logger.CommitFailed(_group, e.Message);
        }

        // Close leaves the group (revoke handler commits again), so partitions move to the others at once.
        _consumer.Close();
        _consumer.Dispose();
    }

    public void Dispose()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        _consumer.Dispose();
    }

    private static EventRecord Convert(ConsumeResult<byte[]?, byte[]> r)
    {
        IReadOnlyList<EventHeader> headers = [];
        if (r.Message.Headers is { Count: > 0 } kh)
        {
            var list = new List<EventHeader>(kh.Count);
            foreach (var h in kh)
            {
                list.Add(new EventHeader(h.Key, h.GetValueBytes() ?? []));
            }

            headers = list;
        }

        return new EventRecord(r.Topic, r.Partition.Value, r.Offset.Value, r.Message.Key ?? [], r.Message.Value ?? [], headers, r.Message.Timestamp.UtcDateTime);
    }

    private static string Describe(IEnumerable<KafkaTopicPartition> partitions) => string.Join(",", partitions.Select(p => $"{p.Topic}[{p.Partition.Value}]"));

    private static List<TopicPartition> Map(IEnumerable<KafkaTopicPartition> partitions) => [.. partitions.Select(p => new TopicPartition(p.Topic, p.Partition.Value))];

    private IEnumerable<TopicPartitionOffset> OnAssigned(IConsumer<byte[]?, byte[]> consumer, List<KafkaTopicPartition> partitions)
    {
        _logger.PartitionsAssigned(_group, Describe(partitions));
        _settings.PartitionsAssigned?.Invoke(Map(partitions));
        var start = _settings.Start == StartPosition.Beginning
            ? _settings.TailRecords is { } tail ? (tail == 0 ? Offset.End : new Offset(-2000 - tail)) : Offset.Beginning
            : Offset.Unset;
        return partitions.Select(p => new TopicPartitionOffset(p, start));
    }

    private void OnRevoked(IConsumer<byte[]?, byte[]> consumer, List<TopicPartitionOffset> partitions)
    {
        _logger.PartitionsRevoked(_group, Describe(partitions.Select(p => p.TopicPartition)));
        _settings.PartitionsRevoked?.Invoke(Map(partitions.Select(p => p.TopicPartition)));
        try
        {
            consumer.Commit();
        }
        catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_NoOffset)
        {
            // Nothing stored since the last commit.
        }
        catch (KafkaException e)
        {
            _logger.CommitFailed(_group, e.Error.ToString());
        }
    }

    private void OnLost(IConsumer<byte[]?, byte[]> consumer, List<TopicPartitionOffset> partitions)
    {
        // Lost (session expired): another member may already own them, so do not commit.
        _logger.PartitionsLost(_group, Describe(partitions.Select(p => p.TopicPartition)));
        _settings.PartitionsRevoked?.Invoke(Map(partitions.Select(p => p.TopicPartition)));
    }

    private void AssignAllPartitions()
    {
        using var admin = new DependentAdminClientBuilder(_consumer.Handle).Build();
        var timeout = TimeSpan.FromMilliseconds(_options.AdminTimeoutMs);
        var assignment = new List<TopicPartitionOffset>();
        foreach (var topic in _settings.Topics)
        {
            var meta = admin.GetMetadata(topic, timeout).Topics.FirstOrDefault(t => t.Topic == topic);
            if (meta is null || meta.Error.Code != ErrorCode.NoError || meta.Partitions.Count == 0)
            {
                throw new EventLogException($"Standalone reader: topic '{topic}' is not available on {_options.BootstrapServers} ({meta?.Error.Reason ?? "no metadata"}); create it first.", true);
            }

            var start = _settings.Start == StartPosition.Beginning || _settings.NoCommitFallback == NoCommitFallback.Earliest ? Offset.Beginning : Offset.End;
            if (_settings.Start == StartPosition.Beginning && _settings.TailRecords is { } tail)
            {
                // librdkafka's logical offset RD_KAFKA_OFFSET_TAIL(n) = -2000 - n: n records before the end, resolved by the client.
                start = tail == 0 ? Offset.End : new Offset(-2000 - tail);
            }

            assignment.AddRange(meta.Partitions.Select(p => new TopicPartitionOffset(topic, p.PartitionId, start)));
        }

        _consumer.Assign(assignment);
        _settings.PartitionsAssigned?.Invoke([.. assignment.Select(a => new TopicPartition(a.Topic, a.Partition.Value))]);
    }
}
