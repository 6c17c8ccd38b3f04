using Attribution.Contracts;
using Attribution.Ingest;
using Attribution.Integration.Tests.Services;
using Attribution.MockKafka;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Attribution.Transport.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Attribution.Integration.Tests.KafkaPipeline;

/// <summary>
/// Ingest → Simulator → Scorer over the Kafka protocol: librdkafka's mock cluster (3 brokers, real loopback ports),
/// with faults injected mid-stream. Each test gets its own cluster, because the services use the pipeline's fixed
/// topic names; starting one takes milliseconds.
/// </summary>
public sealed class KafkaPipelineTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private const string RunId = "tiny-run";
    private const int Partitions = 4;
    private static readonly string[] PipelineTopics = [Topics.Checkpoints, Topics.Batches, Topics.Probes, Topics.Queries, Topics.Attributions, Topics.DeadLetter];

    private static (MockKafkaCluster Cluster, KafkaEventLog Log) StartCluster()
    {
        KafkaLibrary.EnsureLoaded();
        var cluster = new MockKafkaCluster(3);
        foreach (var topic in PipelineTopics)
        {
            cluster.CreateTopic(topic, Partitions, 3);
        }

        var log = new KafkaEventLog(new KafkaOptions
        {
            BootstrapServers = cluster.BootstrapServers,
            ClientId = "pipeline-kafka-tests",
            SessionTimeoutMs = 6000,
            RetryBackoffMs = 50,
            FetchWaitMaxMs = 20,
            AdminTimeoutMs = 5000,
            DefaultReplicationFactor = 3,
            Properties = { ["topic.metadata.refresh.interval.ms"] = "1000", ["reconnect.backoff.max.ms"] = "200" },
        });
        return (cluster, log);
    }

    private IHost Build(IEventLog log, bool ingestAndSimulate, bool scorer) => Pipeline.Build(log, s =>
    {
        if (ingestAndSimulate)
        {
            s.AddIngest(o =>
            {
                o.RunDirectory = fixture.RunDir;
                o.RunId = RunId;
                o.SourceCount = PipelineFixture.SourceCount;
                o.Partitions = Partitions;
            });
            s.AddSimulator(o => Pipeline.FastSimulation(o).ProbePartitions = Partitions);
        }

        if (scorer)
        {
            s.AddScorer(o =>
            {
                o.TopK = 5;
                o.QueryPartitions = Partitions;
                o.CommitEvery = 5;
            });
        }
    });

    private static async Task ProduceAsync(IEventLog log, IEventProducer producer, int from, int count, PipelineFixture fixture)
    {
        for (int i = from; i < from + count; i++)
        {
            await Pipeline.ProduceQueryAsync(log, producer, $"q-{i:D3}", fixture.TestImage(i));
        }
    }

    /// <summary>Query ids in the raw attributions topic, duplicates included.</summary>
    private static List<string> RawAttributionIds(IEventLog log) =>
        [.. Pipeline.ReadAll(log, Topics.Attributions).Select(r => EventCodecs.Attributions.Decode(r.Value).QueryId)];

    private static async Task WaitForIndexAsync(IHost host) =>
        await Pipeline.Until(() => host.Services.GetRequiredService<ScorerWorker>().Index.Current, m => m is not null, "the Scorer's probe index", 90);

    [Fact]
    public async Task EveryQueryIsAttributedExactlyOnce_ThroughABrokerOutageALeaderMoveAndInjectedErrors()
    {
        var (cluster, log) = StartCluster();
        using var _ = cluster;
        await using var __ = log;
        using var host = Build(log, ingestAndSimulate: true, scorer: true);
        await host.StartAsync();
        await WaitForIndexAsync(host);
        var producer = host.Services.GetRequiredService<IEventProducer>();
        var metrics = host.Services.GetRequiredService<ScorerMetrics>();

        await ProduceAsync(log, producer, 0, 15, fixture);

        // Broker 2 goes down; the mock has no controller, so we play it and fail its partitions over to brokers 1 and 3.
        cluster.SetBrokerDown(2);
        foreach (var topic in PipelineTopics)
        {
            for (int p = 0; p < Partitions; p++)
            {
                cluster.SetPartitionLeader(topic, p, p % 2 == 0 ? 1 : 3);
            }
        }

        await ProduceAsync(log, producer, 15, 15, fixture);
        cluster.SetBrokerUp(2);
        cluster.SetPartitionLeader(Topics.Queries, 0, 2);
        cluster.SetPartitionLeader(Topics.Attributions, 1, 2);
        // Retriable errors: NOT_LEADER_FOR_PARTITION (6), NOT_ENOUGH_REPLICAS (19), REQUEST_TIMED_OUT (7).
        cluster.PushRequestErrors(KafkaApiKey.Produce, 6, 19, 6);
        cluster.PushRequestErrors(KafkaApiKey.Fetch, 6, 7);
        await ProduceAsync(log, producer, 30, 15, fixture);
        const int n = 45;

        await Pipeline.Until(() => metrics.QueriesScored, c => c >= n, $"{n} queries scored", 90);
        await host.StopAsync();
        var ids = RawAttributionIds(log);
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"q-{i:D3}"), ids.Order());
    }

    [Fact]
    public async Task PoisonQueries_LandInTheDeadLetterTopicWithTheirError_AndTheStreamContinues()
    {
        var (cluster, log) = StartCluster();
        using var _ = cluster;
        await using var __ = log;
        using var host = Build(log, ingestAndSimulate: true, scorer: true);
        await host.StartAsync();
        await WaitForIndexAsync(host);
        var producer = host.Services.GetRequiredService<IEventProducer>();
        await ProduceAsync(log, producer, 0, 5, fixture);
        var nan = fixture.TestImage(5);
        nan[17] = float.NaN;
        await Pipeline.ProduceQueryAsync(log, producer, "poison-nan", nan);
        await Pipeline.ProduceQueryAsync(log, producer, "poison-width", new float[12]);
        await producer.ProduceAsync(Topics.Queries, EventMessage.Create("poison-bytes", "not arrow at all"u8.ToArray()));
        await ProduceAsync(log, producer, 5, 5, fixture);

        var metrics = host.Services.GetRequiredService<ScorerMetrics>();
        await Pipeline.Until(() => metrics.QueriesScored, c => c >= 10, "10 good queries scored", 90);
        await Pipeline.Until(() => Pipeline.Count(log, Topics.DeadLetter), c => c >= 3, "3 dead letters", 30);
        await host.StopAsync();

        var dead = Pipeline.ReadAll(log, Topics.DeadLetter).ToDictionary(r => System.Text.Encoding.UTF8.GetString(r.Key), r => r);
        Assert.Contains("non-finite", dead["poison-nan"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Contains("12 features", dead["poison-width"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Contains("Arrow", dead["poison-bytes"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Equal("not arrow at all"u8.ToArray(), dead["poison-bytes"].Value); // the original bytes travel with the error
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"q-{i:D3}"), RawAttributionIds(log).Order());
    }

    [Fact]
    public async Task ScorerKilledMidStream_AndReplacedInTheSameGroup_StillAttributesEveryQueryExactlyOnce()
    {
        var (cluster, log) = StartCluster();
        using var _ = cluster;
        await using var __ = log;
        using var upstream = Build(log, ingestAndSimulate: true, scorer: false);
        await upstream.StartAsync();
        var first = Build(log, ingestAndSimulate: false, scorer: true);
        await first.StartAsync();
        await WaitForIndexAsync(first);
        var producer = upstream.Services.GetRequiredService<IEventProducer>();
        const int n = 40;
        await ProduceAsync(log, producer, 0, n, fixture);
        await Pipeline.Until(() => first.Services.GetRequiredService<ScorerMetrics>().QueriesScored, c => c >= 10, "10 queries scored by the first Scorer", 90);

        // Killed, not stopped: no drain, no final commit; whatever it produced after its last commit is re-read.
        using (var kill = new CancellationTokenSource())
        {
            await kill.CancelAsync();
            try
            {
                await first.StopAsync(kill.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }

        first.Dispose();
        using var second = Build(log, ingestAndSimulate: false, scorer: true);
        await second.StartAsync();
        await Pipeline.Until(() => RawAttributionIds(log).Distinct().Count(), c => c >= n, $"{n} distinct attributions", 120);
        await second.StopAsync();
        await upstream.StopAsync();

        var ids = RawAttributionIds(log);
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"q-{i:D3}"), ids.Order());
    }
}
