using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Attribution.Arrow;

/// <summary>
/// Builds <see cref="ArrowArray"/> columns from managed values. Each factory copies once into
/// fresh buffers laid out exactly as they go on the wire, so the writer only copies spans.
/// A <c>valid</c> span, when not empty, must have one entry per row (false = null).
/// </summary>
public static class ArrowArrays
{
    /// <summary>int32 column.</summary>
    public static ArrowArray Int32(ReadOnlySpan<int> values, ReadOnlySpan<bool> valid = default) => Fixed(ArrowType.Int32, values, valid);

    /// <summary>int64 column.</summary>
    public static ArrowArray Int64(ReadOnlySpan<long> values, ReadOnlySpan<bool> valid = default) => Fixed(ArrowType.Int64, values, valid);

    /// <summary>float32 column.</summary>
    public static ArrowArray Float32(ReadOnlySpan<float> values, ReadOnlySpan<bool> valid = default) => Fixed(ArrowType.Float32, values, valid);

    /// <summary>float64 column.</summary>
    public static ArrowArray Float64(ReadOnlySpan<double> values, ReadOnlySpan<bool> valid = default) => Fixed(ArrowType.Float64, values, valid);

    /// <summary>Timestamp column of raw counts of <paramref name="type"/>'s unit since the epoch.</summary>
    public static ArrowArray Timestamp(ArrowType type, ReadOnlySpan<long> values, ReadOnlySpan<bool> valid = default)
    {
        ArgumentNullException.ThrowIfNull(type);
        if (type.Kind != ArrowTypeKind.Timestamp)
        {
            throw new ArgumentException($"Expected a timestamp type, got {type}.", nameof(type));
        }
        return Fixed(type, values, valid);
    }

    /// <summary>bool column.</summary>
    public static ArrowArray Bool(ReadOnlySpan<bool> values, ReadOnlySpan<bool> valid = default)
    {
        var bits = new byte[(values.Length + 7) >> 3];
        for (var i = 0; i < values.Length; i++)
        {
            if (values[i])
            {
                bits[i >> 3] |= (byte)(1 << (i & 7));
            }
        }
        var (validity, nulls) = Bitmap(valid, values.Length);
        return new ArrowArray(ArrowType.Bool, values.Length, nulls, validity, default, bits, null);
    }

    /// <summary>utf8 column; null entries are null slots.</summary>
    public static ArrowArray Utf8(IReadOnlyList<string?> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var total = 0L;
        for (var i = 0; i < values.Count; i++)
        {
            total += values[i] is { } s ? Encoding.UTF8.GetByteCount(s) : 0;
        }
        CheckOffsetRange(total);
        var data = new byte[total];
        var offsets = new int[values.Count + 1];
        var valid = new bool[values.Count];
        var pos = 0;
        for (var i = 0; i < values.Count; i++)
        {
            if (values[i] is { } s)
            {
                pos += Encoding.UTF8.GetBytes(s, data.AsSpan(pos));
                valid[i] = true;
            }
            offsets[i + 1] = pos;
        }
        return Variable(ArrowType.Utf8, offsets, valid, data, null);
    }

    /// <summary>binary column; null entries are null slots.</summary>
    public static ArrowArray Binary(IReadOnlyList<ReadOnlyMemory<byte>?> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var total = 0L;
        for (var i = 0; i < values.Count; i++)
        {
            total += values[i]?.Length ?? 0;
        }
        CheckOffsetRange(total);
        var data = new byte[total];
        var offsets = new int[values.Count + 1];
        var valid = new bool[values.Count];
        var pos = 0;
        for (var i = 0; i < values.Count; i++)
        {
            if (values[i] is { } v)
            {
                v.Span.CopyTo(data.AsSpan(pos));
                pos += v.Length;
                valid[i] = true;
            }
            offsets[i + 1] = pos;
        }
        return Variable(ArrowType.Binary, offsets, valid, data, null);
    }

    /// <summary>list&lt;float32&gt; column (non-null items); null rows are null slots.</summary>
    public static ArrowArray ListOfFloat32(IReadOnlyList<ReadOnlyMemory<float>?> rows) => ListOf(ArrowType.Float32, rows);

    /// <summary>list&lt;int64&gt; column (non-null items); null rows are null slots.</summary>
    public static ArrowArray ListOfInt64(IReadOnlyList<ReadOnlyMemory<long>?> rows) => ListOf(ArrowType.Int64, rows);

    /// <summary>fixed_size_list&lt;float32&gt;[listSize] column; every non-null row must have exactly listSize items.</summary>
    public static ArrowArray FixedSizeListOfFloat32(int listSize, IReadOnlyList<ReadOnlyMemory<float>?> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(listSize);
        var items = new float[checked(rows.Count * listSize)];
        var valid = new bool[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            if (rows[i] is { } row)
            {
                if (row.Length != listSize)
                {
                    throw new ArgumentException($"Row {i} has {row.Length} items; the fixed list size is {listSize}.", nameof(rows));
                }
                row.Span.CopyTo(items.AsSpan(i * listSize));
                valid[i] = true;
            }
        }
        var child = Float32(items);
        var (validity, nulls) = Bitmap(valid, rows.Count);
        return new ArrowArray(ArrowType.FixedSizeList(listSize, ArrowType.Float32, itemNullable: false), rows.Count, nulls, validity, default, default, child);
    }

    /// <summary>
    /// Wraps caller-owned buffers without copying (e.g. spans over pooled arrays), after checking
    /// that they are large enough for <paramref name="length"/> rows. The caller keeps the memory
    /// alive and unchanged while the array is in use.
    /// </summary>
    public static ArrowArray FromBuffers(ArrowType type, int length, int nullCount, ReadOnlyMemory<byte> validity, ReadOnlyMemory<byte> offsets, ReadOnlyMemory<byte> values, ArrowArray? child = null)
    {
        ArgumentNullException.ThrowIfNull(type);
        var error = ArrayValidation.Check(type, length, nullCount, validity.Span, offsets.Span, values.Length, child);
        return error is null ? new ArrowArray(type, length, nullCount, validity, offsets, values, child) : throw new ArgumentException(error);
    }

    private static ArrowArray ListOf<T>(ArrowType itemType, IReadOnlyList<ReadOnlyMemory<T>?> rows) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(rows);
        var total = 0L;
        for (var i = 0; i < rows.Count; i++)
        {
            total += rows[i]?.Length ?? 0;
        }
        CheckOffsetRange(total);
        var itemBytes = new byte[checked((int)total * Unsafe.SizeOf<T>())];
        var items = MemoryMarshal.Cast<byte, T>(itemBytes.AsSpan());
        var offsets = new int[rows.Count + 1];
        var valid = new bool[rows.Count];
        var pos = 0;
        for (var i = 0; i < rows.Count; i++)
        {
            if (rows[i] is { } row)
            {
                row.Span.CopyTo(items[pos..]);
                pos += row.Length;
                valid[i] = true;
            }
            offsets[i + 1] = pos;
        }
        var child = new ArrowArray(itemType, items.Length, 0, default, default, itemBytes, null);
        return Variable(ArrowType.List(itemType, itemNullable: false), offsets, valid, default, child);
    }

    private static ArrowArray Fixed<T>(ArrowType type, ReadOnlySpan<T> values, ReadOnlySpan<bool> valid) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(values).ToArray();
        var (validity, nulls) = Bitmap(valid, values.Length);
        if (nulls != 0)
        {
            // Null slots carry zeros on the wire so output does not depend on garbage.
            var width = type.FixedWidth;
            for (var i = 0; i < valid.Length; i++)
            {
                if (!valid[i])
                {
                    bytes.AsSpan(i * width, width).Clear();
                }
            }
        }
        return new ArrowArray(type, values.Length, nulls, validity, default, bytes, null);
    }

    private static ArrowArray Variable(ArrowType type, int[] offsets, bool[] valid, byte[]? data, ArrowArray? child)
    {
        var (validity, nulls) = Bitmap(valid, valid.Length);
        return new ArrowArray(type, valid.Length, nulls, validity, MemoryMarshal.AsBytes(offsets.AsSpan()).ToArray(), data ?? default(ReadOnlyMemory<byte>), child);
    }

    private static (byte[] Bitmap, int Nulls) Bitmap(ReadOnlySpan<bool> valid, int length)
    {
        if (valid.IsEmpty)
        {
            return ([], 0);
        }
        if (valid.Length != length)
        {
            throw new ArgumentException($"Validity has {valid.Length} entries but there are {length} values.", nameof(valid));
        }
        var bits = new byte[(length + 7) >> 3];
        var nulls = 0;
        for (var i = 0; i < length; i++)
        {
            if (valid[i])
            {
                bits[i >> 3] |= (byte)(1 << (i & 7));
            }
            else
            {
                nulls++;
            }
        }
        return nulls == 0 ? ([], 0) : (bits, nulls);
    }

    private static void CheckOffsetRange(long total)
    {
        if (total > int.MaxValue)
        {
            throw new ArgumentException($"Total data size {total} exceeds the int32 offset range; split the batch.");
        }
    }
}
