using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace Attribution.Attribution.Spans;

/// <summary>A serialized span index that cannot be read: what is wrong and at which byte.</summary>
public sealed class SpanIndexFormatException(string message) : Exception(message);

/// <summary>
/// Binary form of a <see cref="SpanIndex"/>, little-endian: magic <c>SPANIDX1</c>, int32 document count d, int32 text
/// length n (tokens plus one separator per document), int64 ids[d], int32 sources[d], int32 starts[d + 1], int32
/// text[n], int32 suffixes[n]. Reading checks every count against the bytes present and every invariant the queries
/// rely on (separators exactly at document ends, distinct ids, the suffix array a permutation in suffix order) and
/// throws <see cref="SpanIndexFormatException"/> otherwise.
/// </summary>
public static class SpanIndexFormat
{
    private const int HeaderBytes = 16;
    private static ReadOnlySpan<byte> Magic => "SPANIDX1"u8;

    /// <summary>Bytes of the serialized index of <paramref name="documents"/> documents holding <paramref name="tokens"/> tokens in all.</summary>
    public static long SizeOf(long documents, long tokens) => HeaderBytes + (8L * documents) + (4L * (documents + documents + 1 + (2 * (tokens + documents))));

    /// <summary>The bytes of <paramref name="index"/>.</summary>
    public static byte[] Write(SpanIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        var (text, suffixes, starts, ids, sources) = index.Arrays;
        long size = HeaderBytes + (8L * ids.Length) + (4L * (sources.Length + starts.Length + text.Length + suffixes.Length));
        if (size > Array.MaxLength)
        {
            throw new InvalidOperationException($"The index needs {size} bytes, more than one array holds; split the corpus.");
        }

        var bytes = new byte[size];
        Magic.CopyTo(bytes);
        var w = bytes.AsSpan(8);
        BinaryPrimitives.WriteInt32LittleEndian(w, ids.Length);
        BinaryPrimitives.WriteInt32LittleEndian(w[4..], text.Length);
        int p = HeaderBytes;
        foreach (long id in ids)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(p), id);
            p += 8;
        }

        foreach (var array in new[] { sources, starts, text, suffixes })
        {
            foreach (int v in array)
            {
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(p), v);
                p += 4;
            }
        }

        return bytes;
    }

    /// <summary>Reads an index written by <see cref="Write"/>.</summary>
    /// <exception cref="SpanIndexFormatException">The bytes are not a valid index.</exception>
    public static SpanIndex Read(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < HeaderBytes || !bytes[..8].SequenceEqual(Magic))
        {
            Fail($"the {bytes.Length} bytes do not start with the 16-byte header 'SPANIDX1' + counts; not a span index.");
        }

        int d = BinaryPrimitives.ReadInt32LittleEndian(bytes[8..]);
        int n = BinaryPrimitives.ReadInt32LittleEndian(bytes[12..]);
        if (d < 0 || n < d)
        {
            Fail($"header at byte 8: document count {d} and text length {n} (need 0 <= documents <= text length).");
        }

        long expected = HeaderBytes + (8L * d) + (4L * (d + d + 1 + n + n));
        if (bytes.Length != expected)
        {
            Fail($"{d} documents and {n} text symbols need {expected} bytes; got {bytes.Length} (truncated or trailing bytes).");
        }

        int p = HeaderBytes;
        var ids = new long[d];
        var seen = new HashSet<long>();
        for (int i = 0; i < d; i++, p += 8)
        {
            ids[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes[p..]);
            if (!seen.Add(ids[i]))
            {
                Fail($"byte {p}: document {i} repeats the id {ids[i]}.");
            }
        }

        var sources = ReadInts(bytes, ref p, d);
        int sourcesAt = HeaderBytes + (8 * d);
        for (int i = 0; i < d; i++)
        {
            if (sources[i] < 0)
            {
                Fail($"byte {sourcesAt + (4 * i)}: document {i} has the negative source id {sources[i]}.");
            }
        }

        int startsAt = p;
        var starts = ReadInts(bytes, ref p, d + 1);
        int textAt = p;
        var text = ReadInts(bytes, ref p, n);
        if (starts[0] != 0 || starts[d] != n)
        {
            Fail($"byte {startsAt}: document offsets must run from 0 to the text length {n}; got {starts[0]} .. {starts[d]}.");
        }

        for (int i = 0; i < d; i++)
        {
            if (starts[i + 1] <= starts[i])
            {
                Fail($"byte {startsAt + (4 * (i + 1))}: document {i + 1} starts at {starts[i + 1]}, not after document {i} ({starts[i]}).");
            }

            for (int j = starts[i]; j < starts[i + 1]; j++)
            {
                bool end = j == starts[i + 1] - 1;
                if (end ? text[j] != SpanIndex.Separator : text[j] < 0)
                {
                    Fail($"byte {textAt + (4 * j)}: text symbol {j} is {text[j]}; document {i} must hold non-negative tokens and end with the separator {SpanIndex.Separator}.");
                }
            }
        }

        int suffixesAt = p;
        var suffixes = ReadInts(bytes, ref p, n);
        CheckSuffixArray(text, suffixes, suffixesAt);
        return SpanIndex.FromArrays(text, suffixes, starts, ids, sources);
    }

    private static int[] ReadInts(ReadOnlySpan<byte> bytes, ref int p, int count)
    {
        var a = new int[count];
        for (int i = 0; i < count; i++, p += 4)
        {
            a[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[p..]);
        }

        return a;
    }

    // A permutation whose neighbours are in strictly increasing suffix order is the suffix array. Comparing neighbours
    // costs the sum of their common prefixes, quadratic on very repetitive text: past a budget, rebuild and compare.
    private static void CheckSuffixArray(int[] text, int[] suffixes, int at)
    {
        int n = text.Length;
        var present = new bool[n];
        for (int i = 0; i < n; i++)
        {
            int s = suffixes[i];
            if ((uint)s >= (uint)n || present[s])
            {
                Fail($"byte {at + (4 * i)}: suffix entry {i} is {s}, out of range or repeated; the suffix array must be a permutation of 0..{n - 1}.");
            }

            present[s] = true;
        }

        long budget = 64L * n;
        for (int i = 1; i < n; i++)
        {
            var a = text.AsSpan(suffixes[i - 1]);
            var b = text.AsSpan(suffixes[i]);
            int common = a.CommonPrefixLength(b);
            budget -= common + 1;
            if (budget < 0)
            {
                if (!SuffixArray.Build(text).AsSpan().SequenceEqual(suffixes))
                {
                    Fail($"byte {at}: the suffix array is not in suffix order.");
                }

                return;
            }

            if (common < a.Length && (common == b.Length || a[common] > b[common]))
            {
                Fail($"byte {at + (4 * i)}: suffix entries {i - 1} and {i} are out of suffix order.");
            }
        }
    }

    [DoesNotReturn]
    private static void Fail(string message) => throw new SpanIndexFormatException("Span index: " + message);
}
