using System.Buffers.Binary;

namespace Attribution.Arrow;

/// <summary>
/// Checks that buffers are large enough and offsets consistent for an array, so that every
/// accessor on <see cref="ArrowArray"/> stays in bounds. Shared by the reader (hostile input)
/// and <see cref="ArrowArrays.FromBuffers"/> (caller-supplied buffers).
/// </summary>
internal static class ArrayValidation
{
    /// <summary>Returns null when valid, otherwise what is wrong.</summary>
    public static string? Check(ArrowType type, int length, int nullCount, ReadOnlySpan<byte> validity, ReadOnlySpan<byte> offsets, int valuesLength, ArrowArray? child)
    {
        if (length < 0)
        {
            return $"length {length} is negative";
        }
        if (nullCount < 0 || nullCount > length)
        {
            return $"null count {nullCount} is outside [0, {length}]";
        }
        long bitmapBytes = ((long)length + 7) >> 3;
        if (nullCount > 0 && validity.Length < bitmapBytes)
        {
            return $"validity bitmap has {validity.Length} bytes; {length} slots with {nullCount} nulls need {bitmapBytes}";
        }
        switch (type.Kind)
        {
            case ArrowTypeKind.Bool:
                return valuesLength < bitmapBytes ? $"bool values buffer has {valuesLength} bytes; {length} slots need {bitmapBytes}" : null;
            case ArrowTypeKind.Int32 or ArrowTypeKind.Int64 or ArrowTypeKind.Float32 or ArrowTypeKind.Float64 or ArrowTypeKind.Timestamp:
                var need = (long)length * type.FixedWidth;
                return valuesLength < need ? $"{type} values buffer has {valuesLength} bytes; {length} slots need {need}" : null;
            case ArrowTypeKind.Utf8 or ArrowTypeKind.Binary:
                return CheckOffsets(offsets, length, valuesLength, "data bytes");
            case ArrowTypeKind.List:
                if (child is null)
                {
                    return "list has no child array";
                }
                return CheckOffsets(offsets, length, child.Length, "child items");
            case ArrowTypeKind.FixedSizeList:
                if (child is null)
                {
                    return "fixed-size list has no child array";
                }
                var items = (long)length * type.ListSize;
                return child.Length < items ? $"fixed_size_list[{type.ListSize}] of {length} slots needs {items} child items but the child has {child.Length}" : null;
            default:
                return $"unsupported type {type}";
        }
    }

    private static string? CheckOffsets(ReadOnlySpan<byte> offsets, int length, long targetLength, string target)
    {
        if (length == 0 && offsets.Length == 0)
        {
            return null; // older writers omit the single 0 offset of an empty array
        }
        var need = ((long)length + 1) * 4;
        if (offsets.Length < need)
        {
            return $"offsets buffer has {offsets.Length} bytes; {length} slots need {need}";
        }
        var previous = BinaryPrimitives.ReadInt32LittleEndian(offsets);
        if (previous < 0)
        {
            return $"first offset {previous} is negative";
        }
        for (var i = 1; i <= length; i++)
        {
            var next = BinaryPrimitives.ReadInt32LittleEndian(offsets[(i * 4)..]);
            if (next < previous)
            {
                return $"offsets decrease at slot {i - 1} ({previous} then {next})";
            }
            previous = next;
        }
        return previous > targetLength ? $"last offset {previous} exceeds the {targetLength} {target} available" : null;
    }
}
