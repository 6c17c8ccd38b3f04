using System.Collections.Concurrent;
using Attribution.Transport.Embedded;
using Microsoft.Extensions.Logging.Abstractions;
using static Attribution.Transport.Tests.TestUtil;

namespace Attribution.Transport.Tests;

/// <summary>A worker whose behaviour per event value is scripted by the test.</summary>
internal sealed class ScriptedWorker(IEventLog log, EventWorkerOptions options, IEventProducer? deadLetters, Func<EventRecord, int, Task> handle)
    : EventConsumerWorker(log, options, NullLogger.Instance, deadLetters)
{
    private readonly ConcurrentDictionary<(string, long), int> _attempts = new();

    public ConcurrentQueue<EventRecord> Handled { get; } = new();

    protected override async Task HandleAsync(EventRecord record, CancellationToken cancellationToken)
    {
        var attempt = _attempts.AddOrUpdate((record.TopicPartition.ToString(), record.Offset), 1, (_, a) => a + 1);
        await handle(record, attempt);
        Handled.Enqueue(record);
    }
}

public sealed class EventConsumerWorkerTests
{
    private static EventWorkerOptions Options(string topic, string? dlq = null) => new()
    {
        Topics = [topic],
        GroupId = "workers",
        DeadLetterTopic = dlq,
        MaxInFlight = 4,
        RetryBackoff = TimeSpan.FromMilliseconds(1),
        CommitInterval = TimeSpan.FromMilliseconds(20),
        PollTimeout = TimeSpan.FromMilliseconds(20),
    };

    [Fact]
    public async Task Worker_handles_every_event_once_in_per_key_order_and_commits_them()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("in", Partitions: 3));
        using var producer = log.CreateProducer();
        for (var i = 0; i < 300; i++)
        {
            await producer.ProduceAsync("in", EventMessage.Create($"key{i % 10}", Utf8(i.ToString())));
        }

        var worker = new ScriptedWorker(log, Options("in"), null, async (_, _) => await Task.Yield());
        await worker.StartAsync(CancellationToken.None);
        Assert.True(await WaitUntilAsync(() => worker.HandledCount == 300, TimeSpan.FromSeconds(10)));
        await worker.StopAsync(CancellationToken.None);

        Assert.Equal(300, worker.Handled.Select(r => (r.Partition, r.Offset)).Distinct().Count());
        foreach (var perKey in worker.Handled.GroupBy(r => r.KeyString))
        {
            var values = perKey.Select(r => int.Parse(Text(r.Value), System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(values.Order(), values);
        }

        // Everything was committed at shutdown: the group has nothing left to read.
        using var after = log.CreateConsumer(new ConsumerSettings { Topics = ["in"], GroupId = "workers" });
        Assert.Null(after.Consume(TimeSpan.FromMilliseconds(50)));
    }

    [Fact]
    public async Task Partition_lag_counts_events_not_yet_handled_including_those_queued_in_lanes()
    {
        // Protects the Scorer's consumer-lag gauge: 50 events, the first 10 handled, the 11th blocked (one key, one
        // lane, so the other 39 wait queued behind it): lag 40; once released, lag 0.
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("in", Partitions: 1));
        using var producer = log.CreateProducer();
        for (var i = 0; i < 50; i++)
        {
            await producer.ProduceAsync("in", EventMessage.Create("one-key", Utf8(i.ToString())));
        }

        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var worker = new ScriptedWorker(log, Options("in"), null, (r, _) => r.Offset >= 10 ? gate.Task : Task.CompletedTask);
        await worker.StartAsync(CancellationToken.None);
        var tp = new TopicPartition("in", 0);
        Assert.True(await WaitUntilAsync(() => worker.HandledCount == 10 && worker.PartitionLag.GetValueOrDefault(tp) == 40, TimeSpan.FromSeconds(10)),
            $"lag {worker.PartitionLag.GetValueOrDefault(tp, -1)} after {worker.HandledCount} handled; expected 40 after 10");
        gate.SetResult();
        Assert.True(await WaitUntilAsync(() => worker.HandledCount == 50 && worker.PartitionLag.GetValueOrDefault(tp, -1) == 0, TimeSpan.FromSeconds(10)),
            $"lag {worker.PartitionLag.GetValueOrDefault(tp, -1)} after {worker.HandledCount} handled; expected 0 after 50");
        await worker.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task Poison_event_is_dead_lettered_with_its_bytes_and_error_and_the_stream_continues()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("in", Partitions: 1));
        await log.CreateTopicAsync(new TopicSpec("dead-letter"));
        using var producer = log.CreateProducer();
        for (var i = 0; i < 5; i++)
        {
            await producer.ProduceAsync("in", new EventMessage(Utf8($"k{i}"), i == 2 ? [0xde, 0xad] : Utf8(i.ToString()), [EventHeader.Utf8("content-type", "test")]));
        }

        var worker = new ScriptedWorker(log, Options("in", "dead-letter"), producer, (r, _) =>
            r.Value.Length == 2 && r.Value[0] == 0xde ? throw new InvalidDataException("bad magic 0xdead") : Task.CompletedTask);
        await worker.StartAsync(CancellationToken.None);
        Assert.True(await WaitUntilAsync(() => worker.HandledCount == 4 && worker.DeadLetteredCount == 1, TimeSpan.FromSeconds(10)));
        await worker.StopAsync(CancellationToken.None);

        using var dlq = log.CreateConsumer(new ConsumerSettings { Topics = ["dead-letter"] });
        var dead = dlq.Consume(TimeSpan.FromSeconds(2))!;
        Assert.Equal([0xde, 0xad], dead.Value);
        Assert.Equal("k2", dead.KeyString);
        Assert.Equal("in", dead.GetHeaderString(DeadLetterPublisher.OriginalTopicHeader));
        Assert.Equal("0", dead.GetHeaderString(DeadLetterPublisher.OriginalPartitionHeader));
        Assert.Equal("2", dead.GetHeaderString(DeadLetterPublisher.OriginalOffsetHeader));
        Assert.Equal(typeof(InvalidDataException).FullName, dead.GetHeaderString(DeadLetterPublisher.ErrorClassHeader));
        Assert.Equal("bad magic 0xdead", dead.GetHeaderString(DeadLetterPublisher.ErrorMessageHeader));
        Assert.Equal("test", dead.GetHeaderString("content-type"));

        using var after = log.CreateConsumer(new ConsumerSettings { Topics = ["in"], GroupId = "workers" });
        Assert.Null(after.Consume(TimeSpan.FromMilliseconds(50)));
    }

    [Fact]
    public async Task Transient_failures_are_retried_with_back_off_and_then_succeed()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("in"));
        using var producer = log.CreateProducer();
        await producer.ProduceAsync("in", EventMessage.Create("k", Utf8("flaky")));
        var worker = new ScriptedWorker(log, Options("in"), null, (_, attempt) =>
            attempt < 3 ? throw new TransientEventException("store busy") : Task.CompletedTask);
        await worker.StartAsync(CancellationToken.None);
        Assert.True(await WaitUntilAsync(() => worker.HandledCount == 1, TimeSpan.FromSeconds(10)));
        await worker.StopAsync(CancellationToken.None);
        Assert.Equal(0, worker.DeadLetteredCount);
    }

    [Fact]
    public async Task Fatal_failure_stops_the_worker_without_committing_past_the_event()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("in"));
        using var producer = log.CreateProducer();
        await producer.ProduceAsync("in", EventMessage.Create("k", Utf8("ok")));
        await producer.ProduceAsync("in", EventMessage.Create("k", Utf8("boom")));
        await producer.ProduceAsync("in", EventMessage.Create("k", Utf8("never")));
        var worker = new ScriptedWorker(log, Options("in"), null, (r, _) =>
            Text(r.Value) == "boom" ? throw new FatalEventException("disk gone") : Task.CompletedTask);
        await worker.StartAsync(CancellationToken.None);
        Assert.True(await WaitUntilAsync(() => worker.ExecuteTask!.IsCompleted, TimeSpan.FromSeconds(10)));
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => worker.ExecuteTask!);
        Assert.IsType<FatalEventException>(error.InnerException);
        Assert.Equal(1, worker.HandledCount);

        // The fatal event is redelivered to the next instance.
        using var after = log.CreateConsumer(new ConsumerSettings { Topics = ["in"], GroupId = "workers" });
        Assert.Equal("boom", Text(after.Consume(TimeSpan.FromSeconds(1))!.Value));
    }

    [Fact]
    public async Task Poison_event_without_a_dead_letter_topic_is_fatal_rather_than_skipped()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("in"));
        using var producer = log.CreateProducer();
        await producer.ProduceAsync("in", EventMessage.Create("k", Utf8("poison")));
        var worker = new ScriptedWorker(log, Options("in"), null, (_, _) => throw new FormatException("not a query"));
        await worker.StartAsync(CancellationToken.None);
        Assert.True(await WaitUntilAsync(() => worker.ExecuteTask!.IsCompleted, TimeSpan.FromSeconds(10)));
        await Assert.ThrowsAsync<InvalidOperationException>(() => worker.ExecuteTask!);
        using var after = log.CreateConsumer(new ConsumerSettings { Topics = ["in"], GroupId = "workers" });
        Assert.Equal("poison", Text(after.Consume(TimeSpan.FromSeconds(1))!.Value));
    }
}
