using System.Diagnostics;
using System.Threading.Channels;

namespace Attribution.Scorer;

/// <summary>
/// Micro-batching: items queue in a bounded channel; a batch is what arrived within <c>window</c> of its first item's
/// arrival, at most <c>maxBatch</c> items (a full batch goes at once). The window counts from when the first item was
/// queued, not from when a reader took it: items that queued while the previous batch was scored have already waited
/// longer than the window, so their batch goes as soon as the queue is drained instead of waiting a window more.
/// Several readers may form batches concurrently.
/// </summary>
internal sealed class MicroBatcher<T>
{
    private readonly Channel<(T Item, long Queued)> _queue;
    private readonly int _maxBatch;
    private readonly TimeSpan _window;

    public MicroBatcher(int maxBatch, TimeSpan window, int capacity, bool singleReader)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _maxBatch = maxBatch;
        _window = window;
        _queue = Channel.CreateBounded<(T, long)>(new BoundedChannelOptions(capacity) { SingleReader = singleReader });
    }

    /// <summary>Queues an item, waiting while the queue is full (back-pressure to the lanes).</summary>
    public ValueTask EnqueueAsync(T item, CancellationToken cancellationToken) => _queue.Writer.WriteAsync((item, Stopwatch.GetTimestamp()), cancellationToken);

    /// <summary>No more items: readers finish the queued ones, then <see cref="NextBatchAsync"/> returns null.</summary>
    public void Complete() => _queue.Writer.TryComplete();

    /// <summary>Takes the items still queued (to fail them at shutdown).</summary>
    public List<T> TakeRemaining()
    {
        var left = new List<T>();
        while (_queue.Reader.TryRead(out var item))
        {
            left.Add(item.Item);
        }

        return left;
    }

    /// <summary>
    /// Waits for the next batch: at least one item, then more until the batch is full or the window since the first
    /// item was queued ended. Null once the batcher is completed and drained.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="stop"/> was cancelled.</exception>
    public async Task<List<T>?> NextBatchAsync(CancellationToken stop)
    {
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync(stop).ConfigureAwait(false))
        {
            var batch = new List<T>(_maxBatch);
            long started = 0;
            while (batch.Count < _maxBatch)
            {
                if (reader.TryRead(out var item))
                {
                    started = batch.Count == 0 ? item.Queued : started;
                    batch.Add(item.Item);
                    continue;
                }

                if (batch.Count == 0)
                {
                    // Another reader took what this one was woken for.
                    break;
                }

                var left = _window - Stopwatch.GetElapsedTime(started);
                if (left <= TimeSpan.Zero)
                {
                    break;
                }

                using var wait = CancellationTokenSource.CreateLinkedTokenSource(stop);
                wait.CancelAfter(left);
                try
                {
                    if (!await reader.WaitToReadAsync(wait.Token).ConfigureAwait(false))
                    {
                        break;
                    }
                }
                catch (OperationCanceledException e) when (e.CancellationToken == wait.Token && !stop.IsCancellationRequested)
                {
                    break;
                }
            }

            // Another reader may have taken the items this one was woken for.
            if (batch.Count > 0)
            {
                return batch;
            }
        }

        return null;
    }
}
