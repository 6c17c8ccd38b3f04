using System.Globalization;
using Attribution.Transport.Embedded;
using static Attribution.Transport.Tests.TestUtil;

namespace Attribution.Transport.Tests;

public sealed class EmbeddedEventLogTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Events_with_the_same_key_go_to_one_partition_in_production_order()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("orders", Partitions: 8));
        using var producer = log.CreateProducer();
        var positions = new List<EventPosition>();
        for (var i = 0; i < 50; i++)
        {
            positions.Add(await producer.ProduceAsync("orders", EventMessage.Create($"k{i % 5}", Utf8(i.ToString()))));
        }

        // Each key maps to exactly one partition, and offsets within it grow in production order.
        for (var k = 0; k < 5; k++)
        {
            var mine = positions.Where((_, i) => i % 5 == k).ToList();
            Assert.Single(mine.Select(p => p.Partition).Distinct());
            Assert.Equal(mine.Select(p => p.Offset).Order(), mine.Select(p => p.Offset));
        }

        using var consumer = log.CreateConsumer(new ConsumerSettings { Topics = ["orders"], GroupId = "g" });
        var records = ConsumeN(consumer, 50, Wait);
        Assert.Equal(50, records.Count);
        foreach (var group in records.GroupBy(r => r.KeyString))
        {
            var values = group.Select(r => int.Parse(Text(r.Value), System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(values.Order(), values);
        }
    }

    [Fact]
    public void Kafka_murmur2_partitioner_matches_the_java_client_reference_values()
    {
        // Values from org.apache.kafka.common.utils.Utils.murmur2 (kafka UtilsTest.testMurmur2).
        Assert.Equal(-973_932_308, Partitioner.Murmur2(Utf8("21")));
        Assert.Equal(-790_332_482, Partitioner.Murmur2(Utf8("foobar")));
        Assert.Equal(-985_981_536, Partitioner.Murmur2(Utf8("a-little-bit-long-string")));
        Assert.Equal(-1_486_304_829, Partitioner.Murmur2(Utf8("a-little-bit-longer-string")));
        Assert.Equal(-58_897_971, Partitioner.Murmur2(Utf8("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")));
        Assert.Equal(479_470_107, Partitioner.Murmur2("abc"u8));
    }

    [Fact]
    public async Task Group_members_split_partitions_and_take_them_back_when_one_leaves()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("q", Partitions: 4));
        using var producer = log.CreateProducer();
        using var a = log.CreateConsumer(new ConsumerSettings { Topics = ["q"], GroupId = "scorers" });
        Assert.Null(a.Consume(TimeSpan.FromMilliseconds(10)));
        Assert.Equal(4, a.Assignment.Count);

        var b = log.CreateConsumer(new ConsumerSettings { Topics = ["q"], GroupId = "scorers" });
        // a releases on its next poll, then b can take its share.
        a.Consume(TimeSpan.FromMilliseconds(10));
        b.Consume(TimeSpan.FromMilliseconds(10));
        Assert.Equal(2, a.Assignment.Count);
        Assert.Equal(2, b.Assignment.Count);
        Assert.Empty(a.Assignment.Intersect(b.Assignment));

        for (var i = 0; i < 40; i++)
        {
            await producer.ProduceAsync("q", EventMessage.Create($"query-{i}", Utf8("x")));
        }

        var fromA = ConsumeN(a, 40, TimeSpan.FromMilliseconds(300));
        var fromB = ConsumeN(b, 40, TimeSpan.FromMilliseconds(300));
        Assert.Equal(40, fromA.Count + fromB.Count);
        Assert.All(fromA, r => Assert.Contains(r.TopicPartition, a.Assignment));
        Assert.All(fromB, r => Assert.Contains(r.TopicPartition, b.Assignment));

        b.Close();
        a.Consume(TimeSpan.FromMilliseconds(10));
        Assert.Equal(4, a.Assignment.Count);
    }

    [Fact]
    public async Task Revoke_callback_runs_before_partitions_move_and_its_stored_offsets_are_committed()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("t", Partitions: 2));
        using var producer = log.CreateProducer();
        for (var p = 0; p < 10; p++)
        {
            await producer.ProduceAsync("t", EventMessage.Create($"k{p}", Utf8("v")));
        }

        IEventConsumer? aRef = null;
        var revoked = new List<TopicPartition>();
        using var a = log.CreateConsumer(new ConsumerSettings
        {
            Topics = ["t"],
            GroupId = "g",
            PartitionsRevoked = tps =>
            {
                revoked.AddRange(tps);
                foreach (var tp in tps)
                {
                    aRef!.StoreOffset(tp, 1);
                }
            },
        });
        aRef = a;
        a.Consume(TimeSpan.FromMilliseconds(10));
        using var b = log.CreateConsumer(new ConsumerSettings { Topics = ["t"], GroupId = "g" });
        a.Consume(TimeSpan.FromMilliseconds(10));
        var first = b.Consume(TimeSpan.FromSeconds(1));

        var moved = Assert.Single(revoked);
        Assert.NotNull(first);
        Assert.Equal(moved, first.TopicPartition);
        Assert.Equal(1, first.Offset); // resumed after the offset committed in the revoke callback
    }

    [Fact]
    public async Task Restarted_consumer_resumes_after_the_committed_offset_and_uncommitted_work_is_redelivered()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("jobs", Partitions: 1));
        using var producer = log.CreateProducer();
        for (var i = 0; i < 10; i++)
        {
            await producer.ProduceAsync("jobs", EventMessage.Create("k", Utf8(i.ToString())));
        }

        using (var c = log.CreateConsumer(new ConsumerSettings { Topics = ["jobs"], GroupId = "w" }))
        {
            var first = ConsumeN(c, 4, Wait);
            c.StoreOffset(first[3]);
            c.Commit();
            var more = ConsumeN(c, 2, Wait);
            c.StoreOffset(more[1]); // stored but never committed: lost with the consumer
        }

        using var restarted = log.CreateConsumer(new ConsumerSettings { Topics = ["jobs"], GroupId = "w" });
        var rest = ConsumeN(restarted, 6, Wait);
        Assert.Equal(["4", "5", "6", "7", "8", "9"], rest.Select(r => Text(r.Value)));
        Assert.Null(restarted.Consume(TimeSpan.FromMilliseconds(20)));
    }

    [Fact]
    public async Task Compacted_topic_read_from_the_beginning_yields_the_latest_value_per_key()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("probes", Partitions: 2, Compacted: true));
        using var producer = log.CreateProducer();
        for (var round = 0; round < 3000; round++)
        {
            await producer.ProduceAsync("probes", EventMessage.Create($"ex{round % 7}", Utf8(round.ToString())));
        }

        // A standalone reader (a new Scorer rebuilding its index) sees each key once, with its last value.
        using var reader = log.CreateConsumer(new ConsumerSettings { Topics = ["probes"], Start = StartPosition.Beginning });
        var records = ConsumeN(reader, 100, TimeSpan.FromMilliseconds(300));
        Assert.Equal(7, records.Count);
        var latest = records.ToDictionary(r => r.KeyString, r => Text(r.Value));
        for (var k = 0; k < 7; k++)
        {
            Assert.Equal((2993 + ((k - 2993 % 7 + 7) % 7)).ToString(), latest[$"ex{k}"]);
        }

        Assert.Equal(2, reader.Assignment.Count);
        Assert.Null(reader.GroupId);
    }

    [Fact]
    public async Task Standalone_reader_with_a_tail_starts_that_many_records_before_the_end()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("tail", Partitions: 1));
        using var producer = log.CreateProducer();
        for (var i = 0; i < 20; i++)
        {
            await producer.ProduceAsync("tail", EventMessage.Create($"k{i}", Utf8(i.ToString())));
        }

        using var reader = log.CreateConsumer(new ConsumerSettings { Topics = ["tail"], Start = StartPosition.Beginning, TailRecords = 4 });
        Assert.Equal(["16", "17", "18", "19"], ConsumeN(reader, 20, TimeSpan.FromMilliseconds(300)).Select(r => Text(r.Value)));
        using var all = log.CreateConsumer(new ConsumerSettings { Topics = ["tail"], Start = StartPosition.Beginning, TailRecords = 100 });
        Assert.Equal(20, ConsumeN(all, 30, TimeSpan.FromMilliseconds(300)).Count);
        Assert.Throws<ArgumentException>(() => log.CreateConsumer(new ConsumerSettings { Topics = ["tail"], GroupId = "g", TailRecords = 4 }));
    }

    [Fact]
    public async Task Full_partition_makes_the_producer_wait_until_a_group_commits()
    {
        await using var log = new EmbeddedEventLog(new EmbeddedOptions { MaxRecordsPerPartition = 4 });
        await log.CreateTopicAsync(new TopicSpec("bp", Partitions: 1));
        using var consumer = log.CreateConsumer(new ConsumerSettings { Topics = ["bp"], GroupId = "g" });
        using var producer = log.CreateProducer();
        for (var i = 0; i < 4; i++)
        {
            Assert.True(producer.ProduceAsync("bp", EventMessage.Create("k", Utf8(i.ToString()))).IsCompletedSuccessfully);
        }

        var blocked = producer.ProduceAsync("bp", EventMessage.Create("k", Utf8("4")));
        Assert.False(blocked.IsCompleted);

        var first = consumer.Consume(Wait)!;
        consumer.StoreOffset(first);
        Assert.False(blocked.IsCompleted); // stored is not enough: only a commit frees space
        consumer.Commit();
        var position = await blocked.WaitAsync(Wait);
        Assert.Equal(4, position.Offset);
    }

    [Fact]
    public async Task Full_partition_without_a_consumer_group_drops_its_oldest_records_instead_of_blocking()
    {
        await using var log = new EmbeddedEventLog(new EmbeddedOptions { MaxRecordsPerPartition = 32 });
        await log.CreateTopicAsync(new TopicSpec("retained", Partitions: 1));
        using var producer = log.CreateProducer();
        for (var i = 0; i < 100; i++)
        {
            Assert.True(producer.ProduceAsync("retained", EventMessage.Create("k", Utf8(i.ToString(CultureInfo.InvariantCulture)))).IsCompletedSuccessfully);
        }

        using var reader = log.CreateConsumer(new ConsumerSettings { Topics = ["retained"], Start = StartPosition.Beginning });
        var seen = new List<long>();
        while (reader.Consume(TimeSpan.FromMilliseconds(50)) is { } r)
        {
            seen.Add(r.Offset);
        }

        Assert.InRange(seen.Count, 1, 32);
        Assert.Equal(99, seen[^1]); // the newest records are the ones kept
        Assert.Equal(Enumerable.Range((int)seen[0], seen.Count).Select(o => (long)o), seen);
    }

    [Fact]
    public async Task Waiting_producer_observes_cancellation()
    {
        await using var log = new EmbeddedEventLog(new EmbeddedOptions { MaxRecordsPerPartition = 1 });
        await log.CreateTopicAsync(new TopicSpec("bp2"));
        using var consumer = log.CreateConsumer(new ConsumerSettings { Topics = ["bp2"], GroupId = "g" });
        using var producer = log.CreateProducer();
        await producer.ProduceAsync("bp2", EventMessage.Create("k", Utf8("0")));
        using var cts = new CancellationTokenSource();
        var blocked = producer.ProduceAsync("bp2", EventMessage.Create("k", Utf8("1")), cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => blocked);
    }

    [Fact]
    public async Task Consume_returns_null_on_timeout_and_throws_on_cancellation_with_the_callers_token()
    {
        await using var log = new EmbeddedEventLog();
        using var consumer = log.CreateConsumer(new ConsumerSettings { Topics = ["empty"], GroupId = "g" });
        Assert.Null(consumer.Consume(TimeSpan.FromMilliseconds(20)));

        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        var e = Assert.ThrowsAny<OperationCanceledException>(() => consumer.Consume(TimeSpan.FromSeconds(30), cts.Token));
        Assert.Equal(cts.Token, e.CancellationToken);
    }

    [Fact]
    public async Task Blocked_consumer_wakes_as_soon_as_an_event_is_produced()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("wake"));
        using var consumer = log.CreateConsumer(new ConsumerSettings { Topics = ["wake"], GroupId = "g" });
        Assert.Null(consumer.Consume(TimeSpan.FromMilliseconds(5)));
        var consuming = Task.Run(() => consumer.Consume(TimeSpan.FromSeconds(10)));
        using var producer = log.CreateProducer();
        await producer.ProduceAsync("wake", EventMessage.Create("k", Utf8("hello")));
        var record = await consuming.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("hello", Text(record!.Value));
    }

    [Fact]
    public async Task Invalid_topic_names_and_settings_are_rejected_with_a_message_that_says_how_to_fix_them()
    {
        await using var log = new EmbeddedEventLog(new EmbeddedOptions { AutoCreateTopics = false });
        var bad = await Assert.ThrowsAsync<ArgumentException>(() => log.CreateTopicAsync(new TopicSpec("bad topic!")));
        Assert.Contains("use only letters", bad.Message, StringComparison.Ordinal);
        using var producer = log.CreateProducer();
        var missing = await Assert.ThrowsAsync<EventLogException>(() => producer.ProduceAsync("nope", EventMessage.Create("k", [])));
        Assert.Contains("CreateTopicAsync", missing.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => log.CreateConsumer(new ConsumerSettings { Topics = [] }));
        Assert.Throws<ArgumentException>(() => new EmbeddedEventLog(new EmbeddedOptions { MaxRecordsPerPartition = 0 }));
    }

    [Fact]
    public async Task Store_offset_for_a_partition_not_assigned_is_an_error_not_a_silent_loss()
    {
        await using var log = new EmbeddedEventLog();
        using var consumer = log.CreateConsumer(new ConsumerSettings { Topics = ["s"], GroupId = "g" });
        var e = Assert.Throws<EventLogException>(() => consumer.StoreOffset(new TopicPartition("s", 0), 3));
        Assert.Contains("not assigned", e.Message, StringComparison.Ordinal);
    }
}
