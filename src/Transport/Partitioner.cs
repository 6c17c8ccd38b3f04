namespace Attribution.Transport;

/// <summary>
/// Kafka's default key partitioner (Java client, and librdkafka's <c>murmur2_random</c>): positive murmur2 of the key
/// modulo the partition count. The embedded log and the Kafka producer both use it, so a key lands in the same
/// partition whichever log carries it.
/// </summary>
public static class Partitioner
{
    /// <summary>Partition for a non-empty <paramref name="key"/> among <paramref name="partitionCount"/> partitions.</summary>
    public static int ForKey(ReadOnlySpan<byte> key, int partitionCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitionCount, 1);
        return (Murmur2(key) & 0x7fffffff) % partitionCount;
    }

    /// <summary>Kafka's murmur2 (seed 0x9747b28c), bit-for-bit as in <c>org.apache.kafka.common.utils.Utils.murmur2</c>.</summary>
    public static int Murmur2(ReadOnlySpan<byte> data)
    {
        const uint m = 0x5bd1e995;
        const int r = 24;
        var length = data.Length;
        var h = 0x9747b28cu ^ (uint)length;
        var i = 0;
        for (; i + 4 <= length; i += 4)
        {
            var k = (uint)(data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
            k *= m;
            k ^= k >> r;
            k *= m;
            h *= m;
            h ^= k;
        }

        switch (length & 3)
        {
            case 3:
                h ^= (uint)data[i + 2] << 16;
                goto case 2;
            case 2:
                h ^= (uint)data[i + 1] << 8;
                goto case 1;
            case 1:
                h ^= data[i];
                h *= m;
                break;
        }

        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return (int)h;
    }
}
