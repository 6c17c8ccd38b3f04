using System.Text;
using Attribution.Contracts;
using Attribution.MockKafka;
using Attribution.Scorer;
using Attribution.Transport;
using Attribution.Transport.Messages;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace Attribution.Integration.Tests.Kafka;

/// <summary>
/// The Scorer over the Kafka protocol (librdkafka's mock cluster, 3 brokers) with faults injected mid-stream, checked on
/// the raw attributions topic: every query id exactly once, none missing, no duplicates. Each test has its own query-id
/// prefix and Scorer consumer group; the probe set is built once by the fixture.
/// </summary>
[Collection(KafkaPipelineCollection.Name)]
public sealed class KafkaPipelineFaultTests(KafkaPipelineFixture kafka, ITestOutputHelper output)
{
    private const int N = 60;
    private const int Third = N / 3;

    private static string Unique(string name) => $"{name}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>
    /// A unique group id whose mock coordinator is not broker 2: librdkafka's mock picks the broker at index
    /// crc32(group) % brokers of its broker list (rd_kafka_mock_cluster_get_coord); index 1 of 3 is broker 2 whichever
    /// end the list is filled from.
    /// </summary>
    private static string GroupNotCoordinatedByBroker2()
    {
        while (true)
        {
            var group = Unique("scorer");
            if (Crc32(Encoding.UTF8.GetBytes(group)) % 3 != 1)
            {
                return group;
            }
        }
    }

    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc >> 1) ^ (0xEDB88320 & (uint)-(int)(crc & 1));
            }
        }

        return ~crc;
    }

    private ScorerWorker? _lastWorker;

    private async Task<ScorerWorker> StartScorerAsync(IHost host)
    {
        await host.StartAsync();
        var worker = host.Services.GetRequiredService<ScorerWorker>();
        _lastWorker = worker;
        await KafkaPipelineFixture.Until(() => worker.Index.Current, m => m is not null, () => "the Scorer's probe index from the probes topic" + $" (index error: {worker.Index.LastError ?? "none"}, swaps {worker.Index.Swaps})", 60);
        return worker;
    }

    /// <summary>
    /// Waits for <paramref name="count"/> distinct attributions and writes how long they took. Past the budget it keeps
    /// waiting up to <see cref="LateGraceSeconds"/> more before failing, so a failure says which it was: a query that came
    /// late (budget too short for the machine's load) or one that never came (lost).
    /// </summary>
    private async Task WaitForDistinctAsync(string prefix, int count, double seconds = 60)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        int Distinct() => kafka.RawAttributionIds(prefix).Distinct().Count();
        try
        {
            await KafkaPipelineFixture.Until(Distinct, c => c >= count, $"{count} distinct attributions for {prefix}", seconds);
            output.WriteLine($"{count} distinct attributions for {prefix} after {watch.Elapsed.TotalSeconds:F1} s (budget {seconds} s)");
        }
        catch (TimeoutException)
        {
            int atBudget = Distinct();
            try
            {
                await KafkaPipelineFixture.Until(Distinct, c => c >= count, $"{count} distinct attributions for {prefix}", LateGraceSeconds);
            }
            catch (TimeoutException)
            {
                Assert.Fail($"LOST: {atBudget} of {count} distinct attributions for {prefix} within the {seconds} s budget, still {Distinct()} after {watch.Elapsed.TotalSeconds:F0} s; {Diagnose(prefix, count)}");
            }

            Assert.Fail($"LATE: {atBudget} of {count} distinct attributions for {prefix} within the {seconds} s budget; all {count} after {watch.Elapsed.TotalSeconds:F1} s");
        }
    }

    private const double LateGraceSeconds = 120;

    /// <summary>Where the missing queries of <paramref name="prefix"/> are: on the queries topic, dead-lettered, and the Scorer's counters.</summary>
    private string Diagnose(string prefix, int count)
    {
        var attributed = kafka.RawAttributionIds(prefix).ToHashSet();
        var missing = Enumerable.Range(0, count).Select(i => $"{prefix}-{i:D3}").Where(id => !attributed.Contains(id)).ToList();
        var all = kafka.ReadAll(Topics.Queries);
        var queries = all.Where(r => missing.Contains(r.KeyString)).Select(r => $"{r.KeyString}@{r.Partition}/{r.Offset}").ToList();
        // Where the producer was told each missing query was written, and what the log holds there.
        var acked = missing.Select(id => kafka.Acknowledged.TryGetValue(id, out var at)
            ? $"{id} acked at {at.Partition}/{at.Offset}, log has {(all.FirstOrDefault(r => r.Partition == at.Partition && r.Offset == at.Offset) is { } r ? $"'{r.KeyString}'" : $"nothing (partition ends at {all.Where(x => x.Partition == at.Partition).Select(x => x.Offset + 1).DefaultIfEmpty(0).Max()})")}"
            : $"{id} never acknowledged").ToList();
        var dead = kafka.ReadAll(Topics.DeadLetter).Where(r => missing.Contains(r.KeyString))
            .Select(r => $"{r.KeyString}: {r.GetHeaderString(DeadLetterPublisher.ErrorMessageHeader)}").ToList();
        var m = _lastWorker?.Metrics;
        return $"missing [{string.Join(", ", missing)}]; on the queries topic [{string.Join(", ", queries)}]; produce acknowledgements [{string.Join("; ", acked)}]; dead-lettered [{string.Join(" | ", dead)}]; " +
            $"Scorer: scored {m?.QueriesScored}, duplicates {m?.DuplicatesSkipped}, rejected {m?.QueriesRejected}, handled {_lastWorker?.HandledCount}, dead-lettered {_lastWorker?.DeadLetteredCount}, " +
            $"worker {(_lastWorker?.ExecuteTask is { } t ? t.Status.ToString() : "not started")}";
    }

    private void AssertExactlyOnce(string prefix, int n)
    {
        var ids = kafka.RawAttributionIds(prefix);
        var duplicates = ids.GroupBy(i => i).Where(g => g.Count() > 1).Select(g => $"{g.Key}×{g.Count()}").ToList();
        Assert.True(duplicates.Count == 0, $"duplicates in the raw attributions topic: {string.Join(", ", duplicates)}");
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"{prefix}-{i:D3}"), ids.Order());
    }

    private void Report(string test, ScorerMetrics m) =>
        // A new group starts at the beginning of the shared queries topic: earlier tests' queries come back as duplicates.
        output.WriteLine($"{test}: scored {m.QueriesScored}, duplicates skipped {m.DuplicatesSkipped}, rejected {m.QueriesRejected}; probe set built over Kafka in {kafka.ProbeSetSeconds:F1} s");

    [Fact]
    public async Task EveryQueryIsAttributedExactlyOnce_InTheRawTopic_AndEachResultIsComplete()
    {
        var prefix = Unique("plain");
        using var host = kafka.BuildScorer(Unique("scorer"));
        var worker = await StartScorerAsync(host);
        await kafka.ProduceQueriesAsync(prefix, 0, N);
        await WaitForDistinctAsync(prefix, N);
        await host.StopAsync();

        AssertExactlyOnce(prefix, N);
        var results = kafka.ReadAll(Topics.Attributions).Select(r => (Record: r, Result: EventCodecs.Attributions.Decode(r.Value)))
            .Where(x => x.Result.QueryId.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        Assert.All(results, x =>
        {
            Assert.Equal(x.Result.QueryId, Encoding.UTF8.GetString(x.Record.Key));
            Assert.Equal(EventHeaders.ArrowStreamContentType, x.Record.GetHeaderString(EventHeaders.ContentType));
            Assert.Equal($"{KafkaPipelineFixture.RunId}@4", x.Result.ModelVersion);
            Assert.Equal(5, x.Result.ExampleIds.Count);
            Assert.Equal([0L, 1, 2, 3], x.Result.SourceIds);
            Assert.All(x.Result.SourceScores, s => Assert.True(float.IsFinite(s)));
        });
        // Same key → same partition: attribution partition p holds exactly the queries of query partition p.
        Assert.All(results, x => Assert.Equal(Partitioner.ForKey(x.Record.Key, KafkaPipelineFixture.Partitions), x.Record.Partition));
        Report(nameof(EveryQueryIsAttributedExactlyOnce_InTheRawTopic_AndEachResultIsComplete), worker.Metrics);
    }

    [Fact]
    public async Task ABrokerTakenDownMidStream_AndBroughtBack_LosesAndDuplicatesNothing()
    {
        var prefix = Unique("broker-down");
        // The mock has no coordinator failover (a real cluster moves a group's coordinator with its __consumer_offsets
        // partition), so the group is named to be coordinated by a surviving broker; see GroupNotCoordinatedByBroker2.
        using var host = kafka.BuildScorer(GroupNotCoordinatedByBroker2());
        var worker = await StartScorerAsync(host);
        await kafka.ProduceQueriesAsync(prefix, 0, Third);
        await KafkaPipelineFixture.Until(() => worker.Metrics.QueriesScored, c => c >= Third / 2, "half the first third scored");

        kafka.Cluster.SetBrokerDown(2);
        try
        {
            // The mock has no controller: play it, failing broker 2's partitions over to brokers 1 and 3.
            foreach (var topic in KafkaPipelineFixture.PipelineTopics)
            {
                for (int p = 0; p < KafkaPipelineFixture.Partitions; p++)
                {
                    kafka.Cluster.SetPartitionLeader(topic, p, p % 2 == 0 ? 1 : 3);
                }
            }

            // Producers keep going through the failover (each query acknowledged with acks=all), and so does the
            // Scorer: the second third is attributed while broker 2 is still down.
            await kafka.ProduceQueriesAsync(prefix, Third, Third).WaitAsync(TimeSpan.FromSeconds(30));
            await WaitForDistinctAsync(prefix, 2 * Third, 45);
        }
        finally
        {
            kafka.Cluster.SetBrokerUp(2);
        }

        for (int p = 0; p < KafkaPipelineFixture.Partitions; p++)
        {
            kafka.Cluster.SetPartitionLeader(Topics.Queries, p, 2);
            kafka.Cluster.SetPartitionLeader(Topics.Attributions, p, 2);
        }

        await kafka.ProduceQueriesAsync(prefix, 2 * Third, Third);
        await WaitForDistinctAsync(prefix, N, 90);
        await host.StopAsync();
        AssertExactlyOnce(prefix, N);
        Report(nameof(ABrokerTakenDownMidStream_AndBroughtBack_LosesAndDuplicatesNothing), worker.Metrics);
    }

    [Fact]
    public async Task PartitionLeadersMovedMidStream_LoseAndDuplicateNothing()
    {
        var prefix = Unique("leader-move");
        using var host = kafka.BuildScorer(Unique("scorer"));
        var worker = await StartScorerAsync(host);
        for (int round = 0; round < 3; round++)
        {
            var sending = kafka.ProduceQueriesAsync(prefix, round * Third, Third);
            foreach (var topic in new[] { Topics.Queries, Topics.Attributions })
            {
                for (int p = 0; p < KafkaPipelineFixture.Partitions; p++)
                {
                    kafka.Cluster.SetPartitionLeader(topic, p, (p + round) % 3 + 1);
                }
            }

            await sending;
        }

        await WaitForDistinctAsync(prefix, N, 90);
        await host.StopAsync();
        AssertExactlyOnce(prefix, N);
        Report(nameof(PartitionLeadersMovedMidStream_LoseAndDuplicateNothing), worker.Metrics);
    }

    [Fact]
    public async Task InjectedProduceFetchAndCommitErrors_AreRetried_AndEveryQueryIsAttributedOnce()
    {
        var prefix = Unique("errors");
        using var host = kafka.BuildScorer(Unique("scorer"));
        var worker = await StartScorerAsync(host);
        await kafka.ProduceQueriesAsync(prefix, 0, Third);
        // Retriable: NOT_LEADER_FOR_PARTITION (6), REQUEST_TIMED_OUT (7), NOT_ENOUGH_REPLICAS (19), COORDINATOR_NOT_AVAILABLE (15).
        kafka.Cluster.PushRequestErrors(KafkaApiKey.Produce, 6, 19, 19, 6, 7);
        kafka.Cluster.PushRequestErrors(KafkaApiKey.Fetch, 6, 7, 6);
        kafka.Cluster.PushRequestErrors(KafkaApiKey.OffsetCommit, 15, 7);
        await kafka.ProduceQueriesAsync(prefix, Third, Third);
        kafka.Cluster.PushRequestErrors(KafkaApiKey.Produce, 6, 7, 19);
        await kafka.ProduceQueriesAsync(prefix, 2 * Third, Third);
        await WaitForDistinctAsync(prefix, N, 90);
        await host.StopAsync();
        AssertExactlyOnce(prefix, N);
        Report(nameof(InjectedProduceFetchAndCommitErrors_AreRetried_AndEveryQueryIsAttributedOnce), worker.Metrics);
    }

    [Fact]
    public async Task AScorerKilledMidStream_AndReplacedInTheSameGroup_StillAttributesEveryQueryExactlyOnce()
    {
        var prefix = Unique("killed");
        var group = Unique("scorer");
        // Commits only by count, rarely: the killed member leaves a wide uncommitted span to be redelivered.
        static void Rare(ScorerOptions o)
        {
            o.CommitEvery = 1000;
            o.CommitIntervalMs = 60_000;
        }

        var first = kafka.BuildScorer(group, Rare);
        var firstWorker = await StartScorerAsync(first);
        await kafka.ProduceQueriesAsync(prefix, 0, 2 * Third);
        await KafkaPipelineFixture.Until(() => firstWorker.Metrics.QueriesScored, c => c >= Third, "the first Scorer scoring");

        // Killed: no StopAsync (no drain, no orderly hand-over); disposing the host cancels the worker under its feet.
        first.Dispose();
        long scoredByFirst = firstWorker.Metrics.QueriesScored;

        using var second = kafka.BuildScorer(group, Rare);
        var secondWorker = await StartScorerAsync(second);
        await kafka.ProduceQueriesAsync(prefix, 2 * Third, Third);
        await WaitForDistinctAsync(prefix, N, 90);
        await second.StopAsync();
        AssertExactlyOnce(prefix, N);
        output.WriteLine($"first Scorer scored {scoredByFirst} before it was killed");
        Report(nameof(AScorerKilledMidStream_AndReplacedInTheSameGroup_StillAttributesEveryQueryExactlyOnce), secondWorker.Metrics);
    }

    [Fact]
    public async Task PoisonQueries_LandInTheDeadLetterTopicWithTheirError_WhileTheStreamContinues()
    {
        var prefix = Unique("poison");
        using var host = kafka.BuildScorer(Unique("scorer"));
        var worker = await StartScorerAsync(host);
        await kafka.ProduceQueriesAsync(prefix, 0, Third);
        var nan = kafka.TestImage(7);
        nan[100] = float.NaN;
        byte[] garbage = [0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3];
        await kafka.ProduceQueryAsync($"{prefix}-bad-nan", nan);
        await kafka.ProduceQueryAsync($"{prefix}-bad-width", new float[13]);
        await kafka.Producer.ProduceAsync(Topics.Queries, EventMessage.Create($"{prefix}-bad-bytes", garbage));
        await kafka.ProduceQueriesAsync(prefix, Third, Third);

        await WaitForDistinctAsync(prefix, 2 * Third);
        await KafkaPipelineFixture.Until(() => kafka.ReadAll(Topics.DeadLetter).Count(r => Encoding.UTF8.GetString(r.Key).StartsWith(prefix, StringComparison.Ordinal)), c => c >= 3, "3 dead letters");
        await host.StopAsync();

        var dead = kafka.ReadAll(Topics.DeadLetter).Where(r => Encoding.UTF8.GetString(r.Key).StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(r => Encoding.UTF8.GetString(r.Key)[(prefix.Length + 1)..]);
        Assert.Equal(["bad-bytes", "bad-nan", "bad-width"], dead.Keys.Order());
        Assert.Contains("non-finite", dead["bad-nan"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Contains("13 features", dead["bad-width"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Contains("Arrow", dead["bad-bytes"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Equal(garbage, dead["bad-bytes"].Value); // the original bytes travel with the error
        Assert.All(dead.Values, r => Assert.Equal(Topics.Queries, r.GetHeaderString(DeadLetterPublisher.OriginalTopicHeader)));
        Assert.Equal(3, worker.Metrics.QueriesRejected);
        // The stream went on: the good queries after the poison are attributed, once each, and no poison is.
        AssertExactlyOnce(prefix, 2 * Third);
        Report(nameof(PoisonQueries_LandInTheDeadLetterTopicWithTheirError_WhileTheStreamContinues), worker.Metrics);
    }

    [Fact]
    public async Task AContaminationAlert_ReachesAMassTransitConsumerOverRabbitMq()
    {
        var prefix = Unique("alert");
        using var monitor = kafka.BuildHost(_ => { }, KafkaPipelineFixture.RabbitBus(), x => x.AddConsumer<ContaminationMonitor>());
        await monitor.StartAsync();
        var monitorBus = monitor.Services.GetRequiredService<IBusControl>();
        Assert.Equal(BusHealthStatus.Healthy, await monitorBus.WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(30)));

        // Source 2 flagged, threshold low enough that a query whose support leans on it trips the alert.
        using var host = kafka.BuildScorer(Unique("scorer"), o =>
        {
            o.FlaggedSources = [2];
            o.AlertThreshold = 0.2;
        }, KafkaPipelineFixture.RabbitBus());
        var worker = await StartScorerAsync(host);
        var scorerBus = host.Services.GetRequiredService<IBusControl>();
        Assert.Equal(BusHealthStatus.Healthy, await scorerBus.WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(30)));
        await kafka.ProduceQueriesAsync(prefix, 0, Third);
        await WaitForDistinctAsync(prefix, Third);
        // An alert is published after its attribution, so stop the Scorer (which drains its work) before
        // reading how many it raised; then every one of them must arrive at the monitor.
        await host.StopAsync();
        var raised = worker.Metrics.AlertsRaised;
        Assert.True(raised > 0, "no query put 20% of its positive source mass on source 2; the scenario needs one");
        var alerts = await KafkaPipelineFixture.Until(
            () => ContaminationMonitor.Received.Where(a => a.QueryId.StartsWith(prefix, StringComparison.Ordinal)).ToList(),
            l => l.Count >= raised, "the alerts over RabbitMQ", 30);
        await Task.Delay(500); // a duplicate delivery would arrive now
        alerts = ContaminationMonitor.Received.Where(a => a.QueryId.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        await monitor.StopAsync();

        // Each alert names a query of this test that was attributed, the flagged source, and a share over the threshold.
        var attributed = kafka.RawAttributionIds(prefix).ToHashSet();
        Assert.Equal(raised, alerts.Count);
        Assert.All(alerts, a =>
        {
            Assert.Contains(a.QueryId, attributed);
            Assert.Equal($"{KafkaPipelineFixture.RunId}@4", a.ModelVersion);
            Assert.Equal(AlertRule.SourceShare, a.Rule);
            Assert.Contains(2L, a.FlaggedSourceIds);
            Assert.InRange(a.Score, 0.2, 1.0);
            Assert.Equal(0.2, a.Threshold);
        });
        output.WriteLine($"{alerts.Count} of {Third} queries alerted over RabbitMQ");
    }
}
