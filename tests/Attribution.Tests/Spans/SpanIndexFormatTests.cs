using System.Buffers.Binary;
using Attribution.Attribution.Spans;
using Attribution.Engine;

namespace Attribution.Tests.Spans;

public sealed class SpanIndexFormatTests
{
    private static readonly SpanQueryOptions All = new(MinLength: 1, MaxDocuments: 1000);

    // Layout of the index below: header 16, ids 4x8, sources 4x4, starts 5x4, text 13x4 (9 tokens + 4 separators), suffixes 13x4.
    private static SpanIndex Small() => SpanIndex.Build([[1, 2, 3], [2, 3, 4, 5], [], [7, 2]], [11, 22, 33, 44], [0, 1, 1, 2]);

    private const int Docs = 4, TextLength = 13;
    private const int SourcesAt = 16 + (8 * Docs), StartsAt = SourcesAt + (4 * Docs), TextAt = StartsAt + (4 * (Docs + 1)), SuffixesAt = TextAt + (4 * TextLength);

    [Fact]
    public void RoundTrip_GivesTheSameAnswers()
    {
        var rng = new Rng(5);
        var docs = new int[40][];
        for (int d = 0; d < docs.Length; d++)
        {
            docs[d] = [.. Enumerable.Range(0, rng.NextInt(0, 50)).Select(_ => rng.NextInt(6))];
        }

        var index = SpanIndex.Build(docs, [.. docs.Select((_, i) => (long)i * 1_000_003)], [.. docs.Select((_, i) => i % 3)]);
        var bytes = SpanIndexFormat.Write(index);
        var read = SpanIndexFormat.Read(bytes);
        Assert.Equal(bytes, SpanIndexFormat.Write(read));
        Assert.Equal((index.DocumentCount, index.TokenCount, index.MemoryBytes), (read.DocumentCount, read.TokenCount, read.MemoryBytes));
        for (int q = 0; q < 50; q++)
        {
            int[] query = [.. Enumerable.Range(0, rng.NextInt(0, 30)).Select(_ => rng.NextInt(7))];
            var a = index.Find(query, All);
            var b = read.Find(query, All);
            Assert.Equal(a.Count, b.Count);
            for (int i = 0; i < a.Count; i++)
            {
                Assert.Equal((a[i].QueryStart, a[i].Length, a[i].Count, a[i].DocumentsTruncated), (b[i].QueryStart, b[i].Length, b[i].Count, b[i].DocumentsTruncated));
                Assert.Equal(a[i].Documents, b[i].Documents);
            }
        }

        Assert.Empty(SpanIndexFormat.Read(SpanIndexFormat.Write(SpanIndex.Build([], [], []))).Find([1], All));
    }

    [Fact]
    public void TruncatedOrExtendedBytes_AreRejectedWithTheSizeTheyNeed()
    {
        var bytes = SpanIndexFormat.Write(Small());
        Assert.Equal(SuffixesAt + (4 * TextLength), bytes.Length);
        for (int cut = 0; cut < bytes.Length; cut++)
        {
            Assert.Throws<SpanIndexFormatException>(() => SpanIndexFormat.Read(bytes.AsSpan(0, cut)));
        }

        var e = Assert.Throws<SpanIndexFormatException>(() => SpanIndexFormat.Read([.. bytes, 0]));
        Assert.Contains($"need {bytes.Length} bytes; got {bytes.Length + 1}", e.Message);
    }

    [Theory]
    [InlineData("magic", 0, 0x58, "not a span index")]
    [InlineData("document count", 8, 5, "need")]
    [InlineData("negative text length", 12, -1, "text length -1")]
    [InlineData("repeated id", 16 + 8, 11, "repeats the id 11")]
    [InlineData("negative source", SourcesAt + 4, -2, "negative source id -2")]
    [InlineData("offsets", StartsAt + 4, 0, "document 1 starts at 0")]
    [InlineData("first offset", StartsAt, 1, "run from 0")]
    [InlineData("separator overwritten", TextAt + (4 * 3), 9, "end with the separator")]
    [InlineData("separator inside a document", TextAt + (4 * 1), -1, "text symbol 1 is -1")]
    [InlineData("suffix out of range", SuffixesAt, TextLength, "out of range or repeated")]
    public void CorruptFields_AreRejectedSayingWhatAndWhere(string what, int offset, int value, string message)
    {
        var bytes = SpanIndexFormat.Write(Small());
        if (offset == 0)
        {
            bytes[0] = (byte)value;
        }
        else if (offset == 16 + 8)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(offset), value);
        }
        else
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(offset), value);
        }

        var e = Assert.Throws<SpanIndexFormatException>(() => SpanIndexFormat.Read(bytes));
        Assert.True(e.Message.Contains(message, StringComparison.Ordinal), $"{what}: {e.Message}");
    }

    [Fact]
    public void SuffixArrayOutOfOrderOrNotAPermutation_IsRejected()
    {
        var bytes = SpanIndexFormat.Write(Small());
        var swapped = (byte[])bytes.Clone();
        bytes.AsSpan(SuffixesAt + 20, 4).CopyTo(swapped.AsSpan(SuffixesAt + 24));
        bytes.AsSpan(SuffixesAt + 24, 4).CopyTo(swapped.AsSpan(SuffixesAt + 20));
        Assert.Contains("out of suffix order", Assert.Throws<SpanIndexFormatException>(() => SpanIndexFormat.Read(swapped)).Message);

        var repeated = (byte[])bytes.Clone();
        bytes.AsSpan(SuffixesAt, 4).CopyTo(repeated.AsSpan(SuffixesAt + 4));
        Assert.Contains("repeated", Assert.Throws<SpanIndexFormatException>(() => SpanIndexFormat.Read(repeated)).Message);
    }

    [Fact]
    public void RepetitiveText_PastTheCompareBudget_IsStillVerified()
    {
        // One long run: neighbouring suffixes share almost everything, so the check falls back to rebuilding.
        var index = SpanIndex.Build([[.. Enumerable.Repeat(4, 300)]], [1], [0]);
        var bytes = SpanIndexFormat.Write(index);
        Assert.Equal(300, SpanIndexFormat.Read(bytes).Count([4]));
        // Swap suffix entries 250 and 251: a disorder past the point where neighbour comparison gives up.
        const int suffixesAt = 16 + 8 + 4 + 8 + (4 * 301);
        var e250 = bytes.AsSpan(suffixesAt + (4 * 250), 4).ToArray();
        bytes.AsSpan(suffixesAt + (4 * 251), 4).CopyTo(bytes.AsSpan(suffixesAt + (4 * 250)));
        e250.CopyTo(bytes.AsSpan(suffixesAt + (4 * 251)));
        Assert.Throws<SpanIndexFormatException>(() => SpanIndexFormat.Read(bytes));
    }

    [Fact]
    public void RandomByteFlips_NeverThrowAnythingButTheFormatException()
    {
        var good = SpanIndexFormat.Write(Small());
        var rng = new Rng(13);
        for (int trial = 0; trial < 3000; trial++)
        {
            var bytes = (byte[])good.Clone();
            for (int f = 1 + rng.NextInt(3); f > 0; f--)
            {
                bytes[rng.NextInt(bytes.Length)] ^= (byte)(1 + rng.NextInt(255));
            }

            try
            {
                var index = SpanIndexFormat.Read(bytes);
                index.Find([2, 3, 4], All); // a flip that keeps every invariant (e.g. another token id) must still query
            }
            catch (SpanIndexFormatException)
            {
            }
        }
    }
}
