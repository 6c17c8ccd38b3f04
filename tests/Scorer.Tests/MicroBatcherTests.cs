using System.Diagnostics;

namespace Attribution.Scorer.Tests;

/// <summary>Micro-batching: a full batch goes at once, a partial one when its window ends, nothing is lost or split twice.</summary>
public sealed class MicroBatcherTests
{
    [Fact]
    public async Task Queued_items_come_out_in_full_batches_in_order()
    {
        var batcher = new MicroBatcher<int>(maxBatch: 4, TimeSpan.FromSeconds(30), capacity: 16, singleReader: true);
        for (int i = 0; i < 10; i++)
        {
            await batcher.EnqueueAsync(i, CancellationToken.None);
        }

        var watch = Stopwatch.StartNew();
        Assert.Equal([0, 1, 2, 3], await batcher.NextBatchAsync(CancellationToken.None));
        Assert.Equal([4, 5, 6, 7], await batcher.NextBatchAsync(CancellationToken.None));
        // Full batches do not wait for the (30 s) window.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"full batches took {watch.Elapsed}");
        batcher.Complete();
        // The last partial batch goes once the batcher is completed, then the batcher is done.
        Assert.Equal([8, 9], await batcher.NextBatchAsync(CancellationToken.None));
        Assert.Null(await batcher.NextBatchAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_partial_batch_goes_when_its_window_ends_and_takes_what_arrived_meanwhile()
    {
        // The window must outlast the 50 ms pause even when the test runner is starved of CPU: with 300 ms a fresh-clone
        // CI run on 2 loaded cores once resumed after the window had already closed and saw [1].
        var batcher = new MicroBatcher<int>(maxBatch: 64, TimeSpan.FromSeconds(2), capacity: 64, singleReader: true);
        await batcher.EnqueueAsync(1, CancellationToken.None);
        var next = batcher.NextBatchAsync(CancellationToken.None);
        await Task.Delay(50);
        await batcher.EnqueueAsync(2, CancellationToken.None);
        var watch = Stopwatch.StartNew();
        Assert.Equal([1, 2], await next);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"the 2 s window took {watch.Elapsed}");
    }

    [Fact]
    public async Task Items_that_queued_longer_than_the_window_go_at_once_without_waiting_a_window_more()
    {
        // Protects latency at moderate load: queries that queued while the previous batch was scored have already waited
        // their window; the batch they form must go as soon as the queue is drained (it used to wait a whole window from
        // when the reader took the first one, 2 ms per batch in the Scorer).
        var batcher = new MicroBatcher<int>(maxBatch: 64, TimeSpan.FromMilliseconds(300), capacity: 64, singleReader: true);
        await batcher.EnqueueAsync(1, CancellationToken.None);
        await batcher.EnqueueAsync(2, CancellationToken.None);
        await Task.Delay(400);
        var next = batcher.NextBatchAsync(CancellationToken.None);
        Assert.True(next.IsCompleted, "the batch of items older than the window must be formed without waiting");
        Assert.Equal([1, 2], await next);
    }

    [Fact]
    public async Task Stopping_cancels_a_waiting_reader_and_leaves_queued_items_to_take()
    {
        var batcher = new MicroBatcher<int>(maxBatch: 2, TimeSpan.FromMilliseconds(1), capacity: 2, singleReader: false);
        using var stop = new CancellationTokenSource();
        var waiting = batcher.NextBatchAsync(stop.Token);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        await batcher.EnqueueAsync(7, CancellationToken.None);
        Assert.Equal([7], batcher.TakeRemaining());
        Assert.Empty(batcher.TakeRemaining());
    }

    [Fact]
    public async Task Concurrent_readers_share_the_items_without_loss_or_repeats()
    {
        var batcher = new MicroBatcher<int>(maxBatch: 8, TimeSpan.FromMilliseconds(2), capacity: 32, singleReader: false);
        var seen = new System.Collections.Concurrent.ConcurrentBag<int>();
        async Task Read()
        {
            while (await batcher.NextBatchAsync(CancellationToken.None) is { } batch)
            {
                Assert.InRange(batch.Count, 1, 8);
                foreach (var i in batch)
                {
                    seen.Add(i);
                }
            }
        }

        var readers = new[] { Task.Run(Read), Task.Run(Read), Task.Run(Read) };
        for (int i = 0; i < 1000; i++)
        {
            await batcher.EnqueueAsync(i, CancellationToken.None);
        }

        batcher.Complete();
        await Task.WhenAll(readers);
        Assert.Equal(Enumerable.Range(0, 1000), seen.Order());
    }
}
