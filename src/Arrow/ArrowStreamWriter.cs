using System.Buffers;
using System.Buffers.Binary;
using Attribution.Arrow.FlatBuffers;

namespace Attribution.Arrow;

/// <summary>
/// Writes the Arrow IPC streaming format: a Schema message on construction, one RecordBatch
/// message per <see cref="WriteBatch"/>, and the end-of-stream marker on <see cref="Finish"/>.
/// Column buffers are copied straight from the arrays' memory into the output's span (one copy,
/// no intermediate body buffer); metadata is built in a reused FlatBuffers builder.
/// </summary>
public sealed class ArrowStreamWriter
{
    private readonly IBufferWriter<byte> _output;
    private readonly FlatBufferBuilder _builder = new();
    private readonly List<(long, long)> _nodes = [];
    private readonly List<(long, long)> _buffers = [];
    private readonly List<BodyPart> _parts = [];
    private long _bodyLength;
    private bool _finished;

    /// <summary>Starts a stream on <paramref name="output"/> and writes the schema message.</summary>
    public ArrowStreamWriter(IBufferWriter<byte> output, ArrowSchema schema)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(schema);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("The Arrow codec supports little-endian hosts only.");
        }
        _output = output;
        Schema = schema;
        var root = SchemaEncoder.WriteSchemaMessage(_builder, schema);
        _builder.Finish(root);
        WriteMessage(_builder.WrittenSpan, 0);
    }

    /// <summary>The stream's schema.</summary>
    public ArrowSchema Schema { get; }

    /// <summary>Writes one record batch message.</summary>
    public void WriteBatch(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ObjectDisposedException.ThrowIf(_finished, this);
        if (batch.Columns.Count != Schema.Fields.Count)
        {
            throw new ArgumentException($"Batch has {batch.Columns.Count} columns; the stream schema has {Schema.Fields.Count}.", nameof(batch));
        }
        _nodes.Clear();
        _buffers.Clear();
        _parts.Clear();
        _bodyLength = 0;
        for (var i = 0; i < batch.Columns.Count; i++)
        {
            if (!RecordBatch.SameShape(Schema.Fields[i].Type, batch.Columns[i].Type))
            {
                throw new ArgumentException($"Column {i} ('{Schema.Fields[i].Name}') is {batch.Columns[i].Type}; the stream schema says {Schema.Fields[i].Type}.", nameof(batch));
            }
            Plan(batch.Columns[i], 0, batch.Length);
        }

        var fb = _builder;
        fb.Clear();
        var buffers = fb.CreateStructVector(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_buffers));
        var nodes = fb.CreateStructVector(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_nodes));
        fb.StartTable(3);
        fb.AddInt64(0, batch.Length);
        fb.AddOffset(2, buffers);
        fb.AddOffset(1, nodes);
        var recordBatch = fb.EndTable();
        fb.StartTable(4);
        fb.AddInt64(3, _bodyLength);
        fb.AddOffset(2, recordBatch);
        fb.AddInt16(0, ArrowWire.MetadataV5);
        fb.AddByte(1, ArrowWire.MessageHeader.RecordBatch);
        fb.Finish(fb.EndTable());
        WriteMessage(fb.WrittenSpan, _bodyLength);
    }

    /// <summary>Writes the end-of-stream marker. The writer accepts nothing afterwards.</summary>
    public void Finish()
    {
        if (_finished)
        {
            return;
        }
        _finished = true;
        var span = _output.GetSpan(8);
        BinaryPrimitives.WriteInt32LittleEndian(span, ArrowWire.Continuation);
        BinaryPrimitives.WriteInt32LittleEndian(span[4..], 0);
        _output.Advance(8);
    }

    /// <summary>Writes a whole stream (schema, batches, end-of-stream) to <paramref name="output"/>.</summary>
    public static void WriteStream(IBufferWriter<byte> output, ArrowSchema schema, IEnumerable<RecordBatch> batches)
    {
        ArgumentNullException.ThrowIfNull(batches);
        var writer = new ArrowStreamWriter(output, schema);
        foreach (var batch in batches)
        {
            writer.WriteBatch(batch);
        }
        writer.Finish();
    }

    /// <summary>A whole stream holding <paramref name="batches"/> as a new byte array.</summary>
    public static byte[] ToBytes(ArrowSchema schema, params IEnumerable<RecordBatch> batches)
    {
        var output = new ArrayBufferWriter<byte>();
        WriteStream(output, schema, batches);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>A whole stream holding one batch, using the batch's schema.</summary>
    public static byte[] ToBytes(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return ToBytes(batch.Schema, batch);
    }

    // Pre-order walk over the window [start, start + count) of an array: one node per array,
    // its buffers in spec order, then its child's window. Offsets are rebased to 0 and bitmaps
    // re-packed when the window does not start at slot 0, so sliced input writes correctly.
    private void Plan(ArrowArray array, int start, int count)
    {
        var nulls = array.NullCount == 0 ? 0
            : start == 0 && count == array.Length ? array.NullCount
            : ArrowArray.CountNulls(array.Validity.Span, start, count);
        _nodes.Add((count, nulls));
        AddPart(nulls == 0 ? default : new BodyPart(PartKind.Bits, array.Validity, start, count));
        var type = array.Type;
        switch (type.Kind)
        {
            case ArrowTypeKind.Bool:
                AddPart(new BodyPart(PartKind.Bits, array.Values, start, count));
                break;
            case ArrowTypeKind.Utf8 or ArrowTypeKind.Binary:
            {
                var (first, last) = OffsetWindow(array, start, count);
                AddPart(new BodyPart(PartKind.Offsets, array.Offsets, start, count));
                AddPart(new BodyPart(PartKind.Bytes, array.Values.Slice(first, last - first), 0, 0));
                break;
            }
            case ArrowTypeKind.List:
            {
                var (first, last) = OffsetWindow(array, start, count);
                AddPart(new BodyPart(PartKind.Offsets, array.Offsets, start, count));
                Plan(array.Child!, first, last - first);
                break;
            }
            case ArrowTypeKind.FixedSizeList:
                Plan(array.Child!, start * type.ListSize, count * type.ListSize);
                break;
            default:
                var width = type.FixedWidth;
                AddPart(new BodyPart(PartKind.Bytes, array.Values.Slice(start * width, count * width), 0, 0));
                break;
        }
    }

    private static (int First, int Last) OffsetWindow(ArrowArray array, int start, int count)
    {
        var offsets = array.OffsetValues;
        return offsets.IsEmpty ? (0, 0) : (offsets[start], offsets[start + count]);
    }

    private void AddPart(BodyPart part)
    {
        var length = part.Length;
        _buffers.Add((_bodyLength, length));
        _parts.Add(part);
        _bodyLength += Align8(length);
    }

    private void WriteMessage(ReadOnlySpan<byte> metadata, long bodyLength)
    {
        var metadataSize = Align8(metadata.Length);
        var total = checked(8 + metadataSize + bodyLength);
        if (total > int.MaxValue)
        {
            throw new ArgumentException($"Record batch message of {total} bytes exceeds 2 GiB; split the batch.");
        }
        var span = _output.GetSpan((int)total)[..(int)total];
        BinaryPrimitives.WriteInt32LittleEndian(span, ArrowWire.Continuation);
        BinaryPrimitives.WriteInt32LittleEndian(span[4..], (int)metadataSize);
        metadata.CopyTo(span[8..]);
        span[(8 + metadata.Length)..(8 + (int)metadataSize)].Clear();
        if (bodyLength > 0)
        {
            var body = span[(8 + (int)metadataSize)..];
            for (var i = 0; i < _parts.Count; i++)
            {
                var (offset, length) = _buffers[i];
                var target = body.Slice((int)offset, (int)Align8(length));
                _parts[i].CopyTo(target[..(int)length]);
                target[(int)length..].Clear();
            }
        }
        _output.Advance((int)total);
    }

    private static long Align8(long n) => (n + 7) & ~7L;

    private enum PartKind : byte { Empty, Bytes, Bits, Offsets }

    private readonly record struct BodyPart(PartKind Kind, ReadOnlyMemory<byte> Source, int Start, int Count)
    {
        public int Length => Kind switch
        {
            PartKind.Bytes => Source.Length,
            PartKind.Bits => (Count + 7) >> 3,
            PartKind.Offsets => (Count + 1) * 4,
            _ => 0,
        };

        public void CopyTo(Span<byte> target)
        {
            switch (Kind)
            {
                case PartKind.Bytes:
                    Source.Span.CopyTo(target);
                    break;
                case PartKind.Bits:
                    CopyBits(Source.Span, Start, Count, target);
                    break;
                case PartKind.Offsets:
                    CopyOffsets(Source.Span, Start, Count, target);
                    break;
                default:
                    break;
            }
        }

        private static void CopyBits(ReadOnlySpan<byte> source, int start, int count, Span<byte> target)
        {
            if (count == 0)
            {
                return;
            }
            var bytes = (count + 7) >> 3;
            if ((start & 7) == 0)
            {
                source.Slice(start >> 3, bytes).CopyTo(target);
            }
            else
            {
                var shift = start & 7;
                var first = start >> 3;
                for (var j = 0; j < bytes; j++)
                {
                    var lo = source[first + j] >> shift;
                    var hi = first + j + 1 < source.Length ? source[first + j + 1] << (8 - shift) : 0;
                    target[j] = (byte)(lo | hi);
                }
            }
            // Unused trailing bits must be zero.
            if ((count & 7) != 0)
            {
                target[bytes - 1] &= (byte)((1 << (count & 7)) - 1);
            }
        }

        private static void CopyOffsets(ReadOnlySpan<byte> source, int start, int count, Span<byte> target)
        {
            if (source.IsEmpty)
            {
                BinaryPrimitives.WriteInt32LittleEndian(target, 0);
                return;
            }
            var offsets = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(source).Slice(start, count + 1);
            var rebase = offsets[0];
            if (rebase == 0)
            {
                source.Slice(start * 4, (count + 1) * 4).CopyTo(target);
                return;
            }
            for (var i = 0; i <= count; i++)
            {
                BinaryPrimitives.WriteInt32LittleEndian(target[(i * 4)..], offsets[i] - rebase);
            }
        }
    }
}
