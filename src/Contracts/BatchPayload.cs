using System.Buffers.Binary;

namespace Attribution.Contracts;

/// <summary>
/// The <c>TrainingBatch.Payload</c> of a classifier run: the batch's inputs and labels (Ingest attaches them; the
/// Simulator reads no data set of its own). Little-endian: <c>i32 feature count d | per example, in ExampleIds order: i32 label | d × f32</c>.
/// </summary>
public static class BatchPayload
{
    /// <summary>Largest feature count accepted.</summary>
    public const int MaxFeatures = 1 << 22;

    /// <summary>Encodes inputs [n, d] and labels [n].</summary>
    public static byte[] Encode(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int features)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(features, 1);
        if (inputs.Length != (long)labels.Length * features)
        {
            throw new ArgumentException($"{inputs.Length} input values for {labels.Length} examples of width {features}.", nameof(inputs));
        }

        var bytes = new byte[4 + (long)labels.Length * (4 + 4 * features)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, features);
        int at = 4;
        for (int i = 0; i < labels.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(at), labels[i]);
            at += 4;
            for (int j = 0; j < features; j++, at += 4)
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(at), inputs[i * features + j]);
            }
        }

        return bytes;
    }

    /// <summary>Decodes a payload of <paramref name="examples"/> rows; throws <see cref="InvalidDataException"/> saying what is wrong.</summary>
    public static (float[] Inputs, int[] Labels, int Features) Decode(ReadOnlySpan<byte> bytes, int examples)
    {
        if (bytes.Length < 4)
        {
            throw new InvalidDataException($"batch payload has {bytes.Length} bytes; it needs at least the 4-byte feature count.");
        }

        int d = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        if (d is < 1 or > MaxFeatures || bytes.Length != 4 + (long)examples * (4 + 4L * d))
        {
            throw new InvalidDataException($"batch payload: feature count {d} (1..{MaxFeatures}) and {examples} examples need {4 + (long)examples * (4 + 4L * d)} bytes, got {bytes.Length}.");
        }

        var x = new float[(long)examples * d];
        var y = new int[examples];
        int at = 4;
        for (int i = 0; i < examples; i++)
        {
            y[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]);
            at += 4;
            for (int j = 0; j < d; j++, at += 4)
            {
                x[i * d + j] = BinaryPrimitives.ReadSingleLittleEndian(bytes[at..]);
            }
        }

        return (x, y, d);
    }
}
