using System.Buffers;
using Attribution.Arrow;

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
    static abstract ArrowSchema Schema { get; }

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
    ArrowSchema Schema { get; }

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

/// <summary>The Arrow IPC codec for any <see cref="IArrowEvent{TSelf}"/>.</summary>
public sealed class EventCodec<T> : IEventCodec<T> where T : IArrowEvent<T>
{
    private EventCodec() { }

    /// <summary>The shared, stateless instance.</summary>
    public static EventCodec<T> Instance { get; } = new();

    /// <summary>Reader limits applied when decoding.</summary>
    public ArrowReaderOptions ReaderOptions { get; init; } = ArrowReaderOptions.Default;

    /// <inheritdoc/>
    public string EventType => T.EventType;

    /// <inheritdoc/>
    public int SchemaVersion => T.SchemaVersion;

    /// <inheritdoc/>
    public ArrowSchema Schema => T.Schema;

    /// <inheritdoc/>
    public byte[] Encode(T value) => EncodeBatch([value]);

    /// <inheritdoc/>
    public void Encode(T value, IBufferWriter<byte> output) => ArrowStreamWriter.WriteStream(output, T.Schema, [T.ToArrow([value])]);

    /// <inheritdoc/>
    public byte[] EncodeBatch(IReadOnlyList<T> values) => ArrowStreamWriter.ToBytes(T.Schema, T.ToArrow(values));

    /// <inheritdoc/>
    public T Decode(ReadOnlyMemory<byte> stream)
    {
        var events = DecodeBatch(stream);
        return events.Count == 1 ? events[0] : throw new EventContractException(T.EventType, null, null, $"expected exactly one event in the stream, found {events.Count}");
    }

    /// <inheritdoc/>
    public IReadOnlyList<T> DecodeBatch(ReadOnlyMemory<byte> stream)
    {
        ArrowStreamReader reader;
        var result = new List<T>();
        try
        {
            reader = new ArrowStreamReader(stream, ReaderOptions);
            Columns.CheckSchemaMetadata(reader.Schema, T.EventType, T.SchemaVersion);
            while (reader.ReadNext() is { } batch)
            {
                result.AddRange(T.FromArrow(batch));
            }
        }
        catch (ArrowFormatException e)
        {
            throw new EventContractException(T.EventType, null, null, $"not a valid Arrow IPC stream: {e.Message}", e);
        }
        return result;
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
}
