using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Apache.Arrow;
using Apache.Arrow.Types;
using Attribution.Contracts.Arrow;

namespace Attribution.Contracts;

/// <summary>Schema construction shared by the event records.</summary>
internal static class Columns
{
    public static Schema Schema(string eventType, int version, params Field[] fields) =>
        new(fields, new Dictionary<string, string>
        {
            [EventHeaders.EventType] = eventType,
            [EventHeaders.SchemaVersion] = version.ToString(CultureInfo.InvariantCulture),
        });

    public static Field Required(string name, IArrowType type) => new(name, type, nullable: false);

    public static Field Optional(string name, IArrowType type) => new(name, type, nullable: true);

    public static readonly ListType Int64List = new(new Field("item", Int64Type.Default, nullable: false));
    public static readonly ListType Float32List = new(new Field("item", FloatType.Default, nullable: false));
    public static readonly ListType Float16List = new(new Field("item", HalfFloatType.Default, nullable: false));
    public static readonly ListType Int32List = new(new Field("item", Int32Type.Default, nullable: false));
    public static readonly ListType Utf8List = new(new Field("item", StringType.Default, nullable: false));
    public static readonly TimestampType UtcMicros = new(TimeUnit.Microsecond, "UTC");

    public static void CheckSchemaMetadata(Schema schema, string eventType, int supportedVersion)
    {
        var metadata = schema.Metadata;
        if (metadata is null || !metadata.TryGetValue(EventHeaders.EventType, out var type))
        {
            throw new EventContractException(eventType, null, null, $"the Arrow schema has no '{EventHeaders.EventType}' metadata; was it written by a {eventType} encoder?");
        }
        if (type != eventType)
        {
            throw new EventContractException(eventType, null, null, $"the stream holds '{type}' events, not '{eventType}'");
        }
        if (!metadata.TryGetValue(EventHeaders.SchemaVersion, out var v) || !int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var version) || version < 1)
        {
            throw new EventContractException(eventType, null, null, $"schema metadata '{EventHeaders.SchemaVersion}' is missing or not a positive integer");
        }
        if (version > supportedVersion)
        {
            throw new EventContractException(eventType, null, null, $"schema version {version} is newer than this build supports ({supportedVersion}); upgrade the consumer");
        }
    }

    public static TOut[] Map<TIn, TOut>(IReadOnlyList<TIn> events, Func<TIn, TOut> select)
    {
        var result = new TOut[events.Count];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = select(events[i]);
        }
        return result;
    }

    public static long ToMicros(DateTimeOffset t) => (t.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond;

    public static void Check(bool condition, string eventType, string? column, int row, string problem)
    {
        if (!condition)
        {
            throw new EventContractException(eventType, column, row, problem);
        }
    }

    /// <summary>As above; the interpolated problem text is only formatted when the check fails (hot per-row path).</summary>
    public static void Check(bool condition, string eventType, string? column, int row, [InterpolatedStringHandlerArgument("condition")] ref ProblemText problem)
    {
        if (!condition)
        {
            throw new EventContractException(eventType, column, row, problem.ToStringAndClear());
        }
    }
}

/// <summary>Formats an interpolated problem text only when its check failed.</summary>
[InterpolatedStringHandler]
internal ref struct ProblemText
{
    private DefaultInterpolatedStringHandler _text;

    public ProblemText(int literalLength, int formattedCount, bool condition, out bool shouldAppend)
    {
        shouldAppend = !condition;
        _text = shouldAppend ? new DefaultInterpolatedStringHandler(literalLength, formattedCount, CultureInfo.InvariantCulture) : default;
    }

    public void AppendLiteral(string value) => _text.AppendLiteral(value);

    public void AppendFormatted<T>(T value) => _text.AppendFormatted(value);

    public string ToStringAndClear() => _text.ToStringAndClear();
}

/// <summary>
/// Checked, typed access to the columns of one record batch of an event type. Each accessor finds the column by
/// name, checks its row count and type, validates its buffers (<see cref="ArrowValidation"/>) and, for a required
/// column, that it holds no null. Every wire variant that maps onto the contract is accepted: utf8, large_utf8,
/// utf8_view and dictionary-encoded strings; list, large_list and fixed_size_list; binary and large_binary;
/// timestamps of any unit with a time zone. Columns the contract does not name are never touched.
/// </summary>
internal sealed class EventBatch(RecordBatch batch, string eventType)
{
    public int Length => batch.Length;

    private EventContractException Error(string? column, int? row, string problem, Exception? inner = null) => new(eventType, column, row, problem, inner);

    private ArrayData? Find(string name, bool required)
    {
        // Ordinal and allocation-free (Schema.GetFieldIndex goes through a culture-aware LINQ lookup).
        var fields = batch.Schema.FieldsList;
        var index = -1;
        for (var i = 0; i < fields.Count && index < 0; i++)
        {
            index = string.Equals(fields[i].Name, name, StringComparison.Ordinal) ? i : -1;
        }
        if (index < 0 || index >= batch.ColumnCount)
        {
            return required ? throw Error(name, null, "required column is missing") : null;
        }
        var column = batch.Column(index);
        if (column.Length != batch.Length)
        {
            throw Error(name, null, $"column has {column.Length} rows but its record batch has {batch.Length}");
        }
        try
        {
            ArrowValidation.Validate(column, $"column '{name}'");
        }
        catch (Exception e) when (e is InvalidArrowException or NotSupportedException)
        {
            throw Error(name, null, e.Message, e);
        }
        return column.Data;
    }

    private EventContractException WrongType(string name, ArrayData data, string expected) =>
        Error(name, null, $"column is {ArrowText.Type(data.DataType)}, expected {expected}");

    private void RequireNoNulls(string name, ArrayData data, Func<int, bool> isNull)
    {
        if (data.NullCount == 0 && data.DataType is not DictionaryType)
        {
            return;
        }
        for (var i = 0; i < data.Length; i++)
        {
            if (isNull(i))
            {
                throw Error(name, i, "value is null but the field is required");
            }
        }
    }

    internal static bool IsNull(ArrayData data, int row)
    {
        if (data.NullCount == 0 || data.Buffers is not { Length: > 0 } || data.Buffers[0].IsEmpty)
        {
            return false;
        }
        var bit = data.Offset + row;
        return (data.Buffers[0].Span[bit >> 3] & (1 << (bit & 7))) == 0;
    }

    public StringColumn Utf8(string name) => Utf8Column(name, required: true)!;

    public StringColumn? OptionalUtf8(string name) => Utf8Column(name, required: false);

    private StringColumn? Utf8Column(string name, bool required)
    {
        if (Find(name, required) is not { } data)
        {
            return null;
        }
        var column = StringColumn.TryCreate(data, this, name) ?? throw WrongType(name, data, "utf8");
        if (required)
        {
            RequireNoNulls(name, data, column.IsNull);
        }
        return column;
    }

    public ReadOnlySpan<T> Primitive<T>(string name, IArrowType expected) where T : unmanaged
    {
        var data = Find(name, required: true)!;
        if (data.DataType.TypeId != expected.TypeId)
        {
            throw WrongType(name, data, ArrowText.Type(expected));
        }
        RequireNoNulls(name, data, row => IsNull(data, row));
        return MemoryMarshal.Cast<byte, T>(data.Buffers[1].Span).Slice(data.Offset, data.Length);
    }

    /// <summary>An optional nullable primitive column, or null when the stream does not have it.</summary>
    public NullablePrimitive<T>? OptionalPrimitive<T>(string name, IArrowType expected) where T : unmanaged
    {
        if (Find(name, required: false) is not { } data)
        {
            return null;
        }
        if (data.DataType.TypeId != expected.TypeId)
        {
            throw WrongType(name, data, ArrowText.Type(expected));
        }
        return new NullablePrimitive<T>(data);
    }

    public ListColumn<T> List<T>(string name, IArrowType item) where T : unmanaged => ListOf<T>(name, item, required: true)!;

    public ListColumn<T>? OptionalList<T>(string name, IArrowType item) where T : unmanaged => ListOf<T>(name, item, required: false);

    private ListColumn<T>? ListOf<T>(string name, IArrowType item, bool required) where T : unmanaged
    {
        if (Find(name, required) is not { } data)
        {
            return null;
        }
        var expected = $"list<item: {ArrowText.Type(item)}>";
        if (data.DataType is not (ListType or LargeListType or FixedSizeListType) || data.Children[0].DataType.TypeId != item.TypeId)
        {
            throw WrongType(name, data, expected);
        }
        var child = data.Children[0];
        if (child.NullCount > 0)
        {
            throw Error(name, null, $"list items must not be null ({child.NullCount} null items)");
        }
        var column = new ListColumn<T>(data);
        if (required)
        {
            RequireNoNulls(name, data, row => IsNull(data, row));
        }
        return column;
    }

    /// <summary>A required list of strings (list, large_list or fixed_size_list of any accepted string type; no null items).</summary>
    public StringListColumn StringList(string name) => StringListOf(name, required: true)!;

    /// <summary>An optional list of strings (no null items), or null when the stream does not have the column.</summary>
    public StringListColumn? OptionalUtf8List(string name) => StringListOf(name, required: false);

    private StringListColumn? StringListOf(string name, bool required)
    {
        if (Find(name, required) is not { } data)
        {
            return null;
        }
        if (data.DataType is not (ListType or LargeListType or FixedSizeListType) || StringColumn.TryCreate(data.Children[0], this, name) is not { } items)
        {
            throw WrongType(name, data, "list<item: utf8>");
        }
        for (var k = 0; k < data.Children[0].Length; k++)
        {
            if (items.IsNull(k))
            {
                throw Error(name, null, $"list items must not be null (item {k} is)");
            }
        }
        if (required)
        {
            RequireNoNulls(name, data, row => IsNull(data, row));
        }
        return new StringListColumn(data, items);
    }

    /// <summary>The [start, end) item range of <paramref name="row"/> in a (validated) list, large_list or fixed_size_list.</summary>
    internal static (int Start, int End) ListRange(ArrayData data, int row)
    {
        var slot = data.Offset + row;
        switch (data.DataType)
        {
            case ListType:
            {
                var offsets = MemoryMarshal.Cast<byte, int>(data.Buffers[1].Span);
                return data.Length == 0 ? default : (offsets[slot], offsets[slot + 1]);
            }
            case LargeListType:
            {
                var offsets = MemoryMarshal.Cast<byte, long>(data.Buffers[1].Span);
                return data.Length == 0 ? default : ((int)offsets[slot], (int)offsets[slot + 1]);
            }
            default:
            {
                var size = ((FixedSizeListType)data.DataType).ListSize;
                return (slot * size, (slot + 1) * size);
            }
        }
    }

    public BinaryColumn Binary(string name) => BinaryOf(name, required: true)!;

    public BinaryColumn? OptionalBinary(string name) => BinaryOf(name, required: false);

    private BinaryColumn? BinaryOf(string name, bool required)
    {
        if (Find(name, required) is not { } data)
        {
            return null;
        }
        if (data.DataType is not (BinaryType or LargeBinaryType) || data.DataType is FixedSizeBinaryType)
        {
            throw WrongType(name, data, "binary");
        }
        if (required)
        {
            RequireNoNulls(name, data, row => IsNull(data, row));
        }
        return new BinaryColumn(data);
    }

    /// <summary>An instant column: timestamps of any unit with a time zone (values are UTC-based), as UTC instants.</summary>
    public DateTimeOffset[] Instants(string name)
    {
        var data = Find(name, required: true)!;
        if (data.DataType is not TimestampType { Timezone: { Length: > 0 } } type)
        {
            throw WrongType(name, data, "timestamp with a time zone (e.g. timestamp[us, UTC])");
        }
        RequireNoNulls(name, data, row => IsNull(data, row));
        var values = MemoryMarshal.Cast<byte, long>(data.Buffers[1].Span).Slice(data.Offset, data.Length);
        var (multiply, divide) = type.Unit switch
        {
            TimeUnit.Second => (TimeSpan.TicksPerSecond, 1L),
            TimeUnit.Millisecond => (TimeSpan.TicksPerMillisecond, 1L),
            TimeUnit.Microsecond => (TimeSpan.TicksPerMicrosecond, 1L),
            _ => (1L, 100L),
        };
        var result = new DateTimeOffset[values.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var epochTicks = DateTimeOffset.UnixEpoch.UtcTicks;
            var ticks = Math.BigMul(values[i], multiply) / divide;
            if (ticks < -epochTicks || ticks > DateTimeOffset.MaxValue.UtcTicks - epochTicks)
            {
                throw Error(name, i, $"timestamp {values[i]} ({ArrowText.Type(type)}) is outside the representable range");
            }
            result[i] = DateTimeOffset.UnixEpoch.AddTicks((long)ticks);
        }
        return result;
    }

    /// <summary>utf8, large_utf8, utf8_view, or a dictionary of one of them; decoded strictly as UTF-8.</summary>
    internal sealed class StringColumn
    {
        private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        private readonly ArrayData _data;
        private readonly EventBatch _batch;
        private readonly string _name;
        private readonly StringColumn? _dictionary;
        private readonly string?[]? _decoded;
        private string? _last;
        private int _lastRow;

        private StringColumn(ArrayData data, EventBatch batch, string name, StringColumn? dictionary)
        {
            _data = data;
            _batch = batch;
            _name = name;
            _dictionary = dictionary;
            _decoded = dictionary is null ? null : new string?[data.Dictionary.Length];
        }

        public static StringColumn? TryCreate(ArrayData data, EventBatch batch, string name) => data.DataType switch
        {
            StringType or LargeStringType or StringViewType => new StringColumn(data, batch, name, null),
            DictionaryType { ValueType: StringType or LargeStringType or StringViewType } => new StringColumn(data, batch, name, new StringColumn(data.Dictionary, batch, name, null)),
            _ => null,
        };

        public bool IsNull(int row) =>
            EventBatch.IsNull(_data, row) || (_dictionary is not null && _dictionary.IsNull(Index(row)));

        private int Index(int row) =>
            (int)ArrowValidation.ReadIndex(((DictionaryType)_data.DataType).IndexType.TypeId, _data.Buffers[1].Span, _data.Offset + row);

        /// <summary>The string at <paramref name="row"/>, or null.</summary>
        public string? Get(int row)
        {
            if (EventBatch.IsNull(_data, row))
            {
                return null;
            }
            if (_dictionary is not null)
            {
                // Decode each dictionary entry once: rows that share an entry share its string.
                var index = Index(row);
                return _decoded![index] ??= _dictionary.Get(index);
            }
            try
            {
                // Neighbouring rows often repeat a value (model version, method): reuse the previous string.
                var bytes = Bytes(row);
                if (_last is { } last && bytes.SequenceEqual(Bytes(_lastRow)))
                {
                    return last;
                }
                _lastRow = row;
                return _last = Strict.GetString(bytes);
            }
            catch (DecoderFallbackException e)
            {
                throw _batch.Error(_name, row, "string is not valid UTF-8", e);
            }
        }

        /// <summary>The string at a required column's <paramref name="row"/>.</summary>
        public string Required(int row) => Get(row) ?? throw _batch.Error(_name, row, "value is null but the field is required");

        private ReadOnlySpan<byte> Bytes(int row)
        {
            var slot = _data.Offset + row;
            var buffers = _data.Buffers;
            switch (_data.DataType)
            {
                case StringType:
                {
                    var offsets = MemoryMarshal.Cast<byte, int>(buffers[1].Span);
                    return buffers[2].Span[offsets[slot]..offsets[slot + 1]];
                }
                case LargeStringType:
                {
                    var offsets = MemoryMarshal.Cast<byte, long>(buffers[1].Span);
                    return buffers[2].Span[(int)offsets[slot]..(int)offsets[slot + 1]];
                }
                default:
                {
                    var view = buffers[1].Span.Slice(16 * slot, 16);
                    var length = BinaryPrimitives.ReadInt32LittleEndian(view);
                    if (length <= 12)
                    {
                        return view.Slice(4, length);
                    }
                    var buffer = BinaryPrimitives.ReadInt32LittleEndian(view[8..]);
                    var start = BinaryPrimitives.ReadInt32LittleEndian(view[12..]);
                    return buffers[2 + buffer].Span.Slice(start, length);
                }
            }
        }
    }

    /// <summary>list, large_list or fixed_size_list of a primitive item type, with non-null items.</summary>
    internal sealed class ListColumn<T>(ArrayData data) where T : unmanaged
    {
        private ReadOnlySpan<T> Items => MemoryMarshal.Cast<byte, T>(data.Children[0].Buffers[1].Span)[data.Children[0].Offset..];

        public bool IsNull(int row) => EventBatch.IsNull(data, row);

        public ReadOnlySpan<T> Get(int row)
        {
            var (start, end) = ListRange(data, row);
            return start == end ? default : Items[start..end];
        }
    }

    /// <summary>A primitive column that may hold nulls.</summary>
    internal sealed class NullablePrimitive<T>(ArrayData data) where T : unmanaged
    {
        public bool IsNull(int row) => EventBatch.IsNull(data, row);

        public T Value(int row) => MemoryMarshal.Cast<byte, T>(data.Buffers[1].Span)[data.Offset + row];
    }

    /// <summary>A list of strings per row.</summary>
    internal sealed class StringListColumn(ArrayData data, StringColumn items)
    {
        public bool IsNull(int row) => EventBatch.IsNull(data, row);

        public int Count(int row)
        {
            var (start, end) = ListRange(data, row);
            return end - start;
        }

        public string[] Get(int row)
        {
            var (start, end) = ListRange(data, row);
            var result = new string[end - start];
            for (var k = 0; k < result.Length; k++)
            {
                result[k] = items.Required(start + k);
            }
            return result;
        }
    }

    /// <summary>binary or large_binary.</summary>
    internal sealed class BinaryColumn(ArrayData data)
    {
        public bool IsNull(int row) => EventBatch.IsNull(data, row);

        public ReadOnlySpan<byte> Get(int row)
        {
            var slot = data.Offset + row;
            if (data.DataType is LargeBinaryType)
            {
                var large = MemoryMarshal.Cast<byte, long>(data.Buffers[1].Span);
                return data.Buffers[2].Span[(int)large[slot]..(int)large[slot + 1]];
            }
            var offsets = MemoryMarshal.Cast<byte, int>(data.Buffers[1].Span);
            return data.Buffers[2].Span[offsets[slot]..offsets[slot + 1]];
        }
    }
}
