using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;

namespace Attribution.Arrow;

/// <summary>
/// One column of a record batch in Arrow's columnar layout: a validity bitmap, optional int32
/// offsets, a values buffer and (for lists) a child array. Arrays returned by
/// <see cref="ArrowStreamReader"/> are zero-copy views over the stream bytes; arrays built by
/// <see cref="ArrowArrays"/> own fresh buffers. Instances are immutable.
/// </summary>
public sealed class ArrowArray
{
    internal ArrowArray(ArrowType type, int length, int nullCount, ReadOnlyMemory<byte> validity, ReadOnlyMemory<byte> offsets, ReadOnlyMemory<byte> values, ArrowArray? child)
    {
        Type = type;
        Length = length;
        NullCount = nullCount;
        Validity = nullCount == 0 ? ReadOnlyMemory<byte>.Empty : validity;
        Offsets = offsets;
        Values = values;
        Child = child;
    }

    /// <summary>The column type.</summary>
    public ArrowType Type { get; }

    /// <summary>Number of slots.</summary>
    public int Length { get; }

    /// <summary>Number of null slots.</summary>
    public int NullCount { get; }

    /// <summary>LSB-first validity bitmap (1 = valid); empty when <see cref="NullCount"/> is 0.</summary>
    public ReadOnlyMemory<byte> Validity { get; }

    /// <summary>int32 offsets (utf8, binary, list): Length + 1 values, or empty for a 0-length array.</summary>
    public ReadOnlyMemory<byte> Offsets { get; }

    /// <summary>Fixed-width values, bit-packed bools, or the utf8/binary data bytes. Empty for lists.</summary>
    public ReadOnlyMemory<byte> Values { get; }

    /// <summary>The items of a list or fixed-size list; null otherwise.</summary>
    public ArrowArray? Child { get; }

    /// <summary>Whether slot <paramref name="index"/> is null.</summary>
    public bool IsNull(int index)
    {
        CheckIndex(index);
        return NullCount != 0 && (Validity.Span[index >> 3] & (1 << (index & 7))) == 0;
    }

    /// <summary>The int32 values (null slots hold unspecified values).</summary>
    public ReadOnlySpan<int> Int32Values => Cast<int>(ArrowTypeKind.Int32);

    /// <summary>The int64 or timestamp values (null slots hold unspecified values).</summary>
    public ReadOnlySpan<long> Int64Values => Type.Kind == ArrowTypeKind.Timestamp
        ? MemoryMarshal.Cast<byte, long>(Values.Span)[..Length]
        : Cast<long>(ArrowTypeKind.Int64);

    /// <summary>The float32 values (null slots hold unspecified values).</summary>
    public ReadOnlySpan<float> Float32Values => Cast<float>(ArrowTypeKind.Float32);

    /// <summary>The float64 values (null slots hold unspecified values).</summary>
    public ReadOnlySpan<double> Float64Values => Cast<double>(ArrowTypeKind.Float64);

    /// <summary>The offsets as int32 values (Length + 1 of them, or none for an empty array).</summary>
    public ReadOnlySpan<int> OffsetValues => MemoryMarshal.Cast<byte, int>(Offsets.Span);

    /// <summary>The bool at <paramref name="index"/>.</summary>
    public bool GetBool(int index)
    {
        CheckKind(ArrowTypeKind.Bool);
        CheckIndex(index);
        return (Values.Span[index >> 3] & (1 << (index & 7))) != 0;
    }

    /// <summary>The bytes of a utf8 or binary slot (empty for null).</summary>
    public ReadOnlySpan<byte> GetBytes(int index)
    {
        if (Type.Kind is not (ArrowTypeKind.Utf8 or ArrowTypeKind.Binary))
        {
            throw new InvalidOperationException($"GetBytes needs a utf8 or binary column, not {Type}.");
        }
        CheckIndex(index);
        var offsets = OffsetValues;
        return Values.Span[offsets[index]..offsets[index + 1]];
    }

    /// <summary>The string at <paramref name="index"/>, or null for a null slot. Invalid UTF-8 decodes to U+FFFD.</summary>
    public string? GetString(int index)
    {
        CheckKind(ArrowTypeKind.Utf8);
        return IsNull(index) ? null : Encoding.UTF8.GetString(GetBytes(index));
    }

    /// <summary>Where slot <paramref name="index"/> of a list or fixed-size list lies in <see cref="Child"/>.</summary>
    public (int Start, int Length) GetListRange(int index)
    {
        CheckIndex(index);
        if (Type.Kind == ArrowTypeKind.FixedSizeList)
        {
            return (index * Type.ListSize, Type.ListSize);
        }
        CheckKind(ArrowTypeKind.List);
        var offsets = OffsetValues;
        return (offsets[index], offsets[index + 1] - offsets[index]);
    }

    /// <summary>The float32 items of list slot <paramref name="index"/> (empty for null).</summary>
    public ReadOnlySpan<float> GetFloat32List(int index)
    {
        var (start, length) = GetListRange(index);
        return Child!.Float32Values.Slice(start, length);
    }

    /// <summary>The int64 items of list slot <paramref name="index"/> (empty for null).</summary>
    public ReadOnlySpan<long> GetInt64List(int index)
    {
        var (start, length) = GetListRange(index);
        return Child!.Int64Values.Slice(start, length);
    }

    /// <summary>Counts zero bits of <paramref name="bitmap"/> in [start, start + count).</summary>
    internal static int CountNulls(ReadOnlySpan<byte> bitmap, int start, int count)
    {
        var valid = 0;
        var i = start;
        var end = start + count;
        while (i < end && (i & 7) != 0)
        {
            valid += (bitmap[i >> 3] >> (i & 7)) & 1;
            i++;
        }
        while (end - i >= 64)
        {
            valid += BitOperations.PopCount(BinaryPrimitives.ReadUInt64LittleEndian(bitmap[(i >> 3)..]));
            i += 64;
        }
        while (end - i >= 8)
        {
            valid += BitOperations.PopCount(bitmap[i >> 3]);
            i += 8;
        }
        while (i < end)
        {
            valid += (bitmap[i >> 3] >> (i & 7)) & 1;
            i++;
        }
        return count - valid;
    }

    private ReadOnlySpan<T> Cast<T>(ArrowTypeKind kind) where T : struct
    {
        CheckKind(kind);
        return MemoryMarshal.Cast<byte, T>(Values.Span)[..Length];
    }

    private void CheckKind(ArrowTypeKind kind)
    {
        if (Type.Kind != kind)
        {
            throw new InvalidOperationException($"Column is {Type}, not {kind}.");
        }
    }

    private void CheckIndex(int index)
    {
        if ((uint)index >= (uint)Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"Index must be in [0, {Length}).");
        }
    }
}

/// <summary>A set of equal-length columns described by a schema.</summary>
public sealed class RecordBatch
{
    /// <summary>Creates a batch, checking that columns match the schema's types and share one length.</summary>
    public RecordBatch(ArrowSchema schema, IReadOnlyList<ArrowArray> columns)
    {
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(columns);
        if (columns.Count != schema.Fields.Count)
        {
            throw new ArgumentException($"Schema has {schema.Fields.Count} fields but {columns.Count} columns were given.", nameof(columns));
        }
        var length = columns.Count == 0 ? 0 : columns[0].Length;
        for (var i = 0; i < columns.Count; i++)
        {
            var field = schema.Fields[i];
            if (!SameShape(field.Type, columns[i].Type))
            {
                throw new ArgumentException($"Column {i} ('{field.Name}') is {columns[i].Type} but the schema says {field.Type}.", nameof(columns));
            }
            if (columns[i].Length != length)
            {
                throw new ArgumentException($"Column {i} ('{field.Name}') has {columns[i].Length} rows; column 0 has {length}.", nameof(columns));
            }
            if (!field.Nullable && columns[i].NullCount != 0)
            {
                throw new ArgumentException($"Column {i} ('{field.Name}') is not nullable but has {columns[i].NullCount} nulls.", nameof(columns));
            }
        }
        Schema = schema;
        Columns = columns;
        Length = length;
    }

    internal RecordBatch(ArrowSchema schema, IReadOnlyList<ArrowArray> columns, int length)
    {
        Schema = schema;
        Columns = columns;
        Length = length;
    }

    /// <summary>The schema.</summary>
    public ArrowSchema Schema { get; }

    /// <summary>The columns, in schema order.</summary>
    public IReadOnlyList<ArrowArray> Columns { get; }

    /// <summary>Row count.</summary>
    public int Length { get; }

    /// <summary>The column named <paramref name="name"/>, or null.</summary>
    public ArrowArray? Column(string name)
    {
        var i = Schema.IndexOf(name);
        return i < 0 ? null : Columns[i];
    }

    // Types match when kinds, units, sizes and item types match; names and metadata of list
    // children may differ (writers disagree on "item" vs "element").
    internal static bool SameShape(ArrowType a, ArrowType b) =>
        a.Kind == b.Kind && a.Unit == b.Unit && a.TimeZone == b.TimeZone && a.ListSize == b.ListSize
        && (a.Item is null ? b.Item is null : b.Item is not null && SameShape(a.Item.Type, b.Item.Type));
}
