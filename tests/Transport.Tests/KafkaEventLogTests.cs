using Attribution.MockKafka;
using Microsoft.Extensions.Logging.Abstractions;
using static Attribution.Transport.Tests.TestUtil;

namespace Attribution.Transport.Tests;

[Collection(KafkaCollection.Name)]
public sealed class KafkaEventLogTests(MockKafkaFixture kafka)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static async Task<List<EventPosition>> ProduceAsync(IEventProducer producer, string topic, int from, int count) =>
        [.. await Task.WhenAll(Enumerable.Range(from, count).Select(i => producer.ProduceAsync(topic, EventMessage.Create($"key{i % 13}", Utf8(i.ToString())))))];

    private static HashSet<string> Values(IEnumerable<EventRecord> records) => [.. records.Select(r => Text(r.Value))];

    private static HashSet<string> Expected(int from, int count) => [.. Enumerable.Range(from, count).Select(i => i.ToString())];

    [Fact]
    public async Task Produce_and_consume_delivers_each_event_once_and_a_restarted_consumer_resumes_after_the_commit()
    {
        var topic = await kafka.NewTopicAsync("exactly-once");
        var group = UniqueName("g");
        using var producer = kafka.Log.CreateProducer();
        var positions = await ProduceAsync(producer, topic, 0, 200);
        Assert.Equal(200, positions.Distinct().Count());

        List<EventRecord> first;
        using (var consumer = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [topic], GroupId = group }))
        {
            first = ConsumeN(consumer, 120, Wait, storeAndCommit: true);
            consumer.Close();
        }

        Assert.Equal(120, first.Count);
        using var restarted = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [topic], GroupId = group });
        var rest = ConsumeN(restarted, 80, Wait, storeAndCommit: true);
        Assert.Equal(80, rest.Count);
        Assert.Empty(Values(first).Intersect(Values(rest)));
        Assert.Equal(Expected(0, 200), Values(first.Concat(rest)));
        Assert.Null(restarted.Consume(TimeSpan.FromMilliseconds(300)));

        // Per-key order survives the trip: within a partition values of one key increase.
        foreach (var perKey in first.Concat(rest).GroupBy(r => r.KeyString))
        {
            var byOffset = perKey.OrderBy(r => r.Offset).Select(r => int.Parse(Text(r.Value), System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(byOffset.Order(), byOffset);
        }
    }

    [Fact]
    public async Task Keys_land_in_the_same_partition_as_in_the_embedded_log()
    {
        var topic = await kafka.NewTopicAsync("partitioning", partitions: 5);
        using var producer = kafka.Log.CreateProducer();
        for (var i = 0; i < 20; i++)
        {
            var key = Utf8($"query-{i}");
            var position = await producer.ProduceAsync(topic, new EventMessage(key, Utf8("v")));
            Assert.Equal(Partitioner.ForKey(key, 5), position.Partition);
        }
    }

    [Fact]
    public async Task Events_produced_while_a_broker_is_down_are_delivered_once_it_is_back()
    {
        var topic = await kafka.NewTopicAsync("broker-down");
        using var producer = kafka.Log.CreateProducer();
        await ProduceAsync(producer, topic, 0, 50);
        kafka.Cluster.SetBrokerDown(1);
        Task<List<EventPosition>> during;
        try
        {
            during = ProduceAsync(producer, topic, 50, 50);
            // Partitions led by other brokers keep going while broker 1 is down.
            await Task.WhenAny(during, Task.Delay(500));
        }
        finally
        {
            kafka.Cluster.SetBrokerUp(1);
        }

        Assert.Equal(50, (await during.WaitAsync(Wait)).Count);
        using var consumer = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [topic], GroupId = UniqueName("g") });
        var records = ConsumeN(consumer, 100, Wait, storeAndCommit: true);
        Assert.Equal(Expected(0, 100), Values(records));
        Assert.Equal(100, records.Count);
    }

    [Fact]
    public async Task Moving_partition_leaders_mid_stream_loses_nothing()
    {
        var topic = await kafka.NewTopicAsync("leader-move");
        using var producer = kafka.Log.CreateProducer();
        using var consumer = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [topic], GroupId = UniqueName("g") });
        await ProduceAsync(producer, topic, 0, 50);
        var before = ConsumeN(consumer, 50, Wait, storeAndCommit: true);
        for (var p = 0; p < 3; p++)
        {
            kafka.Cluster.SetPartitionLeader(topic, p, (p + 1) % 3 + 1);
        }

        await ProduceAsync(producer, topic, 50, 50);
        var after = ConsumeN(consumer, 50, Wait, storeAndCommit: true);
        Assert.Equal(Expected(0, 100), Values(before.Concat(after)));
        Assert.Equal(100, before.Count + after.Count);
    }

    [Fact]
    public async Task Injected_produce_and_fetch_errors_are_retried_and_everything_arrives_once()
    {
        var topic = await kafka.NewTopicAsync("injected-errors");
        using var producer = kafka.Log.CreateProducer();
        using var consumer = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [topic], GroupId = UniqueName("g") });
        // NOT_LEADER_FOR_PARTITION (6), NOT_ENOUGH_REPLICAS (19), REQUEST_TIMED_OUT (7).
        kafka.Cluster.PushRequestErrors(KafkaApiKey.Produce, 6, 19, 19, 6);
        await ProduceAsync(producer, topic, 0, 100);
        kafka.Cluster.PushRequestErrors(KafkaApiKey.Fetch, 6, 7, 6);
        var records = ConsumeN(consumer, 100, Wait, storeAndCommit: true);
        Assert.Equal(100, records.Count);
        Assert.Equal(Expected(0, 100), Values(records));
        Assert.Null(consumer.Consume(TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Standalone_reader_reads_every_partition_from_the_beginning_without_a_group()
    {
        var topic = await kafka.NewTopicAsync("rebuild");
        using var producer = kafka.Log.CreateProducer();
        await ProduceAsync(producer, topic, 0, 30);
        using var reader = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [topic], Start = StartPosition.Beginning });
        Assert.Equal(3, reader.Assignment.Count);
        var records = ConsumeN(reader, 30, Wait);
        Assert.Equal(Expected(0, 30), Values(records));
        Assert.Equal(30, reader.Assignment.Sum(reader.GetEndOffset));
    }

    [Fact]
    public async Task Local_watermark_gives_end_offset_and_position_without_asking_the_broker()
    {
        // Protects the Scorer's lag gauge: end offset as learned from fetches, position = next offset returned.
        var topic = await kafka.NewTopicAsync("watermark");
        using var producer = kafka.Log.CreateProducer();
        await ProduceAsync(producer, topic, 0, 30);
        using var reader = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [topic], Start = StartPosition.Beginning });
        var records = ConsumeN(reader, 5, Wait);
        var partition = records[^1].TopicPartition;
        var consumed = records.Count(r => r.TopicPartition == partition);
        var mark = reader.GetLocalWatermark(partition);
        Assert.NotNull(mark);
        Assert.Equal(reader.GetEndOffset(partition), mark.Value.EndOffset);
        Assert.Equal(records.Where(r => r.TopicPartition == partition).Max(r => r.Offset) + 1, mark.Value.Position);
        Assert.Null(reader.GetLocalWatermark(new TopicPartition(topic + "-absent", 0)));
        Assert.True(consumed > 0);
    }

    [Fact]
    public async Task Standalone_reader_with_a_tail_reads_only_the_last_records_of_each_partition()
    {
        var topic = await kafka.NewTopicAsync("tail", partitions: 1);
        using var producer = kafka.Log.CreateProducer();
        await ProduceAsync(producer, topic, 0, 30);
        using var reader = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [topic], Start = StartPosition.Beginning, TailRecords = 5 });
        var records = ConsumeN(reader, 30, TimeSpan.FromSeconds(3));
        Assert.Equal(Expected(25, 5), Values(records));
        Assert.Equal(25, records[0].Offset);
    }

    [Fact]
    public async Task Worker_on_kafka_dead_letters_poison_with_original_position_and_commits_past_it()
    {
        var topic = await kafka.NewTopicAsync("dlq-in", partitions: 1);
        var dlqTopic = await kafka.NewTopicAsync("dlq", partitions: 1);
        using var producer = kafka.Log.CreateProducer();
        await producer.ProduceAsync(topic, EventMessage.Create("a", Utf8("fine")));
        await producer.ProduceAsync(topic, EventMessage.Create("b", [0xff, 0x00]));
        await producer.ProduceAsync(topic, EventMessage.Create("c", Utf8("fine too")));
        var group = UniqueName("g");
        var worker = new ScriptedWorker(kafka.Log, new EventWorkerOptions
        {
            Topics = [topic],
            GroupId = group,
            DeadLetterTopic = dlqTopic,
            CommitInterval = TimeSpan.FromMilliseconds(50),
        }, producer, (r, _) => r.Value[0] == 0xff ? throw new InvalidDataException("truncated probe") : Task.CompletedTask);
        await worker.StartAsync(CancellationToken.None);
        Assert.True(await WaitUntilAsync(() => worker.HandledCount == 2 && worker.DeadLetteredCount == 1, Wait));
        await worker.StopAsync(CancellationToken.None);

        using var dlq = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [dlqTopic], Start = StartPosition.Beginning });
        var dead = Assert.Single(ConsumeN(dlq, 1, Wait));
        Assert.Equal([0xff, 0x00], dead.Value);
        Assert.Equal("b", dead.KeyString);
        Assert.Equal(topic, dead.GetHeaderString(DeadLetterPublisher.OriginalTopicHeader));
        Assert.Equal("1", dead.GetHeaderString(DeadLetterPublisher.OriginalOffsetHeader));
        Assert.Equal("truncated probe", dead.GetHeaderString(DeadLetterPublisher.ErrorMessageHeader));

        // Committed past all three: the group has nothing left.
        using var after = kafka.Log.CreateConsumer(new ConsumerSettings { Topics = [topic], GroupId = group, NoCommitFallback = NoCommitFallback.Latest });
        Assert.Null(after.Consume(TimeSpan.FromSeconds(2)));
    }

    [Fact]
    public async Task Health_check_reports_the_three_mock_brokers()
    {
        var health = await kafka.Log.CheckHealthAsync();
        Assert.True(health.Healthy, health.Description);
        Assert.Contains("3 brokers", health.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unreachable_cluster_is_reported_unhealthy_not_thrown()
    {
        await using var log = new Kafka.KafkaEventLog(new Kafka.KafkaOptions { BootstrapServers = "127.0.0.1:1", AdminTimeoutMs = 300 }, NullLoggerFactory.Instance);
        var health = await log.CheckHealthAsync();
        Assert.False(health.Healthy);
        Assert.Contains("127.0.0.1:1", health.Description, StringComparison.Ordinal);
    }
}
