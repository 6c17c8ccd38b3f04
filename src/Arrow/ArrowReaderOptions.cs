namespace Attribution.Arrow;

/// <summary>
/// Size limits applied to every count and length read from the wire, so hostile input cannot
/// make the reader allocate or loop without bound. Defaults suit Kafka-sized events.
/// </summary>
public sealed record ArrowReaderOptions
{
    /// <summary>Largest accepted metadata (flatbuffer) size of one message, in bytes.</summary>
    public int MaxMetadataBytes { get; init; } = 1 << 20;

    /// <summary>Largest accepted body of one record batch, in bytes.</summary>
    public long MaxBodyBytes { get; init; } = 1L << 30;

    /// <summary>Most fields in a schema, counting list children.</summary>
    public int MaxFields { get; init; } = 4096;

    /// <summary>Deepest list nesting accepted.</summary>
    public int MaxNestingDepth { get; init; } = 16;

    /// <summary>Most rows in one record batch.</summary>
    public int MaxRowsPerBatch { get; init; } = int.MaxValue;

    /// <summary>Most record batches in one stream.</summary>
    public int MaxBatches { get; init; } = 1_000_000;

    /// <summary>Most key/value pairs in one metadata map.</summary>
    public int MaxMetadataEntries { get; init; } = 1024;

    /// <summary>Reject body buffers whose offset is not a multiple of 8 (the spec requires it; strict readers such as C++ reject them).</summary>
    public bool RequireAlignedBuffers { get; init; } = true;

    /// <summary>The defaults.</summary>
    public static ArrowReaderOptions Default { get; } = new();
}
