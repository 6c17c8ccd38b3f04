using Apache.Arrow;
using Apache.Arrow.Ipc;
using Attribution.Contracts.Arrow;

namespace Attribution.Contracts;

/// <summary>Events read from an Arrow IPC file or stream, with the schema's metadata (the contract's keys and any others).</summary>
/// <param name="Events">Every row of every record batch, in order.</param>
/// <param name="Metadata">The schema's key-value metadata.</param>
public sealed record ArrowEventFileContents<T>(IReadOnlyList<T> Events, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Events of one type kept in an Arrow IPC <b>file</b> (random-access format, "Feather v2"): the event's own wire schema
/// (<see cref="IArrowEvent{TSelf}.Schema"/>: the same columns and the same <c>event-type</c> / <c>schema-version</c>
/// metadata as on a topic) plus extra schema metadata that describes the file as a whole, one record batch per chunk
/// of rows, so a large file is written without holding it twice. Any Arrow library reads it as a table.
/// </summary>
public static class ArrowEventFile
{
    /// <summary>
    /// Writes <paramref name="chunks"/> (one record batch each; empty chunks are skipped) to <paramref name="output"/>.
    /// <paramref name="metadata"/> is added to the schema's metadata; it may not redefine the contract's own keys.
    /// </summary>
    public static void Write<T>(Stream output, IEnumerable<IReadOnlyList<T>> chunks, IReadOnlyDictionary<string, string>? metadata = null) where T : IArrowEvent<T>
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(chunks);
        var schema = T.Schema;
        if (metadata is { Count: > 0 })
        {
            var merged = new Dictionary<string, string>(schema.Metadata, StringComparer.Ordinal);
            foreach (var (key, value) in metadata)
            {
                if (!merged.TryAdd(key, value))
                {
                    throw new ArgumentException($"metadata key '{key}' is the event schema's own; name file metadata differently.", nameof(metadata));
                }
            }

            schema = new Schema(schema.FieldsList, merged);
        }

        using var writer = new ArrowFileWriter(output, schema, leaveOpen: true);
        writer.WriteStart();
        foreach (var chunk in chunks)
        {
            if (chunk.Count == 0)
            {
                continue;
            }

            using var batch = T.ToArrow(chunk);
            // The same columns under the file's schema (which differs from the event's only by its metadata).
            // (not disposed: it shares the batch's arrays, which the batch disposes)
            writer.WriteRecordBatch(new RecordBatch(schema, Enumerable.Range(0, batch.ColumnCount).Select(batch.Column), batch.Length));
        }

        writer.WriteEnd();
    }

    /// <summary>
    /// Reads every event of an Arrow IPC file or stream held in memory, through the hardened boundary
    /// (<see cref="ArrowIpc.Read"/>, the contract's checks); anything wrong is an <see cref="EventContractException"/>.
    /// </summary>
    public static ArrowEventFileContents<T> Read<T>(ReadOnlyMemory<byte> input, ArrowReadLimits? limits = null) where T : IArrowEvent<T>
    {
        ArrowIpcContents contents;
        try
        {
            contents = ArrowIpc.Read(input, limits);
        }
        catch (InvalidArrowException e)
        {
            throw new EventContractException(T.EventType, null, null, $"not a valid Arrow IPC file or stream: {e.Message}", e);
        }

        using (contents)
        {
            Columns.CheckSchemaMetadata(contents.Schema, T.EventType, T.SchemaVersion);
            var events = new List<T>();
            foreach (var batch in contents.Batches)
            {
                try
                {
                    events.AddRange(T.FromArrow(batch));
                }
                catch (Exception e) when (e is not (EventContractException or OutOfMemoryException))
                {
                    throw new EventContractException(T.EventType, null, null, $"unreadable record batch: {e.Message}", e);
                }
            }

            var metadata = contents.Schema.Metadata ?? new Dictionary<string, string>();
            return new ArrowEventFileContents<T>(events, new Dictionary<string, string>(metadata, StringComparer.Ordinal));
        }
    }
}
