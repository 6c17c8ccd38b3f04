using System.Buffers.Binary;
using Attribution.Arrow.FlatBuffers;

namespace Attribution.Arrow;

/// <summary>
/// Reads an Arrow IPC stream held in memory. The schema is parsed on construction; record batches
/// come from <see cref="ReadNext"/> as zero-copy views over the input (keep the input alive and
/// unchanged while using them). Accepts streams from other writers: legacy framing without
/// continuation markers, a missing end-of-stream marker, metadata V4/V5, omitted validity buffers
/// when null_count is 0, padded buffer lengths. Everything read from the wire is bounds-checked;
/// malformed, unsupported or over-limit input throws <see cref="ArrowFormatException"/>.
/// </summary>
public sealed class ArrowStreamReader
{
    private readonly ReadOnlyMemory<byte> _stream;
    private readonly ArrowReaderOptions _options;
    private int _position;
    private int _messageIndex;
    private int _batches;
    private bool _ended;

    /// <summary>Opens a stream and reads its schema message.</summary>
    public ArrowStreamReader(ReadOnlyMemory<byte> stream, ArrowReaderOptions? options = null)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("The Arrow codec supports little-endian hosts only.");
        }
        _stream = stream;
        _options = options ?? ArrowReaderOptions.Default;
        if (stream.Span.StartsWith("ARROW1"u8))
        {
            throw Fail(0, "this is the Arrow IPC file format ('ARROW1' magic), not the stream format; write it with a stream writer (e.g. pyarrow.ipc.new_stream)");
        }
        var message = NextMessage() ?? throw Fail(0, "the stream is empty or ends before its schema message; an Arrow IPC stream starts with a Schema message");
        if (message.HeaderType != ArrowWire.MessageHeader.Schema)
        {
            throw Fail(message.Start, $"the first message is a {HeaderName(message.HeaderType)}, but a stream must start with a Schema message");
        }
        Schema = ReadSchema(message);
    }

    /// <summary>The stream's schema.</summary>
    public ArrowSchema Schema { get; }

    /// <summary>Bytes consumed so far (after the end-of-stream marker once the end is reached).</summary>
    public int Position => _position;

    /// <summary>The next record batch, or null at the end of the stream.</summary>
    public RecordBatch? ReadNext()
    {
        var message = NextMessage();
        if (message is null)
        {
            return null;
        }
        if (message.HeaderType != ArrowWire.MessageHeader.RecordBatch)
        {
            throw Fail(message.Start, $"message {message.Index} is a {HeaderName(message.HeaderType)}; after the schema only RecordBatch messages are supported (no dictionaries, tensors or second schema)");
        }
        if (++_batches > _options.MaxBatches)
        {
            throw Fail(message.Start, $"the stream has more than {_options.MaxBatches} record batches (ArrowReaderOptions.MaxBatches)");
        }
        return ReadRecordBatch(message);
    }

    /// <summary>Reads every batch of a whole stream.</summary>
    public static (ArrowSchema Schema, IReadOnlyList<RecordBatch> Batches) ReadAll(ReadOnlyMemory<byte> stream, ArrowReaderOptions? options = null)
    {
        var reader = new ArrowStreamReader(stream, options);
        var batches = new List<RecordBatch>();
        while (reader.ReadNext() is { } batch)
        {
            batches.Add(batch);
        }
        return (reader.Schema, batches);
    }

    private sealed record Message(int Index, int Start, int MetadataStart, int MetadataLength, byte HeaderType, int Header, int BodyStart, int BodyLength);

    private Message? NextMessage()
    {
        if (_ended)
        {
            return null;
        }
        var span = _stream.Span;
        var start = _position;
        if (start == span.Length)
        {
            _ended = true; // a clean end at a message boundary without EOS is accepted
            return null;
        }
        var pos = start;
        var first = ReadInt32(span, ref pos, "message length prefix");
        int metadataLength;
        if (first == ArrowWire.Continuation)
        {
            metadataLength = ReadInt32(span, ref pos, "metadata size after the continuation marker");
        }
        else if (first >= 0)
        {
            metadataLength = first; // legacy framing (pre-0.15): the size itself, or 0 = EOS
        }
        else
        {
            throw Fail(start, $"message prefix {first} is neither the continuation marker (-1) nor a size");
        }
        if (metadataLength == 0)
        {
            _ended = true;
            _position = pos;
            return null;
        }
        if (metadataLength < 0 || metadataLength > _options.MaxMetadataBytes)
        {
            throw Fail(start, $"metadata size {metadataLength} is outside [1, {_options.MaxMetadataBytes}] (ArrowReaderOptions.MaxMetadataBytes)");
        }
        if (metadataLength > span.Length - pos)
        {
            throw Fail(start, $"truncated: metadata of {metadataLength} bytes declared but only {span.Length - pos} remain");
        }
        var metadataStart = pos;
        var fb = new FlatBufferReader(span.Slice(metadataStart, metadataLength), metadataStart);
        var message = fb.Root("Message");
        var version = fb.Int16(message, 0, 0, "Message.version");
        if (version is not (ArrowWire.MetadataV4 or ArrowWire.MetadataV5))
        {
            throw Fail(metadataStart, $"metadata version {version} is not supported (only V4 = 3 and V5 = 4; V1-V3 are pre-1.0 formats)");
        }
        var headerType = fb.Byte(message, 1, 0, "Message.header_type");
        var header = fb.Reference(message, 2, "Message.header");
        if (header < 0)
        {
            throw Fail(metadataStart, $"message {_messageIndex} has no header table");
        }
        var bodyLength = fb.Int64(message, 3, 0, "Message.bodyLength");
        if (bodyLength < 0 || bodyLength > _options.MaxBodyBytes)
        {
            throw Fail(metadataStart, $"body length {bodyLength} is outside [0, {_options.MaxBodyBytes}] (ArrowReaderOptions.MaxBodyBytes)");
        }
        var bodyStart = metadataStart + metadataLength;
        if (bodyLength > span.Length - bodyStart)
        {
            throw Fail(bodyStart, $"truncated: message {_messageIndex} declares a {bodyLength}-byte body but only {span.Length - bodyStart} bytes remain");
        }
        _position = bodyStart + (int)bodyLength;
        return new Message(_messageIndex++, start, metadataStart, metadataLength, headerType, header, bodyStart, (int)bodyLength);
    }

    private ArrowSchema ReadSchema(Message message)
    {
        var fb = Metadata(message);
        var schema = fb.Table(message.Header, "Schema");
        if (fb.Int16(schema, 0, 0, "Schema.endianness") != 0)
        {
            throw Fail(message.MetadataStart, "the schema is big-endian; only little-endian streams are supported");
        }
        var vector = fb.Vector(schema, 1, 4, "Schema.fields");
        var fields = new ArrowField[vector.Count];
        var budget = _options.MaxFields;
        for (var i = 0; i < fields.Length; i++)
        {
            fields[i] = ReadField(fb, fb.VectorTable(vector, i, "Schema.fields[]"), $"field {i}", 0, ref budget, message);
        }
        return new ArrowSchema(fields, ReadMetadata(fb, schema, 2, "Schema.custom_metadata"));
    }

    private ArrowField ReadField(FlatBufferReader fb, FbTable table, string path, int depth, ref int budget, Message message)
    {
        if (--budget < 0)
        {
            throw Fail(message.MetadataStart, $"the schema has more than {_options.MaxFields} fields (ArrowReaderOptions.MaxFields)");
        }
        if (depth > _options.MaxNestingDepth)
        {
            throw Fail(message.MetadataStart, $"{path}: nesting deeper than {_options.MaxNestingDepth} (ArrowReaderOptions.MaxNestingDepth)");
        }
        var name = fb.String(table, 0, "Field.name") ?? "";
        path = $"{path} ('{name}')";
        var nullable = fb.Byte(table, 1, 0, "Field.nullable") != 0;
        var tag = fb.Byte(table, 2, 0, "Field.type_type");
        var typeTable = fb.TableField(table, 3, "Field.type");
        if (fb.Has(table, 4))
        {
            throw Fail(message.MetadataStart, $"{path} is dictionary-encoded; dictionaries are not supported");
        }
        var children = fb.Vector(table, 5, 4, "Field.children");
        var metadata = ReadMetadata(fb, table, 6, "Field.custom_metadata");

        ArrowType type;
        switch (tag)
        {
            case ArrowWire.Type.Int:
            {
                var t = Require(typeTable, path, message);
                var bits = fb.Int32(t, 0, 0, "Int.bitWidth");
                var signed = fb.Byte(t, 1, 0, "Int.is_signed") != 0;
                type = (bits, signed) switch
                {
                    (32, true) => ArrowType.Int32,
                    (64, true) => ArrowType.Int64,
                    _ => throw Fail(message.MetadataStart, $"{path}: {(signed ? "" : "u")}int{bits} is not supported (only signed int32 and int64)"),
                };
                break;
            }
            case ArrowWire.Type.FloatingPoint:
            {
                var precision = fb.Int16(Require(typeTable, path, message), 0, 0, "FloatingPoint.precision");
                type = precision switch
                {
                    ArrowWire.Precision.Single => ArrowType.Float32,
                    ArrowWire.Precision.Double => ArrowType.Float64,
                    _ => throw Fail(message.MetadataStart, $"{path}: floating-point precision {precision} is not supported (only SINGLE = 1 and DOUBLE = 2)"),
                };
                break;
            }
            case ArrowWire.Type.Binary:
                type = ArrowType.Binary;
                break;
            case ArrowWire.Type.Utf8:
                type = ArrowType.Utf8;
                break;
            case ArrowWire.Type.Bool:
                type = ArrowType.Bool;
                break;
            case ArrowWire.Type.Timestamp:
            {
                var t = Require(typeTable, path, message);
                var unit = fb.Int16(t, 0, 0, "Timestamp.unit");
                if (unit is < 0 or > 3)
                {
                    throw Fail(message.MetadataStart, $"{path}: timestamp unit {unit} is not one of 0..3");
                }
                type = ArrowType.Timestamp((ArrowTimeUnit)unit, fb.String(t, 1, "Timestamp.timezone"));
                break;
            }
            case ArrowWire.Type.List or ArrowWire.Type.FixedSizeList:
            {
                if (children.Count != 1)
                {
                    throw Fail(message.MetadataStart, $"{path}: a {ArrowWire.TypeName(tag)} needs exactly one child field, found {children.Count}");
                }
                var item = ReadField(fb, fb.VectorTable(children, 0, "Field.children[0]"), $"{path} item", depth + 1, ref budget, message);
                if (tag == ArrowWire.Type.List)
                {
                    type = ArrowType.List(item);
                    break;
                }
                var size = fb.Int32(Require(typeTable, path, message), 0, 0, "FixedSizeList.listSize");
                if (size <= 0)
                {
                    throw Fail(message.MetadataStart, $"{path}: fixed-size list size {size} must be positive");
                }
                type = ArrowType.FixedSizeList(size, item);
                break;
            }
            default:
                throw Fail(message.MetadataStart, $"{path}: type {ArrowWire.TypeName(tag)} (union tag {tag}) is not supported");
        }
        return new ArrowField(name, type, nullable, metadata);
    }

    private Dictionary<string, string>? ReadMetadata(FlatBufferReader fb, FbTable table, int id, string what)
    {
        var vector = fb.Vector(table, id, 4, what);
        if (vector.Count == 0)
        {
            return null;
        }
        if (vector.Count > _options.MaxMetadataEntries)
        {
            throw Fail(vector.Start, $"{what} has {vector.Count} entries, more than {_options.MaxMetadataEntries} (ArrowReaderOptions.MaxMetadataEntries)");
        }
        var result = new Dictionary<string, string>(vector.Count, StringComparer.Ordinal);
        for (var i = 0; i < vector.Count; i++)
        {
            var kv = fb.VectorTable(vector, i, "KeyValue");
            result[fb.String(kv, 0, "KeyValue.key") ?? ""] = fb.String(kv, 1, "KeyValue.value") ?? "";
        }
        return result;
    }

    private RecordBatch ReadRecordBatch(Message message)
    {
        var fb = Metadata(message);
        var table = fb.Table(message.Header, "RecordBatch");
        if (fb.Has(table, 3))
        {
            throw Fail(message.MetadataStart, $"record batch {message.Index} uses body compression, which is not supported; write uncompressed batches");
        }
        var length = fb.Int64(table, 0, 0, "RecordBatch.length");
        if (length < 0 || length > _options.MaxRowsPerBatch)
        {
            throw Fail(message.MetadataStart, $"record batch {message.Index} has length {length}, outside [0, {_options.MaxRowsPerBatch}] (ArrowReaderOptions.MaxRowsPerBatch)");
        }
        var state = new BatchState
        {
            Nodes = fb.Vector(table, 1, 16, "RecordBatch.nodes"),
            Buffers = fb.Vector(table, 2, 16, "RecordBatch.buffers"),
            Message = message,
        };
        var columns = new ArrowArray[Schema.Fields.Count];
        for (var i = 0; i < columns.Length; i++)
        {
            var field = Schema.Fields[i];
            columns[i] = ReadArray(fb, field, i, 0, ref state);
            if (columns[i].Length != length)
            {
                throw Fail(message.MetadataStart, $"record batch {message.Index}: column {i} ('{field.Name}') has {columns[i].Length} rows but the batch length is {length}");
            }
        }
        if (state.NextNode != state.Nodes.Count || state.NextBuffer != state.Buffers.Count)
        {
            throw Fail(message.MetadataStart, $"record batch {message.Index} has {state.Nodes.Count} field nodes and {state.Buffers.Count} buffers; the schema uses {state.NextNode} and {state.NextBuffer}");
        }
        return new RecordBatch(Schema, columns, (int)length);
    }

    private struct BatchState
    {
        public (int Start, int Count) Nodes;
        public (int Start, int Count) Buffers;
        public int NextNode;
        public int NextBuffer;
        public Message Message;
    }

    private string ColumnPath(int column, int depth) =>
        $"column {column} ('{Schema.Fields[column].Name}')" + string.Concat(Enumerable.Repeat(" item", depth));

    private ArrowArray ReadArray(FlatBufferReader fb, ArrowField field, int column, int depth, ref BatchState state)
    {
        var message = state.Message;
        if (state.NextNode >= state.Nodes.Count)
        {
            throw Fail(message.MetadataStart, $"record batch {message.Index}: {ColumnPath(column, depth)} needs field node {state.NextNode} but the batch has only {state.Nodes.Count}");
        }
        var nodePos = state.Nodes.Start + (16 * state.NextNode++);
        var length = fb.ReadInt64At(nodePos);
        var nullCount = fb.ReadInt64At(nodePos + 8);
        if (length < 0 || length > int.MaxValue || nullCount < 0 || nullCount > length)
        {
            throw Fail(message.MetadataStart + nodePos, $"record batch {message.Index}: {ColumnPath(column, depth)} has length {length} and null count {nullCount}; need 0 <= null count <= length <= {int.MaxValue}");
        }
        var validity = NextBuffer(fb, column, depth, "validity", ref state);
        var type = field.Type;
        ReadOnlyMemory<byte> offsets = default, values = default;
        ArrowArray? child = null;
        switch (type.Kind)
        {
            case ArrowTypeKind.Utf8 or ArrowTypeKind.Binary:
                offsets = NextBuffer(fb, column, depth, "offsets", ref state);
                values = NextBuffer(fb, column, depth, "data", ref state);
                break;
            case ArrowTypeKind.List:
                offsets = NextBuffer(fb, column, depth, "offsets", ref state);
                child = ReadArray(fb, type.Item!, column, depth + 1, ref state);
                break;
            case ArrowTypeKind.FixedSizeList:
                child = ReadArray(fb, type.Item!, column, depth + 1, ref state);
                break;
            default:
                values = NextBuffer(fb, column, depth, "values", ref state);
                break;
        }
        var error = ArrayValidation.Check(type, (int)length, (int)nullCount, validity.Span, offsets.Span, values.Length, child);
        if (error is not null)
        {
            throw Fail(message.BodyStart, $"record batch {message.Index}: {ColumnPath(column, depth)}: {error}");
        }
        return new ArrowArray(type, (int)length, (int)nullCount, validity, offsets, values, child);
    }

    private ReadOnlyMemory<byte> NextBuffer(FlatBufferReader fb, int column, int depth, string role, ref BatchState state)
    {
        var message = state.Message;
        if (state.NextBuffer >= state.Buffers.Count)
        {
            throw Fail(message.MetadataStart, $"record batch {message.Index}: {ColumnPath(column, depth)} needs buffer {state.NextBuffer} ({role}) but the batch lists only {state.Buffers.Count}");
        }
        var index = state.NextBuffer++;
        var pos = state.Buffers.Start + (16 * index);
        var offset = fb.ReadInt64At(pos);
        var length = fb.ReadInt64At(pos + 8);
        if (offset < 0 || length < 0 || offset > message.BodyLength || length > message.BodyLength - offset)
        {
            throw Fail(message.BodyStart, $"record batch {message.Index}: buffer {index} ({ColumnPath(column, depth)} {role}) at offset {offset} with length {length} lies outside the {message.BodyLength}-byte body");
        }
        if (_options.RequireAlignedBuffers && (offset & 7) != 0 && length > 0)
        {
            throw Fail(message.BodyStart + offset, $"record batch {message.Index}: buffer {index} ({ColumnPath(column, depth)} {role}) starts at body offset {offset}, not a multiple of 8");
        }
        return _stream.Slice(message.BodyStart + (int)offset, (int)length);
    }

    private FlatBufferReader Metadata(Message message) =>
        new(_stream.Span.Slice(message.MetadataStart, message.MetadataLength), message.MetadataStart);

    private FbTable Require(FbTable? table, string path, Message message) =>
        table ?? throw Fail(message.MetadataStart, $"{path}: the type table is missing");

    private int ReadInt32(ReadOnlySpan<byte> span, ref int pos, string what)
    {
        if (span.Length - pos < 4)
        {
            throw Fail(pos, $"truncated: {what} needs 4 bytes but {span.Length - pos} remain");
        }
        var value = BinaryPrimitives.ReadInt32LittleEndian(span[pos..]);
        pos += 4;
        return value;
    }

    private static string HeaderName(byte tag) => tag switch
    {
        ArrowWire.MessageHeader.Schema => "Schema",
        ArrowWire.MessageHeader.DictionaryBatch => "DictionaryBatch",
        ArrowWire.MessageHeader.RecordBatch => "RecordBatch",
        ArrowWire.MessageHeader.Tensor => "Tensor",
        ArrowWire.MessageHeader.SparseTensor => "SparseTensor",
        _ => $"message with unknown header type {tag}",
    };

    private static ArrowFormatException Fail(long offset, string what) =>
        new($"Malformed Arrow stream at byte {offset}: {what}.") { StreamOffset = offset };
}
