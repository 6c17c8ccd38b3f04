namespace Attribution.Transport;

/// <summary>
/// An append-only, partitioned event log (Kafka's model): the factory for producers and consumers, and its admin.
/// Two implementations: <see cref="Embedded.EmbeddedEventLog"/> (in-process, no broker) and
/// <see cref="Kafka.KafkaEventLog"/> (Confluent.Kafka over the bundled librdkafka). Register one with
/// <c>services.AddEventLog(configuration)</c>. Thread-safe.
/// </summary>
public interface IEventLog : IAsyncDisposable
{
    /// <summary>"embedded" or "kafka", for logs and health reports.</summary>
    string Kind { get; }

    /// <summary>
    /// Creates a topic if it does not exist (idempotent: an existing topic is left as it is).
    /// </summary>
    /// <exception cref="ArgumentException">The spec is invalid.</exception>
    /// <exception cref="EventLogException">The log refused or could not be reached.</exception>
    Task CreateTopicAsync(TopicSpec spec, CancellationToken cancellationToken = default);

    /// <summary>Number of partitions of <paramref name="topic"/>, or null when the topic does not exist.</summary>
    Task<int?> GetPartitionCountAsync(string topic, CancellationToken cancellationToken = default);

    /// <summary>
    /// What the log knows of the named topics that exist (absent ones are not in the result): partition count and
    /// whether the topic is compacted. Kafka reads <c>cleanup.policy</c> with DescribeConfigs; a cluster that refuses or
    /// does not implement it leaves <see cref="TopicDescription.Compacted"/> null and says why.
    /// </summary>
    /// <exception cref="EventLogException">The log could not be reached.</exception>
    Task<IReadOnlyDictionary<string, TopicDescription>> DescribeTopicsAsync(IReadOnlyCollection<string> topics, CancellationToken cancellationToken = default);

    /// <summary>
    /// Creates a producer. Producers are thread-safe and meant to be shared: create one per process and dispose it at
    /// shutdown (disposal flushes what is in flight).
    /// </summary>
    IEventProducer CreateProducer();

    /// <summary>Creates a consumer subscribed to <see cref="ConsumerSettings.Topics"/>. One thread uses a consumer.</summary>
    IEventConsumer CreateConsumer(ConsumerSettings settings);

    /// <summary>Checks that the log is usable (Kafka: metadata from a broker within the timeout).</summary>
    Task<EventLogHealth> CheckHealthAsync(CancellationToken cancellationToken = default);
}

/// <summary>An existing topic, as <see cref="IEventLog.DescribeTopicsAsync"/> found it.</summary>
/// <param name="Name">Topic name.</param>
/// <param name="Partitions">Partition count.</param>
/// <param name="Compacted">Whether <c>cleanup.policy</c> includes <c>compact</c>; null when it could not be read.</param>
/// <param name="ConfigError">Why the configuration could not be read (null when it was).</param>
public sealed record TopicDescription(string Name, int Partitions, bool? Compacted, string? ConfigError = null);

/// <summary>Result of <see cref="IEventLog.CheckHealthAsync"/>.</summary>
/// <param name="Healthy">Whether the log can be used.</param>
/// <param name="Description">What was checked and what was found.</param>
public sealed record EventLogHealth(bool Healthy, string Description);

/// <summary>Produces events with delivery acknowledgement. Thread-safe.</summary>
public interface IEventProducer : IDisposable
{
    /// <summary>
    /// Appends <paramref name="message"/> to <paramref name="topic"/> and completes once the log acknowledged it
    /// (Kafka: acks=all with the idempotent producer). Events with the same key go to the same partition in the order
    /// they were produced from one producer. The embedded log applies back-pressure here: the task waits while the
    /// partition is full.
    /// </summary>
    /// <returns>Where the event was appended.</returns>
    /// <exception cref="EventLogException">Delivery failed after the configured retries, or the topic does not exist.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled before delivery was acknowledged.</exception>
    Task<EventPosition> ProduceAsync(string topic, EventMessage message, CancellationToken cancellationToken = default);

    /// <summary>Waits until every event produced so far is acknowledged (or the token is cancelled).</summary>
    Task FlushAsync(CancellationToken cancellationToken = default);
}

/// <summary>
/// Consumes events from its subscribed topics. Use from one thread (the consume loop); only
/// <see cref="StoreOffset(EventRecord)"/> may also be called from handler threads.
/// Offsets follow Kafka's "store then commit" model: <see cref="StoreOffset(EventRecord)"/> after an event is durably
/// handled, <see cref="Commit"/> to make stored offsets durable for the group. A consumer that restarts in the same group
/// resumes after the last committed offset.
/// </summary>
public interface IEventConsumer : IDisposable
{
    /// <summary>The consumer group (null for a standalone reader that reads every partition and never commits).</summary>
    string? GroupId { get; }

    /// <summary>Partitions currently assigned to this consumer.</summary>
    IReadOnlyList<TopicPartition> Assignment { get; }

    /// <summary>
    /// Returns the next event, or null when none arrived within <paramref name="timeout"/>. Rebalances (members joining or
    /// leaving the group) happen inside this call, invoking <see cref="ConsumerSettings.PartitionsRevoked"/> and
    /// <see cref="ConsumerSettings.PartitionsAssigned"/> on the calling thread.
    /// </summary>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    /// <exception cref="EventLogException">A fatal consumer error.</exception>
    EventRecord? Consume(TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>Marks <paramref name="record"/> (and everything before it in its partition) as handled.</summary>
    void StoreOffset(EventRecord record);

    /// <summary>Marks everything before <paramref name="nextOffset"/> in <paramref name="partition"/> as handled.</summary>
    void StoreOffset(TopicPartition partition, long nextOffset);

    /// <summary>Commits the stored offsets of the assigned partitions for the group (no-op without a group).</summary>
    void Commit();

    /// <summary>Moves every assigned partition back to its first retained event.</summary>
    void SeekToBeginning();

    /// <summary>The offset the next appended event in <paramref name="partition"/> will get (the high watermark);
    /// a reader is caught up when its position reaches it.</summary>
    long GetEndOffset(TopicPartition partition);

    /// <summary>
    /// What this consumer knows locally of an assigned partition, without a round trip to the log: the end offset it last
    /// learned (Kafka: the high watermark carried by its latest fetch response) and its position (the offset of the
    /// next event <see cref="Consume"/> returns). Null while either is unknown (just assigned, nothing fetched yet) or
    /// the partition is not assigned. Cheap enough to call every poll; for lag metrics.
    /// </summary>
    PartitionWatermark? GetLocalWatermark(TopicPartition partition);

    /// <summary>Commits stored offsets and leaves the group (so its partitions are reassigned at once), then disposes.</summary>
    void Close();
}

/// <summary>A consumer's local view of one partition (<see cref="IEventConsumer.GetLocalWatermark"/>).</summary>
/// <param name="EndOffset">The offset the next appended event will get, as last learned.</param>
/// <param name="Position">The offset of the next event the consumer will return.</param>
public readonly record struct PartitionWatermark(long EndOffset, long Position);

/// <summary>Where a consumer starts reading a partition that it is assigned.</summary>
public enum StartPosition
{
    /// <summary>After the group's committed offset; at <see cref="ConsumerSettings.NoCommitFallback"/> when none.</summary>
    Committed,

    /// <summary>At the first retained event, ignoring commits (rebuild state from a compacted topic).</summary>
    Beginning,
}

/// <summary>Where to start when the group has no committed offset for a partition.</summary>
public enum NoCommitFallback
{
    /// <summary>From the first retained event.</summary>
    Earliest,

    /// <summary>Only events appended after the assignment.</summary>
    Latest,
}

/// <summary>How a consumer is created.</summary>
public sealed record ConsumerSettings
{
    /// <summary>Topics to subscribe to (at least one; they must exist or be auto-created by the log).</summary>
    public required IReadOnlyList<string> Topics { get; init; }

    /// <summary>
    /// Consumer group. Members of one group split the partitions between them and rebalance when a member joins or
    /// leaves. Null makes a standalone reader: it is assigned every partition and cannot commit (index rebuilds).
    /// </summary>
    public string? GroupId { get; init; }

    /// <summary>Where to start reading an assigned partition.</summary>
    public StartPosition Start { get; init; } = StartPosition.Committed;

    /// <summary>Where to start when the group has no commit for a partition.</summary>
    public NoCommitFallback NoCommitFallback { get; init; } = NoCommitFallback.Earliest;

    /// <summary>
    /// With <see cref="StartPosition.Beginning"/>: start each partition at most this many records before its end as
    /// of assignment (a bounded re-read of recent history, e.g. a deduplication window), or at its beginning when it
    /// holds fewer. Null reads from the beginning.
    /// </summary>
    public long? TailRecords { get; init; }

    /// <summary>Client id shown by the log (defaults to the log's client id).</summary>
    public string? ClientId { get; init; }

    /// <summary>Called on the consume thread before partitions are taken away: drain in-flight work and store offsets
    /// here; stored offsets are committed right after it returns.</summary>
    public Action<IReadOnlyList<TopicPartition>>? PartitionsRevoked { get; init; }

    /// <summary>Called on the consume thread after partitions are assigned.</summary>
    public Action<IReadOnlyList<TopicPartition>>? PartitionsAssigned { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> that says what is wrong.</summary>
    public void Validate()
    {
        if (Topics is null || Topics.Count == 0)
        {
            throw new ArgumentException("A consumer needs at least one topic in ConsumerSettings.Topics.", nameof(Topics));
        }

        foreach (var t in Topics)
        {
            TopicNames.Validate(t);
        }

        if (GroupId is { Length: 0 })
        {
            throw new ArgumentException("ConsumerSettings.GroupId must be null (standalone reader) or non-empty.", nameof(GroupId));
        }

        if (TailRecords is < 0 || (TailRecords is not null && Start != StartPosition.Beginning))
        {
            throw new ArgumentException($"ConsumerSettings.TailRecords ({TailRecords}) must be >= 0 and needs Start = Beginning.", nameof(TailRecords));
        }
    }
}

/// <summary>An event-log operation failed; <see cref="IsTransient"/> says whether retrying may help.</summary>
public sealed class EventLogException : Exception
{
    /// <summary>Creates the exception.</summary>
    public EventLogException(string message, bool isTransient = false, Exception? inner = null) : base(message, inner) =>
        IsTransient = isTransient;

    /// <summary>Creates the exception.</summary>
    public EventLogException() { }

    /// <summary>Creates the exception.</summary>
    public EventLogException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public EventLogException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Whether the failure is transient (broker down, timeout) rather than permanent (bad topic, auth).</summary>
    public bool IsTransient { get; }
}
