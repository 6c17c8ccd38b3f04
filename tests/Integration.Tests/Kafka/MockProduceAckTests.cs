using System.Text;
using Attribution.MockKafka;
using Attribution.Transport;
using Attribution.Transport.Kafka;
using Xunit.Abstractions;

namespace Attribution.Integration.Tests.Kafka;

/// <summary>
/// Why the fault tests' mock cluster runs producers with one request in flight: librdkafka's mock does not check
/// idempotent sequence numbers for a non-transactional producer, while librdkafka takes an acknowledged later request
/// as proof that the earlier sequences were written (a real broker refuses a gap with OUT_OF_ORDER_SEQUENCE_NUMBER). With
/// several requests in flight, a request failed by an injected error followed by a successful one is reported
/// delivered though it was never appended. With one in flight every acknowledged record is on the log.
/// </summary>
public sealed class MockProduceAckTests(ITestOutputHelper output)
{
    private const string Topic = "acks";

    /// <summary>Rounds of: inject retriable Produce errors, produce 20 records concurrently, read every acknowledged one back.</summary>
    private static async Task<(int Acknowledged, List<string> Missing)> RunAsync(MockKafkaCluster cluster, string inFlight, int rounds)
    {
        await using var log = new KafkaEventLog(new KafkaOptions
        {
            BootstrapServers = cluster.BootstrapServers,
            ClientId = "mock-acks-" + inFlight,
            RetryBackoffMs = 20,
            DefaultReplicationFactor = 3,
            Properties = { ["max.in.flight.requests.per.connection"] = inFlight, ["linger.ms"] = "1" },
        });
        using var producer = log.CreateProducer();
        var acked = new Dictionary<string, EventPosition>();
        for (int round = 0; round < rounds; round++)
        {
            cluster.PushRequestErrors(KafkaApiKey.Produce, 6, 19, 19, 6, 7);
            var keys = Enumerable.Range(0, 20).Select(i => $"{inFlight}-{round}-{i}").ToArray();
            var positions = await Task.WhenAll(keys.Select(k => producer.ProduceAsync(Topic, EventMessage.Create(k, Encoding.UTF8.GetBytes(k)))));
            for (int i = 0; i < keys.Length; i++)
            {
                acked[keys[i]] = positions[i];
            }
        }

        var onLog = new HashSet<string>(StringComparer.Ordinal);
        using var reader = log.CreateConsumer(new ConsumerSettings { Topics = [Topic], Start = StartPosition.Beginning });
        var ends = Enumerable.Range(0, 4).Select(p => reader.GetEndOffset(new TopicPartition(Topic, p))).ToArray();
        var next = new long[4];
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Enumerable.Range(0, 4).Any(p => next[p] < ends[p]) && DateTime.UtcNow < deadline)
        {
            if (reader.Consume(TimeSpan.FromMilliseconds(100)) is { } r)
            {
                next[r.Partition] = r.Offset + 1;
                onLog.Add(r.KeyString);
            }
        }

        return (acked.Count, [.. acked.Keys.Where(k => !onLog.Contains(k)).Select(k => $"{k} (acked at {acked[k]})")]);
    }

    [Fact]
    public async Task With_one_request_in_flight_every_acknowledged_record_is_on_the_mock_log_under_injected_produce_errors()
    {
        KafkaLibrary.EnsureLoaded();
        using var cluster = new MockKafkaCluster(3);
        cluster.CreateTopic(Topic, 4, 3);
        // MOCK_ACKS_IN_FLIGHT=5 (librdkafka's default) reruns the measurement of docs/benchmarks/pipeline.md (expect misses).
        var inFlight = Environment.GetEnvironmentVariable("MOCK_ACKS_IN_FLIGHT") ?? "1";
        var (acknowledged, missing) = await RunAsync(cluster, inFlight, 30);
        output.WriteLine($"max.in.flight {inFlight}: {acknowledged} acknowledged, {missing.Count} missing from the log: {string.Join(", ", missing.Take(10))}");
        Assert.True(missing.Count == 0, $"acknowledged but not on the log: {string.Join(", ", missing)}");
    }
}
