using System.Diagnostics;
using System.Text;
using Attribution.Contracts;
using Attribution.MockKafka;
using Attribution.Scorer;
using Attribution.Transport;
using Attribution.Transport.Kafka;

namespace Attribution.Integration.Tests.Kafka;

/// <summary>
/// The Scorer's dedup reader over the Kafka protocol (one mock broker of its own): a partition marked stale (newly
/// assigned, or its produce failed) is read to its end before the next batch, so an attribution another producer wrote
/// just before is found however long the reader's fetch would have taken to bring it.
/// </summary>
public sealed class DeduplicatorTests
{
    [Fact]
    public async Task AStalePartition_IsReadToItsEnd_BeforeTheNextBatch()
    {
        KafkaLibrary.EnsureLoaded();
        using var cluster = new MockKafkaCluster(1);
        cluster.CreateTopic(Topics.Attributions, 2, 1);
        await using var log = new KafkaEventLog(new KafkaOptions
        {
            BootstrapServers = cluster.BootstrapServers,
            // The mock holds an empty fetch for the full wait: a record written now reaches the reader's fetch queue
            // only after up to 2 s, which is what the exact catch-up must not depend on.
            FetchWaitMaxMs = 2000,
            AdminTimeoutMs = 5000,
        });
        using var producer = log.CreateProducer();
        await producer.ProduceAsync(Topics.Attributions, EventMessage.Create("before", [1]));
        using var dedup = new AttributionDeduplicator(log, partitions: 2, window: 100);
        int p = Partitioner.ForKey(Encoding.UTF8.GetBytes("before"), 2);

        // Stale at start: the first batch of a partition reads what an earlier owner left.
        dedup.CatchUp([p], CancellationToken.None);
        Assert.True(dedup.Contains(p, "before"));

        // Another producer (an earlier owner) writes; the partition is re-assigned to this Scorer and so marked stale.
        var orphan = Enumerable.Range(0, 1000).Select(i => $"orphan-{i}").First(k => Partitioner.ForKey(Encoding.UTF8.GetBytes(k), 2) == p);
        var at = await producer.ProduceAsync(Topics.Attributions, EventMessage.Create(orphan, [2]));
        dedup.MarkStale([p]);
        var watch = Stopwatch.StartNew();
        dedup.CatchUp([p], CancellationToken.None);
        Assert.True(dedup.Contains(p, orphan), $"the stale partition's catch-up missed '{orphan}'");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"catch-up took {watch.Elapsed}");

        // A Scorer's own acknowledged output is remembered without reading it back.
        dedup.AddOwn(p, at.Offset + 1, "own");
        Assert.True(dedup.Contains(p, "own"));
    }
}
