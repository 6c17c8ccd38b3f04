using System.Buffers;
using System.Runtime.InteropServices;
using Apache.Arrow;
using Apache.Arrow.Compression;
using Apache.Arrow.Ipc;

namespace Attribution.Contracts.Arrow;

/// <summary>Body compression of written record batches (Arrow IPC BodyCompression, per buffer).</summary>
public enum ArrowCompression
{
    /// <summary>Uncompressed (the default: fastest, and every Arrow reader accepts it).</summary>
    None,
    /// <summary>LZ4 frame format.</summary>
    Lz4Frame,
    /// <summary>Zstandard.</summary>
    Zstd,
}

/// <summary>Everything an Arrow input held: its schema and record batches (dispose to free decompressed buffers).</summary>
public sealed class ArrowIpcContents(ArrowIpcFormat format, Schema schema, IReadOnlyList<RecordBatch> batches, string? compression = null) : IDisposable
{
    /// <summary>The body compression codec of the input's batches ("lz4_frame" or "zstd"), or null when uncompressed.</summary>
    public string? Compression { get; } = compression;

    /// <summary>Stream or file format.</summary>
    public ArrowIpcFormat Format { get; } = format;

    /// <summary>The schema (with its metadata).</summary>
    public Schema Schema { get; } = schema;

    /// <summary>The record batches, in order; dictionary-encoded columns carry their dictionaries.</summary>
    public IReadOnlyList<RecordBatch> Batches { get; } = batches;

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var batch in Batches)
        {
            batch.Dispose();
        }
    }
}

/// <summary>
/// The one way this product reads and writes Arrow IPC bytes, on top of Apache.Arrow. Reading accepts the stream and
/// the file format, dictionaries (also deltas), several batches and lz4/zstd bodies; <see cref="IpcGuard"/> checks
/// the input first, and anything the library then throws becomes an <see cref="InvalidArrowException"/>. Arrays
/// come back unvalidated (Apache.Arrow does not check offsets against buffers): check the ones you read with
/// <see cref="ArrowValidation.Validate(IArrowArray, string)"/>.
/// </summary>
public static class ArrowIpc
{
    private static readonly CompressionCodecFactory Codecs = new();

    /// <summary>Reads a whole stream or file held in memory; batches are zero-copy views of uncompressed input.</summary>
    public static ArrowIpcContents Read(ReadOnlyMemory<byte> input, ArrowReadLimits? limits = null)
    {
        var layout = IpcGuard.Check(input.Span, limits ?? ArrowReadLimits.Default);
        var batches = new List<RecordBatch>();
        var message = "the schema";
        try
        {
            using var reader = layout.Format == ArrowIpcFormat.File
                ? new ArrowFileReader(AsStream(input), Codecs) // schema from the footer, batches through its (checked) blocks
                : new ArrowStreamReader(input.Slice(layout.StreamStart, layout.StreamLength), Codecs);
            var schema = reader.Schema;
            while (true)
            {
                message = $"record batch {batches.Count}";
                if (reader.ReadNextRecordBatch() is not { } batch)
                {
                    break;
                }
                batches.Add(batch);
            }
            return new ArrowIpcContents(layout.Format, schema, batches, layout.Compression);
        }
        catch (Exception e) when (e is not (InvalidArrowException or OutOfMemoryException))
        {
            foreach (var batch in batches)
            {
                batch.Dispose();
            }
            throw new InvalidArrowException($"Malformed Arrow input, reading {message}: {e.Message}", e);
        }
    }

    private static MemoryStream AsStream(ReadOnlyMemory<byte> input) =>
        MemoryMarshal.TryGetArray(input, out var segment) ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false) : new MemoryStream(input.ToArray(), writable: false);

    /// <summary>Writes one stream: schema, batches, end-of-stream marker.</summary>
    public static void Write(IBufferWriter<byte> output, Schema schema, IEnumerable<RecordBatch> batches, ArrowCompression compression = ArrowCompression.None)
    {
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(batches);
        using var stream = new BufferWriterStream(output);
        using var writer = new ArrowStreamWriter(stream, schema, leaveOpen: true, Options(compression));
        writer.WriteStart();
        foreach (var batch in batches)
        {
            writer.WriteRecordBatch(batch);
        }
        writer.WriteEnd();
    }

    /// <summary>One stream as bytes.</summary>
    public static byte[] ToBytes(Schema schema, IEnumerable<RecordBatch> batches, ArrowCompression compression = ArrowCompression.None)
    {
        var output = new ArrayBufferWriter<byte>();
        Write(output, schema, batches, compression);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>One stream holding one batch, as bytes.</summary>
    public static byte[] ToBytes(RecordBatch batch, ArrowCompression compression = ArrowCompression.None)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return ToBytes(batch.Schema, [batch], compression);
    }

    /// <summary>An Arrow IPC *file* (random-access format) holding the batches, as bytes.</summary>
    public static byte[] ToFileBytes(Schema schema, IEnumerable<RecordBatch> batches, ArrowCompression compression = ArrowCompression.None)
    {
        ArgumentNullException.ThrowIfNull(batches);
        using var stream = new MemoryStream();
        using (var writer = new ArrowFileWriter(stream, schema, leaveOpen: true, Options(compression)))
        {
            writer.WriteStart();
            foreach (var batch in batches)
            {
                writer.WriteRecordBatch(batch);
            }
            writer.WriteEnd();
        }
        return stream.ToArray();
    }

    private static IpcOptions? Options(ArrowCompression compression) => compression switch
    {
        ArrowCompression.None => null,
        ArrowCompression.Lz4Frame => new IpcOptions { CompressionCodec = CompressionCodecType.Lz4Frame, CompressionCodecFactory = Codecs },
        ArrowCompression.Zstd => new IpcOptions { CompressionCodec = CompressionCodecType.Zstd, CompressionCodecFactory = Codecs },
        _ => throw new ArgumentOutOfRangeException(nameof(compression), compression, "unknown compression"),
    };

    /// <summary>A write-only stream appending to an <see cref="IBufferWriter{T}"/> (what Apache.Arrow's writer needs).</summary>
    private sealed class BufferWriterStream(IBufferWriter<byte> output) : Stream
    {
        private long _written;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _written;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            output.Write(buffer);
            _written += buffer.Length;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }
    }
}
