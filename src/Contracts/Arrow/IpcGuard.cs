using System.Buffers.Binary;

namespace Attribution.Contracts.Arrow;

/// <summary>The Arrow IPC container an input used.</summary>
public enum ArrowIpcFormat
{
    /// <summary>The streaming format (schema, dictionaries and record batches, end-of-stream marker).</summary>
    Stream,
    /// <summary>The file (random access) format: 'ARROW1' magic, the stream messages, a footer.</summary>
    File,
}

/// <summary>Where the stream messages of a checked input lie.</summary>
internal readonly record struct IpcLayout(ArrowIpcFormat Format, int StreamStart, int StreamLength, string? Compression);

/// <summary>
/// Walks an Arrow IPC input before Apache.Arrow sees it and refuses anything that would make the library
/// allocate, recurse or read on a claimed size rather than on bytes present: message framing, metadata and body
/// lengths, every flatbuffer offset, vector and string it reads (bounds-checked), schema nesting depth and field
/// count, field nodes, buffer ranges, variadic buffer counts, the uncompressed sizes that compressed buffers declare
/// and the copies delta dictionaries cause (both charged against <see cref="ArrowReadLimits.MaxExpansion"/>). It is
/// strict where a lenient reader would hide damage: nothing may follow the end-of-stream marker, a stream must start
/// with its schema, and a file's footer must list exactly the batches found in its body.
/// </summary>
internal ref struct IpcGuard
{
    private const byte HeaderSchema = 1, HeaderDictionaryBatch = 2, HeaderRecordBatch = 3;
    private const short MetadataV4 = 3, MetadataV5 = 4;
    private static ReadOnlySpan<byte> Magic => "ARROW1"u8;

    private readonly ReadOnlySpan<byte> _input;
    private readonly ArrowReadLimits _limits;
    private readonly long _budget;
    private long _spent;
    private int _fields;
    private List<long>? _dictionaryIds;
    private Dictionary<long, long>? _dictionaryBytes;
    private List<(long Start, long End)>? _batchBlocks;
    private List<(long Start, long End)>? _dictionaryBlocks;
    private string? _compression;

    private IpcGuard(ReadOnlySpan<byte> input, ArrowReadLimits limits)
    {
        _input = input;
        _limits = limits;
        _budget = limits.ExpansionBudget(input.Length);
    }

    /// <summary>Checks <paramref name="input"/>; throws <see cref="InvalidArrowException"/> naming what and where.</summary>
    public static IpcLayout Check(ReadOnlySpan<byte> input, ArrowReadLimits limits)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Arrow decoding supports little-endian hosts only.");
        }
        if (input.IsEmpty)
        {
            throw InvalidArrowException.At(0, "the input is empty; an Arrow IPC stream starts with a Schema message");
        }
        var guard = new IpcGuard(input, limits);
        if (input.StartsWith(Magic))
        {
            return guard.CheckFile();
        }
        guard.CheckStream(0, input.Length, isFile: false);
        return new IpcLayout(ArrowIpcFormat.Stream, 0, input.Length, guard._compression);
    }

    private IpcLayout CheckFile()
    {
        // 'ARROW1' + 2 padding bytes, the stream messages (the schema message is optional there), the footer
        // flatbuffer (schema + blocks pointing at the messages), its int32 size, 'ARROW1'.
        const int Head = 8, Tail = 10;
        var n = _input.Length;
        if (n < Head + Tail || !_input[^6..].SequenceEqual(Magic))
        {
            throw InvalidArrowException.At(n, "the input starts with the Arrow file magic 'ARROW1' but does not end with it; the file is truncated");
        }
        var footerLength = BinaryPrimitives.ReadInt32LittleEndian(_input[(n - Tail)..]);
        var footerStart = (long)n - Tail - footerLength;
        if (footerLength <= 0 || footerStart < Head)
        {
            throw InvalidArrowException.At(n - Tail, $"the file footer size {footerLength} does not fit in the {n}-byte file");
        }
        var fb = new FlatBufferReader(_input.Slice((int)footerStart, footerLength), footerStart);
        var footer = fb.Root("Footer");
        var schema = fb.TableField(footer, 1, "Footer.schema") ?? throw InvalidArrowException.At(footerStart, "the file footer has no schema");
        CheckSchema(fb, schema, (int)footerStart);
        _batchBlocks = [];
        _dictionaryBlocks = [];
        CheckStream(Head, (int)footerStart, isFile: true);
        CheckBlocks(fb, footer, 2, "Footer.dictionaries", _dictionaryBlocks, "dictionary batches");
        CheckBlocks(fb, footer, 3, "Footer.recordBatches", _batchBlocks, "record batches");
        return new IpcLayout(ArrowIpcFormat.File, 0, n, _compression);
    }

    private static void CheckBlocks(FlatBufferReader fb, FbTable footer, int id, string what, List<(long Start, long End)> found, string kind)
    {
        // Block { offset: long; metaDataLength: int; (pad); bodyLength: long } = 24 bytes.
        var blocks = fb.Vector(footer, id, 24, what);
        var listed = new (long Start, long End)[blocks.Count];
        for (var i = 0; i < listed.Length; i++)
        {
            var offset = fb.ReadInt64At(blocks.Start + (24 * i));
            var metadata = fb.ReadInt32At(blocks.Start + (24 * i) + 8);
            var body = fb.ReadInt64At(blocks.Start + (24 * i) + 16);
            listed[i] = (offset, metadata < 0 || body < 0 ? -1 : offset + metadata + body);
        }
        if (!listed.AsSpan().SequenceEqual(found.ToArray()))
        {
            throw InvalidArrowException.At(blocks.Start, $"the file footer lists {listed.Length} {kind} at [{string.Join(", ", listed.Take(8))}] but the body holds {found.Count} at [{string.Join(", ", found.Take(8))}]");
        }
    }

    private void CheckStream(int start, int end, bool isFile)
    {
        var pos = start;
        var index = 0;
        var batches = 0;
        while (pos < end)
        {
            var messageStart = pos;
            var first = ReadInt32(ref pos, end, "message length prefix");
            var metadataLength = first;
            if (first == -1)
            {
                metadataLength = ReadInt32(ref pos, end, "metadata size after the continuation marker");
            }
            else if (first < 0)
            {
                throw InvalidArrowException.At(messageStart, $"message prefix {first} is neither the continuation marker (-1) nor a size");
            }
            if (metadataLength == 0)
            {
                if (index == 0 && !isFile)
                {
                    throw InvalidArrowException.At(messageStart, "the stream ends before its schema message");
                }
                if (pos != end && !isFile)
                {
                    throw InvalidArrowException.At(pos, $"{end - pos} bytes follow the end-of-stream marker; one value must hold exactly one Arrow stream");
                }
                if (pos != end && isFile && _input.Slice(pos, end - pos).IndexOfAnyExcept((byte)0) >= 0)
                {
                    throw InvalidArrowException.At(pos, "data follows the end-of-stream marker before the file footer");
                }
                return;
            }
            if (metadataLength < 0 || metadataLength > _limits.MaxMetadataBytes)
            {
                throw InvalidArrowException.At(messageStart, $"metadata size {metadataLength} is outside [1, {_limits.MaxMetadataBytes}] (ArrowReadLimits.MaxMetadataBytes)");
            }
            if (metadataLength > end - pos)
            {
                throw InvalidArrowException.At(messageStart, $"truncated: message {index} declares {metadataLength} bytes of metadata but only {end - pos} remain");
            }
            var metadataStart = pos;
            var fb = new FlatBufferReader(_input.Slice(metadataStart, metadataLength), metadataStart);
            var message = fb.Root("Message");
            var version = fb.Int16(message, 0, 0, "Message.version");
            if (version is not (MetadataV4 or MetadataV5))
            {
                throw InvalidArrowException.At(metadataStart, $"metadata version {version} is not supported (V4 = 3 and V5 = 4 are; V1-V3 are pre-1.0 formats)");
            }
            var headerType = fb.Byte(message, 1, 0, "Message.header_type");
            var headerTable = fb.TableField(message, 2, "Message.header") ?? throw InvalidArrowException.At(metadataStart, $"message {index} has no header");
            CheckMetadata(fb, message, 4, "Message.custom_metadata");
            var bodyLength = fb.Int64(message, 3, 0, "Message.bodyLength");
            var bodyStart = metadataStart + metadataLength;
            if (bodyLength < 0 || bodyLength > end - bodyStart)
            {
                throw InvalidArrowException.At(bodyStart, $"truncated: message {index} declares a {bodyLength}-byte body but only {end - bodyStart} bytes remain");
            }
            var body = _input.Slice(bodyStart, (int)bodyLength);
            var messageEnd = bodyStart + bodyLength;
            if (index == 0 && headerType != HeaderSchema && !isFile)
            {
                throw InvalidArrowException.At(messageStart, $"the first message is a {HeaderName(headerType)}; an Arrow stream starts with a Schema message");
            }
            if (headerType == HeaderSchema)
            {
                if (index != 0)
                {
                    throw InvalidArrowException.At(messageStart, $"message {index} is a second Schema message");
                }
                if (bodyLength != 0)
                {
                    throw InvalidArrowException.At(metadataStart, $"the schema message declares a {bodyLength}-byte body; a schema has none");
                }
                CheckSchema(fb, headerTable, metadataStart);
            }
            else if (headerType == HeaderRecordBatch)
            {
                if (++batches > _limits.MaxBatches)
                {
                    throw InvalidArrowException.At(messageStart, $"the stream has more than {_limits.MaxBatches} record batches (ArrowReadLimits.MaxBatches)");
                }
                CheckBatch(fb, headerTable, body, bodyStart, $"record batch {batches - 1} (message {index})");
                _batchBlocks?.Add((messageStart, messageEnd));
            }
            else if (headerType == HeaderDictionaryBatch)
            {
                CheckDictionaryBatch(fb, headerTable, body, bodyStart, index);
                _dictionaryBlocks?.Add((messageStart, messageEnd));
            }
            else
            {
                throw InvalidArrowException.At(messageStart, $"message {index} is a {HeaderName(headerType)}; after the schema only DictionaryBatch and RecordBatch messages may follow");
            }
            pos = bodyStart + (int)bodyLength;
            index++;
        }
        if (index == 0 && !isFile)
        {
            throw InvalidArrowException.At(start, "the input ends before its schema message");
        }
    }

    private void CheckSchema(FlatBufferReader fb, FbTable schema, int at)
    {
        // A file carries its schema in the footer and may repeat it in the body: each check starts afresh.
        _fields = 0;
        _dictionaryIds = null;
        if (fb.Int16(schema, 0, 0, "Schema.endianness") != 0)
        {
            throw InvalidArrowException.At(at, "the schema is big-endian; only little-endian data is supported");
        }
        var fields = fb.Vector(schema, 1, 4, "Schema.fields");
        for (var i = 0; i < fields.Count; i++)
        {
            CheckField(fb, fb.VectorTable(fields, i, "Schema.fields[]"), $"field {i}", 0, at);
        }
        CheckMetadata(fb, schema, 2, "Schema.custom_metadata");
    }

    private void CheckField(FlatBufferReader fb, FbTable field, string path, int depth, int at)
    {
        if (++_fields > _limits.MaxFields)
        {
            throw InvalidArrowException.At(at, $"the schema has more than {_limits.MaxFields} fields (ArrowReadLimits.MaxFields)");
        }
        if (depth > _limits.MaxNestingDepth)
        {
            throw InvalidArrowException.At(at, $"{path}: fields nest deeper than {_limits.MaxNestingDepth} levels (ArrowReadLimits.MaxNestingDepth)");
        }
        var name = fb.String(field, 0, "Field.name") ?? "";
        path = $"{path} ('{name}')";
        var tag = fb.Byte(field, 2, 0, "Field.type_type");
        if (tag is 0 or > 26)
        {
            throw InvalidArrowException.At(at, $"{path}: type tag {tag} is not an Arrow type");
        }
        if (tag != 1 && fb.TableField(field, 3, "Field.type") is null)
        {
            throw InvalidArrowException.At(at, $"{path}: the type table is missing");
        }
        if (fb.TableField(field, 4, "Field.dictionary") is { } dictionary)
        {
            var id = fb.Int64(dictionary, 0, 0, "DictionaryEncoding.id");
            if (fb.TableField(dictionary, 1, "DictionaryEncoding.indexType") is { } indexType)
            {
                var bits = fb.Int32(indexType, 0, 0, "Int.bitWidth");
                if (bits is not (8 or 16 or 32 or 64))
                {
                    throw InvalidArrowException.At(at, $"{path}: dictionary index width {bits} is not 8, 16, 32 or 64 bits");
                }
            }
            _dictionaryIds ??= [];
            if (_dictionaryIds.Contains(id))
            {
                throw InvalidArrowException.At(at, $"{path}: dictionary id {id} is used by two fields");
            }
            _dictionaryIds.Add(id);
        }
        var children = fb.Vector(field, 5, 4, "Field.children");
        for (var i = 0; i < children.Count; i++)
        {
            CheckField(fb, fb.VectorTable(children, i, "Field.children[]"), $"{path} child {i}", depth + 1, at);
        }
        CheckMetadata(fb, field, 6, "Field.custom_metadata");
    }

    private static void CheckMetadata(FlatBufferReader fb, FbTable table, int id, string what)
    {
        var entries = fb.Vector(table, id, 4, what);
        for (var i = 0; i < entries.Count; i++)
        {
            var kv = fb.VectorTable(entries, i, what);
            _ = fb.String(kv, 0, "KeyValue.key");
            _ = fb.String(kv, 1, "KeyValue.value");
        }
    }

    private void CheckDictionaryBatch(FlatBufferReader fb, FbTable table, ReadOnlySpan<byte> body, int bodyStart, int index)
    {
        var id = fb.Int64(table, 0, 0, "DictionaryBatch.id");
        if (_dictionaryIds is null || !_dictionaryIds.Contains(id))
        {
            throw InvalidArrowException.At(bodyStart, $"message {index} is a dictionary batch for id {id}, which no schema field uses");
        }
        var data = fb.TableField(table, 1, "DictionaryBatch.data") ?? throw InvalidArrowException.At(bodyStart, $"dictionary batch {id} (message {index}) has no data");
        var decoded = CheckBatch(fb, data, body, bodyStart, $"dictionary batch {id} (message {index})");
        // A delta is appended to the dictionary so far: Apache.Arrow copies both into a new buffer.
        _dictionaryBytes ??= [];
        var isDelta = fb.Byte(table, 2, 0, "DictionaryBatch.isDelta") != 0;
        var size = isDelta ? _dictionaryBytes.GetValueOrDefault(id) + decoded : decoded;
        _dictionaryBytes[id] = size;
        if (isDelta)
        {
            Spend(size, bodyStart, $"delta dictionary batch {id} (message {index})");
        }
    }

    /// <summary>Checks a RecordBatch table against its body; returns the bytes its buffers hold once decompressed.</summary>
    private long CheckBatch(FlatBufferReader fb, FbTable batch, ReadOnlySpan<byte> body, int bodyStart, string what)
    {
        var length = fb.Int64(batch, 0, 0, "RecordBatch.length");
        if (length is < 0 or > int.MaxValue)
        {
            throw InvalidArrowException.At(bodyStart, $"{what} has length {length}, outside [0, {int.MaxValue}]");
        }
        var nodes = fb.Vector(batch, 1, 16, "RecordBatch.nodes");
        for (var i = 0; i < nodes.Count; i++)
        {
            var nodeLength = fb.ReadInt64At(nodes.Start + (16 * i));
            var nullCount = fb.ReadInt64At(nodes.Start + (16 * i) + 8);
            if (nodeLength is < 0 or > int.MaxValue || nullCount < 0 || nullCount > nodeLength)
            {
                throw InvalidArrowException.At(bodyStart, $"{what}: field node {i} has length {nodeLength} and null count {nullCount}; need 0 <= null count <= length <= {int.MaxValue}");
            }
        }
        var buffers = fb.Vector(batch, 2, 16, "RecordBatch.buffers");
        var compression = fb.TableField(batch, 3, "RecordBatch.compression");
        if (compression is { } c)
        {
            var codec = fb.Byte(c, 0, 0, "BodyCompression.codec");
            var method = fb.Byte(c, 1, 0, "BodyCompression.method");
            if (codec > 1 || method != 0)
            {
                throw InvalidArrowException.At(bodyStart, $"{what}: body compression codec {codec} / method {method} is not supported (lz4 frame = 0 and zstd = 1, per buffer)");
            }
            _compression = codec == 0 ? "lz4_frame" : "zstd";
        }
        long decoded = 0;
        for (var i = 0; i < buffers.Count; i++)
        {
            var offset = fb.ReadInt64At(buffers.Start + (16 * i));
            var size = fb.ReadInt64At(buffers.Start + (16 * i) + 8);
            if (offset < 0 || size < 0 || offset > body.Length || size > body.Length - offset)
            {
                throw InvalidArrowException.At(bodyStart, $"{what}: buffer {i} at body offset {offset} with length {size} lies outside the {body.Length}-byte body");
            }
            if (compression is null || size == 0)
            {
                decoded += size;
                continue;
            }
            if (size < 8)
            {
                throw InvalidArrowException.At(bodyStart + offset, $"{what}: compressed buffer {i} has {size} bytes, fewer than its 8-byte length prefix");
            }
            var uncompressed = BinaryPrimitives.ReadInt64LittleEndian(body[(int)offset..]);
            if (uncompressed == -1)
            {
                decoded += size - 8;
                continue;
            }
            if (uncompressed is < 0 or > int.MaxValue)
            {
                throw InvalidArrowException.At(bodyStart + offset, $"{what}: compressed buffer {i} declares an uncompressed length of {uncompressed}");
            }
            Spend(uncompressed, bodyStart + offset, $"{what}: compressed buffer {i}");
            decoded += uncompressed;
        }
        var variadic = fb.Vector(batch, 4, 8, "RecordBatch.variadicBufferCounts");
        for (var i = 0; i < variadic.Count; i++)
        {
            var count = fb.ReadInt64At(variadic.Start + (8 * i));
            if (count < 0 || count > buffers.Count)
            {
                throw InvalidArrowException.At(bodyStart, $"{what}: variadic buffer count {count} is not within the {buffers.Count} buffers listed");
            }
        }
        return decoded;
    }

    private void Spend(long bytes, long at, string what)
    {
        _spent += bytes;
        if (_spent > _budget)
        {
            throw InvalidArrowException.At(at, $"{what} would take decoded memory to {_spent} bytes, more than {_limits.MaxExpansion}x the {_input.Length}-byte input (ArrowReadLimits.MaxExpansion)");
        }
    }

    private readonly int ReadInt32(ref int pos, int end, string what)
    {
        if (end - pos < 4)
        {
            throw InvalidArrowException.At(pos, $"truncated: the {what} needs 4 bytes but {end - pos} remain");
        }
        var value = BinaryPrimitives.ReadInt32LittleEndian(_input[pos..]);
        pos += 4;
        return value;
    }

    private static string HeaderName(byte tag) => tag switch
    {
        HeaderSchema => "Schema",
        HeaderDictionaryBatch => "DictionaryBatch",
        HeaderRecordBatch => "RecordBatch",
        4 => "Tensor",
        5 => "SparseTensor",
        _ => $"message with unknown header type {tag}",
    };
}
