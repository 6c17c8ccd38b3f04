using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Apache.Arrow;
using Apache.Arrow.Types;

namespace Attribution.Contracts.Arrow;

/// <summary>
/// Checks that an array read from untrusted bytes is internally consistent before any value is touched:
/// Apache.Arrow builds arrays from the lengths the metadata claims without checking them against the buffers.
/// Checked: validity bitmaps, value buffer sizes, offsets (start at or above 0, never decrease, end within the data
/// or child), fixed-size list and struct children, view references, dictionary indices. Throws
/// <see cref="InvalidArrowException"/> naming the column path; types it cannot check (unions, list views, run-end
/// encoded) raise <see cref="NotSupportedException"/>.
/// </summary>
public static class ArrowValidation
{
    /// <summary>Checks <paramref name="array"/> and everything under it (children, dictionary).</summary>
    public static void Validate(IArrowArray array, string path)
    {
        ArgumentNullException.ThrowIfNull(array);
        Validate(array.Data, path);
    }

    private static InvalidArrowException Fail(string path, string problem) => new($"Malformed Arrow array in {path}: {problem}.");

    private static void Validate(ArrayData data, string path)
    {
        int length = data.Length, offset = data.Offset;
        if (length < 0 || offset < 0 || (long)offset + length > int.MaxValue)
        {
            throw Fail(path, $"length {length} at offset {offset} is out of range");
        }
        var end = offset + length;
        var type = data.DataType is ExtensionType extension ? extension.StorageType : data.DataType;
        var buffers = data.Buffers ?? [];
        if (data.NullCount > length)
        {
            throw Fail(path, $"null count {data.NullCount} exceeds the length {length}");
        }
        if (type.TypeId is not (ArrowTypeId.Null or ArrowTypeId.Union or ArrowTypeId.RunEndEncoded) && data.NullCount != 0)
        {
            if (buffers.Length == 0 || buffers[0].Length < Bytes(end))
            {
                throw Fail(path, $"{data.NullCount} nulls but the validity bitmap has {(buffers.Length == 0 ? 0 : buffers[0].Length)} bytes for {end} slots");
            }
        }
        switch (type)
        {
            case NullType:
                return;
            case BooleanType:
                Need(buffers, 1, Bytes(end), path, "values");
                return;
            case DictionaryType dictionary:
                ValidateDictionary(data, dictionary, buffers, path);
                return;
            case FixedWidthType fixedWidth:
                Need(buffers, 1, (long)end * fixedWidth.BitWidth / 8, path, "values");
                return;
            case StringType or BinaryType:
                Offsets<int>(data, buffers, buffers.Length > 2 ? buffers[2].Length : 0, path);
                return;
            case LargeStringType or LargeBinaryType:
                Offsets<long>(data, buffers, buffers.Length > 2 ? buffers[2].Length : 0, path);
                return;
            case StringViewType or BinaryViewType:
                ValidateViews(data, buffers, path);
                return;
            case ListType or MapType:
                ValidateChild(data, 0, path, out var child);
                Offsets<int>(data, buffers, child.Length, path);
                return;
            case LargeListType:
                ValidateChild(data, 0, path, out var largeChild);
                Offsets<long>(data, buffers, largeChild.Length, path);
                return;
            case FixedSizeListType fixedList:
                ValidateChild(data, 0, path, out var items);
                if (fixedList.ListSize < 0 || items.Length < (long)end * fixedList.ListSize)
                {
                    throw Fail(path, $"{end} lists of {fixedList.ListSize} items need {(long)end * fixedList.ListSize} child values, the child has {items.Length}");
                }
                return;
            case StructType:
                for (var i = 0; i < (data.Children?.Length ?? 0); i++)
                {
                    ValidateChild(data, i, path, out var field);
                    if (field.Length < end)
                    {
                        throw Fail(path, $"struct child {i} has {field.Length} values for {end} rows");
                    }
                }
                return;
            default:
                throw new NotSupportedException($"{path}: arrays of type {ArrowText.Type(type)} cannot be checked, so they are not read");
        }
    }

    private static int Bytes(int bits) => (int)(((long)bits + 7) / 8);

    private static void Need(ArrowBuffer[] buffers, int index, long bytes, string path, string role)
    {
        var have = buffers.Length > index ? buffers[index].Length : 0;
        if (have < bytes)
        {
            throw Fail(path, $"the {role} buffer has {have} bytes, {bytes} needed");
        }
    }

    private static void ValidateChild(ArrayData data, int index, string path, out ArrayData child)
    {
        if (data.Children is null || data.Children.Length <= index)
        {
            throw Fail(path, $"child array {index} is missing");
        }
        child = data.Children[index];
        Validate(child, $"{path}.{index}");
    }

    // 32-bit offsets (utf8, binary, list) and 64-bit ones (the large variants): the same checks on either width.
    private static void Offsets<T>(ArrayData data, ArrowBuffer[] buffers, long limit, string path)
        where T : unmanaged, IBinaryInteger<T>
    {
        if (data.Length == 0)
        {
            return;
        }
        var end = data.Offset + data.Length;
        Need(buffers, 1, (long)Unsafe.SizeOf<T>() * (end + 1), path, "offsets");
        var offsets = MemoryMarshal.Cast<byte, T>(buffers[1].Span)[data.Offset..(end + 1)];
        var previous = long.CreateTruncating(offsets[0]);
        if (previous < 0)
        {
            throw Fail(path, $"the first offset {previous} is negative");
        }
        for (var i = 1; i < offsets.Length; i++)
        {
            var offset = long.CreateTruncating(offsets[i]);
            if (offset < previous)
            {
                throw Fail(path, $"offsets decrease at slot {i} ({previous} then {offset})");
            }
            previous = offset;
        }
        if (previous > limit)
        {
            throw Fail(path, $"the last offset {previous} lies beyond the {limit} values present");
        }
    }

    private static void ValidateViews(ArrayData data, ArrowBuffer[] buffers, string path)
    {
        // Views (16 bytes): length; then up to 12 inline bytes, or prefix, data buffer index, offset.
        var end = data.Offset + data.Length;
        Need(buffers, 1, 16L * end, path, "views");
        var views = buffers[1].Span;
        long referenced = 0, present = buffers[1].Length;
        for (var b = 2; b < buffers.Length; b++)
        {
            present += buffers[b].Length;
        }
        for (var i = data.Offset; i < end; i++)
        {
            var view = views.Slice(16 * i, 16);
            var length = BinaryPrimitives.ReadInt32LittleEndian(view);
            if (length < 0)
            {
                throw Fail(path, $"view {i} has negative length {length}");
            }
            if (length <= 12)
            {
                continue;
            }
            var buffer = BinaryPrimitives.ReadInt32LittleEndian(view[8..]);
            var start = BinaryPrimitives.ReadInt32LittleEndian(view[12..]);
            if (buffer < 0 || buffer >= buffers.Length - 2 || start < 0 || (long)start + length > buffers[buffer + 2].Length)
            {
                throw Fail(path, $"view {i} ({length} bytes in data buffer {buffer} at {start}) lies outside the data buffers");
            }
            // Views may share bytes; bound what copying every value out could cost.
            referenced += length;
            if (referenced > (ArrowReadLimits.Default.MaxExpansion * present) + ArrowReadLimits.Default.ExpansionAllowanceBytes)
            {
                throw Fail(path, $"views reference {referenced} bytes, more than {ArrowReadLimits.Default.MaxExpansion}x the {present} bytes present");
            }
        }
    }

    private static void ValidateDictionary(ArrayData data, DictionaryType type, ArrowBuffer[] buffers, string path)
    {
        if (data.Dictionary is null)
        {
            throw Fail(path, "the dictionary is missing");
        }
        Validate(data.Dictionary, $"{path} dictionary");
        var end = data.Offset + data.Length;
        var width = ((FixedWidthType)type.IndexType).BitWidth / 8;
        Need(buffers, 1, (long)end * width, path, "indices");
        var size = data.Dictionary.Length;
        var indices = buffers[1].Span;
        var validity = data.NullCount == 0 ? default : buffers[0].Span;
        for (var i = data.Offset; i < end; i++)
        {
            if (!validity.IsEmpty && (validity[i >> 3] & (1 << (i & 7))) == 0)
            {
                continue;
            }
            var index = ReadIndex(type.IndexType.TypeId, indices, i);
            if (index < 0 || index >= size)
            {
                throw Fail(path, $"slot {i - data.Offset} refers to dictionary entry {index} of {size}");
            }
        }
    }

    /// <summary>Dictionary index <paramref name="slot"/> of an index buffer, widened (unsigned 64-bit beyond long.MaxValue reads as -1).</summary>
    internal static long ReadIndex(ArrowTypeId indexType, ReadOnlySpan<byte> indices, int slot) => indexType switch
    {
        ArrowTypeId.Int8 => (sbyte)indices[slot],
        ArrowTypeId.UInt8 => indices[slot],
        ArrowTypeId.Int16 => BinaryPrimitives.ReadInt16LittleEndian(indices[(2 * slot)..]),
        ArrowTypeId.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(indices[(2 * slot)..]),
        ArrowTypeId.Int32 => BinaryPrimitives.ReadInt32LittleEndian(indices[(4 * slot)..]),
        ArrowTypeId.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(indices[(4 * slot)..]),
        ArrowTypeId.Int64 => BinaryPrimitives.ReadInt64LittleEndian(indices[(8 * slot)..]),
        ArrowTypeId.UInt64 => BinaryPrimitives.ReadUInt64LittleEndian(indices[(8 * slot)..]) is var u && u <= long.MaxValue ? (long)u : -1,
        _ => -1,
    };
}
