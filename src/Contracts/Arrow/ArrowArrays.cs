using System.Runtime.InteropServices;
using System.Text;
using Apache.Arrow;
using Apache.Arrow.Types;

namespace Attribution.Contracts.Arrow;

/// <summary>
/// Apache.Arrow arrays built straight from managed values: each buffer is sized once and filled with block copies
/// (no per-value builder calls), which keeps encoding of top-k lists at memory speed.
/// </summary>
public static class ArrowArrays
{
    /// <summary>A non-null int32 column.</summary>
    public static Int32Array Int32(ReadOnlySpan<int> values) => new(Buffer(values), ArrowBuffer.Empty, values.Length, 0, 0);

    /// <summary>A non-null int64 column.</summary>
    public static Int64Array Int64(ReadOnlySpan<long> values) => new(Buffer(values), ArrowBuffer.Empty, values.Length, 0, 0);

    /// <summary>A non-null float32 column.</summary>
    public static FloatArray Float32(ReadOnlySpan<float> values) => new(Buffer(values), ArrowBuffer.Empty, values.Length, 0, 0);

    /// <summary>A non-null float64 column.</summary>
    public static DoubleArray Float64(ReadOnlySpan<double> values) => new(Buffer(values), ArrowBuffer.Empty, values.Length, 0, 0);

    /// <summary>A non-null timestamp column of <paramref name="type"/>'s unit.</summary>
    public static TimestampArray Timestamp(TimestampType type, ReadOnlySpan<long> values) => new(type, Buffer(values), ArrowBuffer.Empty, values.Length, 0, 0);

    /// <summary>A nullable int32 column.</summary>
    public static Int32Array NullableInt32(IReadOnlyList<int?> values) => Nullable(values, (b, v, n, nulls) => new Int32Array(b, v, n, nulls, 0));

    /// <summary>A nullable int64 column.</summary>
    public static Int64Array NullableInt64(IReadOnlyList<long?> values) => Nullable(values, (b, v, n, nulls) => new Int64Array(b, v, n, nulls, 0));

    /// <summary>A nullable float64 column.</summary>
    public static DoubleArray NullableFloat64(IReadOnlyList<double?> values) => Nullable(values, (b, v, n, nulls) => new DoubleArray(b, v, n, nulls, 0));

    private static TArray Nullable<T, TArray>(IReadOnlyList<T?> values, Func<ArrowBuffer, ArrowBuffer, int, int, TArray> create) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(values);
        var items = new T[values.Count];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = values[i].GetValueOrDefault();
        }
        var (validity, nulls) = Validity(items.Length, i => values[i].HasValue);
        return create(Buffer<T>(items), validity, items.Length, nulls);
    }

    /// <summary>A utf8 column; null entries are nulls.</summary>
    public static StringArray Utf8(IReadOnlyList<string?> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var n = values.Count;
        var offsets = new byte[4 * (n + 1)];
        var offsetSpan = MemoryMarshal.Cast<byte, int>(offsets.AsSpan());
        var total = 0;
        for (var i = 0; i < n; i++)
        {
            total = checked(total + (values[i] is { } s ? Encoding.UTF8.GetByteCount(s) : 0));
            offsetSpan[i + 1] = total;
        }
        var data = new byte[total];
        for (var i = 0; i < n; i++)
        {
            if (values[i] is { Length: > 0 } s)
            {
                Encoding.UTF8.GetBytes(s, data.AsSpan(offsetSpan[i]));
            }
        }
        var (validity, nulls) = Validity(n, i => values[i] is not null);
        return new StringArray(n, new ArrowBuffer(offsets), new ArrowBuffer(data), validity, nulls, 0);
    }

    /// <summary>A binary column; null entries are nulls.</summary>
    public static BinaryArray Binary(IReadOnlyList<byte[]?> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var n = values.Count;
        var offsets = new byte[4 * (n + 1)];
        var offsetSpan = MemoryMarshal.Cast<byte, int>(offsets.AsSpan());
        var total = 0;
        for (var i = 0; i < n; i++)
        {
            total = checked(total + (values[i]?.Length ?? 0));
            offsetSpan[i + 1] = total;
        }
        var data = new byte[total];
        for (var i = 0; i < n; i++)
        {
            values[i]?.CopyTo(data, offsetSpan[i]);
        }
        var (validity, nulls) = Validity(n, i => values[i] is not null);
        return new BinaryArray(BinaryType.Default, n, new ArrowBuffer(offsets), new ArrowBuffer(data), validity, nulls, 0);
    }

    /// <summary>A list column of <paramref name="type"/> (whose item is <typeparamref name="T"/>); null entries are nulls.</summary>
    public static ListArray List<T>(ListType type, IReadOnlyList<IReadOnlyList<T>?> lists) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(lists);
        var n = lists.Count;
        var offsets = new byte[4 * (n + 1)];
        var offsetSpan = MemoryMarshal.Cast<byte, int>(offsets.AsSpan());
        var total = 0;
        for (var i = 0; i < n; i++)
        {
            total = checked(total + (lists[i]?.Count ?? 0));
            offsetSpan[i + 1] = total;
        }
        var itemBytes = new byte[checked(total * Marshal.SizeOf<T>())];
        var items = MemoryMarshal.Cast<byte, T>(itemBytes.AsSpan());
        for (var i = 0; i < n; i++)
        {
            var target = items[offsetSpan[i]..offsetSpan[i + 1]];
            switch (lists[i])
            {
                case null:
                    break;
                case T[] array:
                    array.CopyTo(target);
                    break;
                case List<T> list:
                    CollectionsMarshal.AsSpan(list).CopyTo(target);
                    break;
                case var other:
                    for (var k = 0; k < target.Length; k++)
                    {
                        target[k] = other[k];
                    }
                    break;
            }
        }
        var child = new ArrayData(type.ValueDataType, total, 0, 0, [ArrowBuffer.Empty, new ArrowBuffer(itemBytes)]);
        var (validity, nulls) = Validity(n, i => lists[i] is not null);
        return new ListArray(new ArrayData(type, n, nulls, 0, [validity, new ArrowBuffer(offsets)], [child]));
    }

    /// <summary>A list&lt;utf8&gt; column (items never null); null entries are nulls.</summary>
    public static ListArray Utf8List(ListType type, IReadOnlyList<IReadOnlyList<string>?> lists)
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(lists);
        var n = lists.Count;
        var offsets = new byte[4 * (n + 1)];
        var offsetSpan = MemoryMarshal.Cast<byte, int>(offsets.AsSpan());
        var items = new List<string?>();
        for (var i = 0; i < n; i++)
        {
            foreach (var item in lists[i] ?? [])
            {
                items.Add(item ?? throw new ArgumentException($"list {i} holds a null string; items must not be null.", nameof(lists)));
            }
            offsetSpan[i + 1] = items.Count;
        }
        var (validity, nulls) = Validity(n, i => lists[i] is not null);
        return new ListArray(new ArrayData(type, n, nulls, 0, [validity, new ArrowBuffer(offsets)], [Utf8(items).Data]));
    }

    private static ArrowBuffer Buffer<T>(ReadOnlySpan<T> values) where T : unmanaged =>
        new(MemoryMarshal.AsBytes(values).ToArray());

    private static (ArrowBuffer Bitmap, int NullCount) Validity(int n, Func<int, bool> isValid)
    {
        byte[]? bitmap = null;
        var nulls = 0;
        for (var i = 0; i < n; i++)
        {
            if (isValid(i))
            {
                continue;
            }
            if (bitmap is null)
            {
                bitmap = new byte[(n + 7) / 8];
                bitmap.AsSpan().Fill(0xFF);
            }
            bitmap[i >> 3] &= (byte)~(1 << (i & 7));
            nulls++;
        }
        return (bitmap is null ? ArrowBuffer.Empty : new ArrowBuffer(bitmap), nulls);
    }
}
