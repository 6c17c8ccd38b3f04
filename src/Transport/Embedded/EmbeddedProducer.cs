namespace Attribution.Transport.Embedded;

/// <summary>Appends to the embedded log; completes synchronously unless the partition is full.</summary>
internal sealed class EmbeddedProducer(EmbeddedEventLog log) : IEventProducer
{
    private int _roundRobin;
    private bool _disposed;

    public Task<EventPosition> ProduceAsync(string topic, EventMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topic);
        ArgumentNullException.ThrowIfNull(message);
        if (message.Key is null || message.Value is null)
        {
            throw new ArgumentException($"EventMessage for topic '{topic}' has a null Key or Value; use an empty array instead.", nameof(message));
        }

        ObjectDisposedException.ThrowIf(_disposed || log.IsDisposed, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<EventPosition>(cancellationToken);
        }

        var t = log.GetTopic(topic);
        var index = message.Key.Length == 0
            ? (int)((uint)Interlocked.Increment(ref _roundRobin) % (uint)t.Partitions.Length)
            : Partitioner.ForKey(message.Key, t.Partitions.Length);
        var partition = t.Partitions[index];
        if (partition.TryAppend(message, log.Time.GetUtcNow(), out var offset, out var space))
        {
            log.Signal();
            return Task.FromResult(new EventPosition(topic, index, offset));
        }

        // Back-pressure protects what a consumer group has yet to read; with no group there is nobody to wait for.
        while (!log.HasActiveSubscriber(topic))
        {
            partition.EvictOldest();
            if (partition.TryAppend(message, log.Time.GetUtcNow(), out offset, out space))
            {
                log.Signal();
                return Task.FromResult(new EventPosition(topic, index, offset));
            }
        }

        return ProduceWhenSpaceAsync(partition, message, space!, cancellationToken);
    }

    public Task FlushAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    public void Dispose() => _disposed = true;

    private async Task<EventPosition> ProduceWhenSpaceAsync(EmbeddedPartition partition, EventMessage message, Task space, CancellationToken cancellationToken)
    {
        while (true)
        {
            await space.WaitAsync(cancellationToken).ConfigureAwait(false);
            ObjectDisposedException.ThrowIf(log.IsDisposed, this);
            if (partition.TryAppend(message, log.Time.GetUtcNow(), out var offset, out var next))
            {
                log.Signal();
                return new EventPosition(partition.Topic.Spec.Name, partition.Index, offset);
            }

            space = next!;
        }
    }
}
