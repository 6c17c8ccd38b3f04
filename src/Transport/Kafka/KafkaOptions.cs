namespace Attribution.Transport.Kafka;

/// <summary>Options of the Kafka event log (configuration section <c>Transport:Kafka</c>).</summary>
public sealed class KafkaOptions
{
    /// <summary>Comma-separated <c>host:port</c> list, e.g. <c>localhost:9092</c>. Required.</summary>
    public string BootstrapServers { get; set; } = "";

    /// <summary>Client id prefix shown in broker logs.</summary>
    public string ClientId { get; set; } = "attribution";

    /// <summary>
    /// The librdkafka to load instead of the bundled one (librdkafka.redist): a path, or a soname the system's search
    /// path finds (e.g. <c>librdkafka.so.1</c>). Empty (the default) picks the bundled build (see <see cref="KafkaLibrary"/>).
    /// </summary>
    public string LibraryPath { get; set; } = "";

    /// <summary>Producer batching delay (<c>linger.ms</c>), 0..1000.</summary>
    public int LingerMs { get; set; } = 2;

    /// <summary>How long librdkafka keeps retrying one message before the produce fails (<c>message.timeout.ms</c>).</summary>
    public int MessageTimeoutMs { get; set; } = 30_000;

    /// <summary>Retries, on top of librdkafka's own, of a produce that failed transiently (e.g. message timeout).</summary>
    public int ProduceRetries { get; set; } = 3;

    /// <summary>First back-off between retries (doubles each attempt), in ms.</summary>
    public int RetryBackoffMs { get; set; } = 100;

    /// <summary>Consumer group session timeout (<c>session.timeout.ms</c>): how soon a dead member's partitions move.</summary>
    public int SessionTimeoutMs { get; set; } = 10_000;

    /// <summary>Period of background commits of <em>stored</em> offsets; 0 commits only on <c>Commit()</c>/revoke/close.</summary>
    public int AutoCommitIntervalMs { get; set; } = 1_000;

    /// <summary>Longest time a broker holds a fetch waiting for data (<c>fetch.wait.max.ms</c>). Real brokers answer as
    /// soon as data arrives; the librdkafka mock cluster waits the full time, so tests and benchmarks lower it.</summary>
    public int FetchWaitMaxMs { get; set; } = 500;

    /// <summary>
    /// TCP_NODELAY on the clients' broker sockets (librdkafka <c>socket.nagle.disable</c>, whose own default is false; the
    /// Java client's is true). On: each request leaves at once instead of waiting behind an unacknowledged segment.
    /// Measured over the mock cluster (docs/benchmarks/pipeline.md, 2026-12-05): 2.8-3.6x the Scorer's saturation
    /// throughput with it on, in 4 of 4 alternated pairs.
    /// </summary>
    public bool NoDelay { get; set; } = true;

    /// <summary>Replication factor for topics created without one.</summary>
    public short DefaultReplicationFactor { get; set; } = 1;

    /// <summary>Timeout of admin and metadata requests (topic creation, health checks), in ms.</summary>
    public int AdminTimeoutMs { get; set; } = 10_000;

    /// <summary>Extra librdkafka properties applied to every client (e.g. <c>security.protocol</c>, <c>sasl.*</c>).</summary>
    public Dictionary<string, string> Properties { get; set; } = [];

    /// <summary>Returns what is invalid, or null.</summary>
    public string? Validate() =>
        string.IsNullOrWhiteSpace(BootstrapServers) ? "Transport:Kafka:BootstrapServers is required when Transport:Kind is 'kafka' (e.g. 'localhost:9092')."
        : LingerMs is < 0 or > 1000 ? $"Transport:Kafka:LingerMs must be 0..1000, got {LingerMs}."
        : MessageTimeoutMs < 1000 ? $"Transport:Kafka:MessageTimeoutMs must be at least 1000, got {MessageTimeoutMs}."
        : ProduceRetries is < 0 or > 100 ? $"Transport:Kafka:ProduceRetries must be 0..100, got {ProduceRetries}."
        : RetryBackoffMs is < 1 or > 60_000 ? $"Transport:Kafka:RetryBackoffMs must be 1..60000, got {RetryBackoffMs}."
        : SessionTimeoutMs is < 1000 or > 300_000 ? $"Transport:Kafka:SessionTimeoutMs must be 1000..300000, got {SessionTimeoutMs}."
        : AutoCommitIntervalMs < 0 ? $"Transport:Kafka:AutoCommitIntervalMs must be >= 0, got {AutoCommitIntervalMs}."
        : DefaultReplicationFactor < 1 ? $"Transport:Kafka:DefaultReplicationFactor must be >= 1, got {DefaultReplicationFactor}."
        : FetchWaitMaxMs is < 0 or > 30_000 ? $"Transport:Kafka:FetchWaitMaxMs must be 0..30000, got {FetchWaitMaxMs}."
        : AdminTimeoutMs < 100 ? $"Transport:Kafka:AdminTimeoutMs must be >= 100, got {AdminTimeoutMs}."
        : null;
}
