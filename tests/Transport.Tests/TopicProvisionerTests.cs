using System.Diagnostics;
using Attribution.Transport.Embedded;
using static Attribution.Transport.Tests.TestUtil;

namespace Attribution.Transport.Tests;

/// <summary>Topic provisioning an operator can live with: create what is missing, else use what fits, else one line.</summary>
public sealed class TopicProvisionerTests
{
    private static readonly TopicSpec[] Pipeline =
    [
        new("queries", 4), new("attributions", 4, PartitionsOf: "queries"), new("probes", 4, Compacted: true), new("dead-letter"),
    ];

    private static Dictionary<string, TopicDescription> Present(params TopicDescription[] topics) => topics.ToDictionary(t => t.Name);

    private static Dictionary<string, string> NoErrors => [];

    [Fact]
    public void Topics_that_exist_with_the_right_compaction_fit_whatever_their_partition_count_unless_it_must_match_another()
    {
        var a = TopicProvisioner.Assess(TopicProvisioner.Merge(Pipeline), Present(
            new("queries", 8, false), new("attributions", 8, false), new("probes", 2, true), new("dead-letter", 1, false)), NoErrors);

        Assert.Empty(a.Problems);
        Assert.Empty(a.Unverified);
    }

    [Fact]
    public void Missing_topics_that_could_not_be_created_are_named_with_partitions_and_cleanup_policy_in_one_line()
    {
        var a = TopicProvisioner.Assess(TopicProvisioner.Merge(Pipeline), Present(new("queries", 6, false), new("dead-letter", 1, false)),
            new Dictionary<string, string> { ["attributions"] = "Topic authorization failed", ["probes"] = "Topic authorization failed" });

        // Merged order: a topic whose partition count follows another comes after the others.
        Assert.Equal(["probes", "attributions"], a.Problems.Select(p => p.Topic));
        var line = a.Message("kafka");
        Assert.DoesNotContain('\n', line);
        Assert.Equal(
            "The kafka topics this command needs are missing or do not fit and could not be created (Topic authorization failed): " +
            "create probes (4 partitions, cleanup.policy=compact), attributions (6 partitions, cleanup.policy=delete); then run it again.", line);
    }

    [Fact]
    public void Existing_topics_with_the_wrong_compaction_or_a_partition_count_that_must_match_are_to_be_recreated()
    {
        var a = TopicProvisioner.Assess(TopicProvisioner.Merge(Pipeline), Present(
            new("queries", 4, false), new("attributions", 2, false), new("probes", 4, false), new("dead-letter", 1, true)), NoErrors);

        Assert.Equal(
            "The kafka topics this command needs are missing or do not fit: recreate probes (4 partitions, cleanup.policy=compact): it is not compacted, " +
            "dead-letter (1 partition, cleanup.policy=delete): it is compacted, attributions (4 partitions, cleanup.policy=delete): it has 2 partitions, needs as many as queries; then run it again.",
            a.Message("kafka"));
        Assert.All(a.Problems, p => Assert.True(p.Exists));
    }

    [Fact]
    public void A_compaction_the_log_cannot_read_is_accepted_and_reported_as_unverified()
    {
        var a = TopicProvisioner.Assess(TopicProvisioner.Merge(Pipeline), Present(
            new("queries", 4, null, "DescribeConfigs: not supported"), new("attributions", 4, null, "x"), new("probes", 4, null, "DescribeConfigs: not supported"), new("dead-letter", 1, false)), NoErrors);

        Assert.Empty(a.Problems);
        Assert.Equal([("queries", "DescribeConfigs: not supported"), ("probes", "DescribeConfigs: not supported"), ("attributions", "x")], a.Unverified);
    }

    [Fact]
    public void A_topic_asked_for_twice_is_merged_to_the_larger_partition_count_and_follower_topics_come_after_their_leader()
    {
        var merged = TopicProvisioner.Merge([new("attributions", 2, PartitionsOf: "queries"), new("checkpoints", 1), new("queries", 3), new("checkpoints", 2)]);

        Assert.Equal([("checkpoints", 2), ("queries", 3), ("attributions", 2)], merged.Select(s => (s.Name, s.Partitions)));
        Assert.Throws<ArgumentException>(() => TopicProvisioner.Merge([new("probes", 1, Compacted: true), new("probes", 1)]));
    }

    [Fact]
    public async Task On_a_log_that_can_create_topics_the_missing_ones_are_created_and_a_follower_takes_its_leaders_existing_count()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec("queries", 6));

        var partitions = await new TopicProvisioner(log).EnsureAsync(Pipeline);

        Assert.Equal(new Dictionary<string, int> { ["queries"] = 6, ["attributions"] = 6, ["probes"] = 4, ["dead-letter"] = 1 }, partitions);
        var described = await log.DescribeTopicsAsync(["probes", "attributions", "absent"]);
        Assert.Equal([new TopicDescription("probes", 4, true), new TopicDescription("attributions", 6, false)], described.Values.OrderBy(d => d.Name == "attributions"));
    }
}

/// <summary>The same against a Kafka protocol broker that refuses CreateTopics and DescribeConfigs (librdkafka's mock).</summary>
[Collection(KafkaCollection.Name)]
public sealed class KafkaTopicProvisionerTests(MockKafkaFixture kafka)
{
    private static TopicSpec[] Specs(string prefix) =>
        [new($"{prefix}-q", 3), new($"{prefix}-a", 3, PartitionsOf: $"{prefix}-q"), new($"{prefix}-p", 4, Compacted: true)];

    [Fact]
    public async Task Missing_topics_on_a_broker_without_CreateTopics_stop_with_one_line_naming_each_topic_fast()
    {
        var prefix = UniqueName("prov");
        var watch = Stopwatch.StartNew();

        var e = await Assert.ThrowsAsync<TopicProvisioningException>(() => new TopicProvisioner(kafka.Log).EnsureAsync(Specs(prefix)));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}: an admin request waited for its timeout");
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("not supported by broker", e.Message, StringComparison.Ordinal);
        Assert.Contains($"create {prefix}-q (3 partitions, cleanup.policy=delete), {prefix}-p (4 partitions, cleanup.policy=compact), {prefix}-a (3 partitions, cleanup.policy=delete);", e.Message, StringComparison.Ordinal);
        Assert.IsType<EventLogException>(e.InnerException);
    }

    [Fact]
    public async Task Topics_an_operator_created_are_used_when_they_fit_and_refused_when_the_follower_count_differs()
    {
        var prefix = UniqueName("prov");
        kafka.Cluster.CreateTopic($"{prefix}-q", 5, 3);
        kafka.Cluster.CreateTopic($"{prefix}-a", 5, 3);
        kafka.Cluster.CreateTopic($"{prefix}-p", 2, 3);
        Assert.True(await WaitUntilAsync(() => kafka.Log.GetPartitionCountAsync($"{prefix}-p").GetAwaiter().GetResult() == 2, TimeSpan.FromSeconds(10)));

        var partitions = await new TopicProvisioner(kafka.Log).EnsureAsync(Specs(prefix));

        Assert.Equal(new Dictionary<string, int> { [$"{prefix}-q"] = 5, [$"{prefix}-a"] = 5, [$"{prefix}-p"] = 2 }, partitions);
        // The mock has no DescribeConfigs: compaction is unknown, with the broker's reason.
        var described = await kafka.Log.DescribeTopicsAsync([$"{prefix}-p"]);
        Assert.Null(described[$"{prefix}-p"].Compacted);
        Assert.Contains("not supported", described[$"{prefix}-p"].ConfigError, StringComparison.Ordinal);

        var other = UniqueName("prov");
        kafka.Cluster.CreateTopic($"{other}-q", 3, 3);
        kafka.Cluster.CreateTopic($"{other}-a", 2, 3);
        kafka.Cluster.CreateTopic($"{other}-p", 4, 3);
        Assert.True(await WaitUntilAsync(() => kafka.Log.GetPartitionCountAsync($"{other}-p").GetAwaiter().GetResult() == 4, TimeSpan.FromSeconds(10)));
        var e = await Assert.ThrowsAsync<TopicProvisioningException>(() => new TopicProvisioner(kafka.Log).EnsureAsync(Specs(other)));
        Assert.Contains($"recreate {other}-a (3 partitions, cleanup.policy=delete): it has 2 partitions, needs as many as {other}-q", e.Message, StringComparison.Ordinal);
    }
}
