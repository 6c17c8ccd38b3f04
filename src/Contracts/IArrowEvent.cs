using System.Buffers;
using Apache.Arrow;
using Attribution.Contracts.Arrow;

namespace Attribution.Contracts;

/// <summary>
/// An event record with a fixed Arrow schema. <see cref="ToArrow"/> and <see cref="FromArrow"/>
/// convert between records and record batches (one row per event); <see cref="EventCodec{T}"/>
/// turns them into Arrow IPC stream bytes.
/// </summary>
public interface IArrowEvent<TSelf> where TSelf : IArrowEvent<TSelf>
{
    /// <summary>Event type name (schema metadata "event-type").</summary>
    static abstract string EventType { get; }

    /// <summary>Schema version written (schema metadata "schema-version"); readers accept this and older.</summary>
    static abstract int SchemaVersion { get; }

    /// <summary>The Arrow schema, including its metadata.</summary>
    static abstract Schema Schema { get; }

    /// <summary>One row per event.</summary>
    static abstract RecordBatch ToArrow(IReadOnlyList<TSelf> events);

    /// <summary>Events from a batch, validating columns and domain rules; throws <see cref="EventContractException"/>.</summary>
    static abstract IReadOnlyList<TSelf> FromArrow(RecordBatch batch);
}

/// <summary>Encodes and decodes events of one type as Arrow IPC streams.</summary>
public interface IEventCodec<T>
{
    /// <summary>Event type name.</summary>
    string EventType { get; }

    /// <summary>Schema version written.</summary>
    int SchemaVersion { get; }

    /// <summary>The Arrow schema.</summary>
    Schema Schema { get; }

    /// <summary>One self-contained stream (schema, one 1-row batch, end-of-stream) for one event.</summary>
    byte[] Encode(T value);

    /// <summary>Writes one self-contained stream for one event to <paramref name="output"/> (e.g. a pooled buffer).</summary>
    void Encode(T value, IBufferWriter<byte> output);

    /// <summary>One stream with one batch holding all <paramref name="values"/>.</summary>
    byte[] EncodeBatch(IReadOnlyList<T> values);

    /// <summary>The single event in a stream; throws <see cref="EventContractException"/> unless it holds exactly one row.</summary>
    T Decode(ReadOnlyMemory<byte> stream);

    /// <summary>Every event in every batch of a stream.</summary>
    IReadOnlyList<T> DecodeBatch(ReadOnlyMemory<byte> stream);
}

/// <summary>
/// The Arrow IPC codec for any <see cref="IArrowEvent{TSelf}"/>, on Apache.Arrow. Decoding reads the stream or the
/// file format, dictionary-encoded and other string/list variants, several batches and lz4/zstd bodies, and ignores
/// columns the contract does not name; whatever is wrong with the bytes (malformed, truncated, hostile lengths, data
/// after the end-of-stream marker, a broken contract rule) is an <see cref="EventContractException"/>.
/// </summary>
public sealed class EventCodec<T> : IEventCodec<T> where T : IArrowEvent<T>
{
    private EventCodec(ArrowCompression compression) => Compression = compression;

    /// <summary>The shared, stateless instance (writes uncompressed streams).</summary>
    public static EventCodec<T> Instance { get; } = new(ArrowCompression.None);

    /// <summary>Limits checked before decoding (hostile lengths and counts, expansion of compressed bodies).</summary>
    public ArrowReadLimits ReadLimits { get; init; } = ArrowReadLimits.Default;

    /// <summary>Body compression of the streams this codec writes (reading accepts all).</summary>
    public ArrowCompression Compression { get; }

    /// <summary>A codec that writes with <paramref name="compression"/>.</summary>
    public EventCodec<T> WithCompression(ArrowCompression compression) => new(compression) { ReadLimits = ReadLimits };

    /// <inheritdoc/>
    public string EventType => T.EventType;

    /// <inheritdoc/>
    public int SchemaVersion => T.SchemaVersion;

    /// <inheritdoc/>
    public Schema Schema => T.Schema;

    /// <inheritdoc/>
    public byte[] Encode(T value) => EncodeBatch([value]);

    /// <inheritdoc/>
    public void Encode(T value, IBufferWriter<byte> output)
    {
        using var batch = T.ToArrow([value]);
        ArrowIpc.Write(output, T.Schema, [batch], Compression);
    }

    /// <inheritdoc/>
    public byte[] EncodeBatch(IReadOnlyList<T> values)
    {
        using var batch = T.ToArrow(values);
        return ArrowIpc.ToBytes(T.Schema, [batch], Compression);
    }

    /// <inheritdoc/>
    public T Decode(ReadOnlyMemory<byte> stream)
    {
        var events = DecodeBatch(stream);
        return events.Count == 1 ? events[0] : throw new EventContractException(T.EventType, null, null, $"expected exactly one event in the stream, found {events.Count}");
    }

    /// <inheritdoc/>
    public IReadOnlyList<T> DecodeBatch(ReadOnlyMemory<byte> stream)
    {
        ArrowIpcContents contents;
        try
        {
            contents = ArrowIpc.Read(stream, ReadLimits);
        }
        catch (InvalidArrowException e)
        {
            throw new EventContractException(T.EventType, null, null, $"not a valid Arrow IPC stream: {e.Message}", e);
        }
        using (contents)
        {
            Columns.CheckSchemaMetadata(contents.Schema, T.EventType, T.SchemaVersion);
            var result = new List<T>();
            foreach (var batch in contents.Batches)
            {
                try
                {
                    result.AddRange(T.FromArrow(batch));
                }
                catch (Exception e) when (e is not (EventContractException or OutOfMemoryException))
                {
                    // Validation should leave nothing for the library to throw; if it does, it is still bad input.
                    throw new EventContractException(T.EventType, null, null, $"unreadable record batch: {e.Message}", e);
                }
            }
            return result;
        }
    }
}

/// <summary>The codec of every pipeline event.</summary>
public static class EventCodecs
{
    /// <summary>Training batches.</summary>
    public static IEventCodec<TrainingBatch> TrainingBatches => EventCodec<TrainingBatch>.Instance;
    /// <summary>Checkpoint announcements.</summary>
    public static IEventCodec<CheckpointPublished> Checkpoints => EventCodec<CheckpointPublished>.Instance;
    /// <summary>Influence probes.</summary>
    public static IEventCodec<InfluenceProbe> Probes => EventCodec<InfluenceProbe>.Instance;
    /// <summary>Model queries.</summary>
    public static IEventCodec<ModelQuery> Queries => EventCodec<ModelQuery>.Instance;
    /// <summary>Attribution results.</summary>
    public static IEventCodec<AttributionResult> Attributions => EventCodec<AttributionResult>.Instance;
    /// <summary>Contamination alerts.</summary>
    public static IEventCodec<ContaminationAlert> Alerts => EventCodec<ContaminationAlert>.Instance;
    /// <summary>Exact-span index announcements.</summary>
    public static IEventCodec<SpanIndexPublished> SpanIndexes => EventCodec<SpanIndexPublished>.Instance;
}
