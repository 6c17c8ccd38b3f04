namespace Attribution.Contracts.Arrow;

/// <summary>
/// Limits checked against an Arrow input before Apache.Arrow reads it, so that lengths and counts claimed by
/// hostile bytes cannot make the reader allocate or recurse without bound. The defaults suit Kafka-sized events.
/// </summary>
public sealed record ArrowReadLimits
{
    /// <summary>Largest accepted metadata (flatbuffer) size of one message, in bytes.</summary>
    public int MaxMetadataBytes { get; init; } = 1 << 20;

    /// <summary>Most fields in a schema, counting nested children.</summary>
    public int MaxFields { get; init; } = 4096;

    /// <summary>Deepest nesting of child fields (Apache.Arrow recurses once per level).</summary>
    public int MaxNestingDepth { get; init; } = 32;

    /// <summary>Most record batches in one stream.</summary>
    public int MaxBatches { get; init; } = 1_000_000;

    /// <summary>
    /// What the reader may allocate beyond the input itself, as a multiple of the input size (plus
    /// <see cref="ExpansionAllowanceBytes"/>): decompressed buffers (their declared sizes) and the copies that delta
    /// dictionaries cause. Legitimate lz4/zstd bodies of pipeline events expand 1-5x; 32 leaves room.
    /// </summary>
    public int MaxExpansion { get; init; } = 32;

    /// <summary>Expansion always allowed, whatever the input size, in bytes.</summary>
    public int ExpansionAllowanceBytes { get; init; } = 1 << 16;

    /// <summary>The defaults.</summary>
    public static ArrowReadLimits Default { get; } = new();

    internal long ExpansionBudget(long inputBytes) => (MaxExpansion * inputBytes) + ExpansionAllowanceBytes;
}
