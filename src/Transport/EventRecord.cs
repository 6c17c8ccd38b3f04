using System.Text;

namespace Attribution.Transport;

/// <summary>A named byte-valued header carried with an event (Kafka record headers).</summary>
/// <param name="Key">Header name, e.g. <c>content-type</c>.</param>
/// <param name="Value">Header bytes; the log takes ownership and never copies them.</param>
public sealed record EventHeader(string Key, byte[] Value)
{
    /// <summary>Creates a header with a UTF-8 encoded string value.</summary>
    public static EventHeader Utf8(string key, string value) => new(key, Encoding.UTF8.GetBytes(value));
}

/// <summary>A topic and one of its partitions.</summary>
public readonly record struct TopicPartition(string Topic, int Partition)
{
    /// <inheritdoc />
    public override string ToString() => $"{Topic}[{Partition}]";
}

/// <summary>Where a produced event was durably appended (the delivery acknowledgement).</summary>
public readonly record struct EventPosition(string Topic, int Partition, long Offset)
{
    /// <inheritdoc />
    public override string ToString() => $"{Topic}[{Partition}]@{Offset}";
}

/// <summary>
/// An event to produce. The key decides the partition (same key, same partition, so per-key order is kept);
/// an empty key spreads events over partitions. The log takes ownership of the arrays: do not mutate them afterwards.
/// </summary>
/// <param name="Key">Partitioning key bytes (e.g. UTF-8 query id); empty for "no key".</param>
/// <param name="Value">Payload bytes; an empty value on a compacted topic is a tombstone (deletes the key).</param>
/// <param name="Headers">Optional headers (content type, schema version, dead-letter metadata).</param>
public sealed record EventMessage(byte[] Key, byte[] Value, IReadOnlyList<EventHeader>? Headers = null)
{
    /// <summary>Creates a message whose key is the UTF-8 encoding of <paramref name="key"/>.</summary>
    public static EventMessage Create(string key, byte[] value, IReadOnlyList<EventHeader>? headers = null) =>
        new(Encoding.UTF8.GetBytes(key), value, headers);
}

/// <summary>
/// A consumed event: its position in the log, key, value, headers and append timestamp. Immutable; the arrays are
/// shared with the log, so treat them as read-only.
/// </summary>
/// <param name="Topic">Topic the record was read from.</param>
/// <param name="Partition">Partition within the topic.</param>
/// <param name="Offset">Offset within the partition; the offset to store after handling is <c>Offset + 1</c>.</param>
/// <param name="Key">Key bytes (empty when the record has no key).</param>
/// <param name="Value">Value bytes (empty for a tombstone).</param>
/// <param name="Headers">Headers in the order they were produced (empty when none).</param>
/// <param name="Timestamp">When the record was appended to the log.</param>
public sealed record EventRecord(
    string Topic,
    int Partition,
    long Offset,
    byte[] Key,
    byte[] Value,
    IReadOnlyList<EventHeader> Headers,
    DateTimeOffset Timestamp)
{
    /// <summary>The record's topic and partition.</summary>
    public TopicPartition TopicPartition => new(Topic, Partition);

    /// <summary>The key decoded as UTF-8.</summary>
    public string KeyString => Encoding.UTF8.GetString(Key);

    /// <summary>The last header named <paramref name="key"/>, or null.</summary>
    public byte[]? GetHeader(string key)
    {
        for (var i = Headers.Count - 1; i >= 0; i--)
        {
            if (string.Equals(Headers[i].Key, key, StringComparison.Ordinal))
            {
                return Headers[i].Value;
            }
        }

        return null;
    }

    /// <summary>The last header named <paramref name="key"/> decoded as UTF-8, or null.</summary>
    public string? GetHeaderString(string key) => GetHeader(key) is { } v ? Encoding.UTF8.GetString(v) : null;

    /// <inheritdoc />
    public override string ToString() => $"{Topic}[{Partition}]@{Offset} ({Key.Length} B key, {Value.Length} B value)";
}

/// <summary>How a topic is created: partition count, compaction, replication.</summary>
/// <param name="Name">Topic name: 1..249 characters of <c>[a-zA-Z0-9._-]</c>.</param>
/// <param name="Partitions">Number of partitions (the unit of parallelism of a consumer group).</param>
/// <param name="Compacted">Keep only the latest value per key (Kafka <c>cleanup.policy=compact</c>); used for topics read
/// from the beginning to rebuild state, such as probes.</param>
/// <param name="ReplicationFactor">Kafka replication factor; ignored by the embedded log. Null uses the log's default.</param>
/// <param name="PartitionsOf">Another topic whose partition count this one must have (attributions follow queries, so
/// query partition p maps to attribution partition p). <see cref="TopicProvisioner"/> creates it with that count and
/// refuses an existing one with another.</param>
public sealed record TopicSpec(string Name, int Partitions = 1, bool Compacted = false, short? ReplicationFactor = null, string? PartitionsOf = null)
{
    /// <summary>Throws <see cref="ArgumentException"/> that says what is wrong with the spec.</summary>
    public void Validate()
    {
        TopicNames.Validate(Name);
        if (Partitions is < 1 or > 10_000)
        {
            throw new ArgumentException($"Topic '{Name}': partitions must be 1..10000, got {Partitions}.", nameof(Partitions));
        }

        if (ReplicationFactor is < 1)
        {
            throw new ArgumentException($"Topic '{Name}': replication factor must be at least 1, got {ReplicationFactor}.", nameof(ReplicationFactor));
        }
    }
}

/// <summary>Topic-name validation shared by both logs, so a name that works embedded also works on Kafka.</summary>
public static class TopicNames
{
    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="topic"/> is a legal Kafka topic name.</summary>
    public static void Validate(string topic)
    {
        if (string.IsNullOrEmpty(topic) || topic.Length > 249)
        {
            throw new ArgumentException($"Topic name must be 1..249 characters, got '{topic}'.", nameof(topic));
        }

        foreach (var c in topic)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                throw new ArgumentException($"Topic name '{topic}' contains '{c}'; use only letters, digits, '.', '_' and '-'.", nameof(topic));
            }
        }

        if (topic is "." or "..")
        {
            throw new ArgumentException("Topic name cannot be '.' or '..'.", nameof(topic));
        }
    }
}
