namespace Attribution.Transport.Embedded;

/// <summary>Options of the in-process event log (configuration section <c>Transport:Embedded</c>).</summary>
public sealed class EmbeddedOptions
{
    /// <summary>
    /// Bound of a non-compacted partition: a producer waits while this many records are retained that some subscribed
    /// group has not committed past (back-pressure). Records every group has committed are dropped. 1..10,000,000.
    /// </summary>
    public int MaxRecordsPerPartition { get; set; } = 65_536;

    /// <summary>Partitions of a topic created implicitly by first use. 1..1024.</summary>
    public int DefaultPartitions { get; set; } = 4;

    /// <summary>Create a topic on first produce or subscribe (like Kafka's auto.create.topics.enable).</summary>
    public bool AutoCreateTopics { get; set; } = true;

    /// <summary>Returns what is invalid, or null.</summary>
    public string? Validate() =>
        MaxRecordsPerPartition is < 1 or > 10_000_000 ? $"Transport:Embedded:MaxRecordsPerPartition must be 1..10000000, got {MaxRecordsPerPartition}."
        : DefaultPartitions is < 1 or > 1024 ? $"Transport:Embedded:DefaultPartitions must be 1..1024, got {DefaultPartitions}."
        : null;
}
