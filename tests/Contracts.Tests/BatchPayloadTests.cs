namespace Attribution.Contracts.Tests;

/// <summary>The training batch payload: inputs and labels round-trip bit for bit; malformed bytes say what is wrong.</summary>
public sealed class BatchPayloadTests
{
    [Fact]
    public void Inputs_and_labels_round_trip_exactly()
    {
        float[] x = [0.5f, -1.25f, float.Epsilon, 3e7f, -0f, 1f];
        int[] y = [7, -2];
        var bytes = BatchPayload.Encode(x, y, 3);
        Assert.Equal(4 + (2 * (4 + 12)), bytes.Length);
        var (inputs, labels, features) = BatchPayload.Decode(bytes, 2);
        Assert.Equal(3, features);
        Assert.Equal(y, labels);
        Assert.Equal(x.Select(BitConverter.SingleToInt32Bits), inputs.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void The_layout_is_little_endian_count_then_label_and_features_per_example()
    {
        var bytes = BatchPayload.Encode([1f], [258], 1);
        Assert.Equal(new byte[] { 1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0x80, 0x3f }, bytes);
    }

    [Fact]
    public void Truncated_or_mis_sized_payloads_are_refused_with_the_sizes()
    {
        var bytes = BatchPayload.Encode([1f, 2f], [0, 1], 1);
        Assert.Contains("at least the 4-byte feature count", Assert.Throws<InvalidDataException>(() => BatchPayload.Decode(bytes.AsSpan(0, 3), 2)).Message, StringComparison.Ordinal);
        var e = Assert.Throws<InvalidDataException>(() => BatchPayload.Decode(bytes.AsSpan(0, bytes.Length - 1), 2));
        Assert.Contains($"need {bytes.Length} bytes, got {bytes.Length - 1}", e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => BatchPayload.Decode(bytes, 3));
        Assert.Throws<InvalidDataException>(() => BatchPayload.Decode([0, 0, 0, 0], 0));
        Assert.Throws<ArgumentException>(() => BatchPayload.Encode([1f, 2f, 3f], [0, 1], 1));
    }
}
