using Attribution.MockKafka;
using Attribution.Transport.Kafka;

namespace Attribution.Transport.Tests;

/// <summary>One librdkafka mock cluster (3 brokers on loopback) for the whole Kafka test collection.</summary>
public sealed class MockKafkaFixture : IAsyncLifetime
{
    public MockKafkaCluster Cluster { get; private set; } = null!;

    public KafkaEventLog Log { get; private set; } = null!;

    public KafkaOptions Options => Log.Options;

    public Task InitializeAsync()
    {
        // Confluent.Kafka and the mock cluster share the one librdkafka KafkaLibrary chose (the bundled build).
        KafkaLibrary.EnsureLoaded();
        Cluster = new MockKafkaCluster(3);
        Log = new KafkaEventLog(new KafkaOptions
        {
            BootstrapServers = Cluster.BootstrapServers,
            ClientId = "transport-tests",
            SessionTimeoutMs = 6000,
            AutoCommitIntervalMs = 0,
            RetryBackoffMs = 50,
            FetchWaitMaxMs = 20,
            AdminTimeoutMs = 5000,
            DefaultReplicationFactor = 3,
            Properties = { ["topic.metadata.refresh.interval.ms"] = "1000", ["reconnect.backoff.max.ms"] = "200" },
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (Log is not null)
        {
            await Log.DisposeAsync();
        }

        Cluster?.Dispose();
    }

    /// <summary>A fresh topic for one test.</summary>
    /// <remarks>librdkafka's mock cluster reports no controller, so the AdminClient's CreateTopics cannot reach it;
    /// topics are created through the mock's own API instead.</remarks>
    public async Task<string> NewTopicAsync(string prefix, int partitions = 3)
    {
        var topic = TestUtil.UniqueName(prefix);
        Cluster.CreateTopic(topic, partitions, 3);
        Assert.True(await TestUtil.WaitUntilAsync(() => Log.GetPartitionCountAsync(topic).GetAwaiter().GetResult() == partitions, TimeSpan.FromSeconds(10)));
        return topic;
    }
}

[CollectionDefinition(Name)]
public sealed class KafkaCollection : ICollectionFixture<MockKafkaFixture>
{
    public const string Name = "mock kafka cluster";
}
