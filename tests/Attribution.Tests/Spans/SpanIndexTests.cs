using Attribution.Attribution.Spans;
using Attribution.Engine;

namespace Attribution.Tests.Spans;

public sealed class SpanIndexTests
{
    private static readonly SpanQueryOptions All = new(MinLength: 1, MaxDocuments: 1000);

    private static SpanIndex Index(params int[][] docs) =>
        SpanIndex.Build(docs, [.. docs.Select((_, i) => 100L * (i + 1))], [.. docs.Select((_, i) => i % 2)]);

    [Fact]
    public void SuffixArray_EqualsNaiveSortOfSuffixes_ForRandomTextsWithRepeats()
    {
        var rng = new Rng(7);
        for (int n = 0; n <= 200; n += n < 20 ? 1 : 17)
        {
            var text = new int[n];
            for (int i = 0; i < n; i++)
            {
                text[i] = rng.NextInt(-1, 3); // tiny alphabet: long repeats, many doubling rounds
            }

            var expected = Enumerable.Range(0, n).ToArray();
            Array.Sort(expected, (a, b) => text.AsSpan(a).SequenceCompareTo(text.AsSpan(b)));
            Assert.Equal(expected, SuffixArray.Build(text));
        }
    }

    [Fact]
    public void SuffixArray_HandlesSparseAlphabetAndRuns()
    {
        int[] text = [int.MaxValue, 5, int.MaxValue, 5, -1, 0, 0, 0, 0, 0, 0, 0];
        var expected = Enumerable.Range(0, text.Length).ToArray();
        Array.Sort(expected, (a, b) => text.AsSpan(a).SequenceCompareTo(text.AsSpan(b)));
        Assert.Equal(expected, SuffixArray.Build(text));
    }

    [Fact]
    public void Find_ReportsExactMaximalSpans_WithPositionLengthCountAndDocuments()
    {
        var index = Index([1, 2, 3, 4, 5], [3, 4, 5, 6], [9, 1, 2]);
        var m = index.Find([7, 1, 2, 3, 4, 6], All);

        // [1 2 3 4] from query position 1 occurs once (document 0); [2 3 4], [3 4], [4] lie inside it; [6] is new.
        Assert.Equal(2, m.Count);
        Assert.Equal((1, 4, 1), (m[0].QueryStart, m[0].Length, m[0].Count));
        Assert.Equal([new SpanDocument(0, 100, 0)], m[0].Documents);
        Assert.False(m[0].DocumentsTruncated);
        Assert.Equal((5, 1, 1), (m[1].QueryStart, m[1].Length, m[1].Count));
        Assert.Equal([new SpanDocument(1, 200, 1)], m[1].Documents);

        // The minimum length drops the short span.
        var longOnly = index.Find([7, 1, 2, 3, 4, 6], new SpanQueryOptions(MinLength: 2));
        Assert.Equal((1, 4), (longOnly.Single().QueryStart, longOnly.Single().Length));

        // [1 2] occurs in documents 0 and 2.
        var shared = index.Find([1, 2], All).Single();
        Assert.Equal((0, 2, 2), (shared.QueryStart, shared.Length, shared.Count));
        Assert.Equal([0, 2], shared.Documents.Select(d => d.Index));
        Assert.Equal([100L, 300L], shared.Documents.Select(d => d.Id));
    }

    [Fact]
    public void Find_NeverMatchesAcrossADocumentBoundary()
    {
        var index = Index([1, 2], [3, 4]);
        var m = index.Find([1, 2, 3, 4], All);
        Assert.Equal([(0, 2), (2, 2)], m.Select(s => (s.QueryStart, s.Length)));
        Assert.Equal(0, index.Count([2, 3]));
        Assert.Equal(1, index.Count([3, 4]));
    }

    [Fact]
    public void Find_CountsEveryOccurrence_AndCapsTheDocumentsListed()
    {
        var index = Index([5, 5, 5], [5, 8], [5]);
        Assert.Equal(5, index.Count([5]));
        Assert.Equal(2, index.Count([5, 5]));

        var all = index.Find([5], All).Single();
        Assert.Equal(5, all.Count);
        Assert.Equal([0, 1, 2], all.Documents.Select(d => d.Index));
        Assert.False(all.DocumentsTruncated);

        var capped = index.Find([5], new SpanQueryOptions(MinLength: 1, MaxDocuments: 2)).Single();
        Assert.Equal(5, capped.Count);
        Assert.Equal(2, capped.Documents.Count);
        Assert.True(capped.DocumentsTruncated);
        Assert.Subset(new HashSet<int> { 0, 1, 2 }, capped.Documents.Select(d => d.Index).ToHashSet());

        // [5 5] at 0 occurs twice, both in document 0; [5] at 1 lies inside it.
        var pair = index.Find([5, 5], All).Single();
        Assert.Equal((0, 2, 2), (pair.QueryStart, pair.Length, pair.Count));
        Assert.Equal([0], pair.Documents.Select(d => d.Index));
    }

    [Fact]
    public void EmptyQueryCorpusAndDocuments_GiveNoSpans()
    {
        var empty = SpanIndex.Build([], [], []);
        Assert.Empty(empty.Find([1, 2, 3], All));
        Assert.Equal(0, empty.Count([1]));
        Assert.Equal(0, empty.TokenCount);

        var withEmptyDocs = Index([], [1, 2], []);
        Assert.Empty(withEmptyDocs.Find([], All));
        Assert.Equal(2, withEmptyDocs.TokenCount);
        var m = withEmptyDocs.Find([0, 1, 2, 0], All).Single();
        Assert.Equal((1, 2, 1), (m.QueryStart, m.Length, m.Count));
        Assert.Equal([new SpanDocument(1, 200, 1)], m.Documents);
    }

    [Fact]
    public void BadInput_ThrowsAClearError()
    {
        Assert.Contains("negative token id -3 at position 1", Assert.Throws<ArgumentException>(() => Index([1, -3])).Message);
        Assert.Contains("repeats the id 7", Assert.Throws<ArgumentException>(() => SpanIndex.Build([[1], [2]], [7, 7], [0, 0])).Message);
        Assert.Throws<ArgumentException>(() => SpanIndex.Build([[1], [2]], [1], [0, 0]));
        Assert.Throws<ArgumentException>(() => SpanIndex.Build([[1]], [1], [-1]));
        var index = Index([1, 2]);
        Assert.Contains("Query token 1", Assert.Throws<ArgumentException>(() => index.Find([1, -1], All)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => index.Find([1], new SpanQueryOptions(MinLength: 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => index.Find([1], new SpanQueryOptions(MaxDocuments: 0)));
    }

    [Fact]
    public void Find_EqualsBruteForceMatcher_OnRandomCorpora()
    {
        var rng = new Rng(2026);
        for (int trial = 0; trial < 60; trial++)
        {
            int alphabet = 2 + rng.NextInt(4);
            var docs = new int[rng.NextInt(0, 8)][];
            for (int d = 0; d < docs.Length; d++)
            {
                docs[d] = RandomTokens(rng, rng.NextInt(0, 30), alphabet);
            }

            var index = Index(docs);
            for (int q = 0; q < 10; q++)
            {
                var query = RandomTokens(rng, rng.NextInt(0, 25), alphabet + 1);
                int minLength = 1 + rng.NextInt(3), cap = 1 + rng.NextInt(4);
                var expected = BruteForce(docs, query, minLength);
                var actual = index.Find(query, new SpanQueryOptions(minLength, cap));
                Assert.Equal(expected.Count, actual.Count);
                for (int i = 0; i < expected.Count; i++)
                {
                    var (start, length, count, documents) = expected[i];
                    var a = actual[i];
                    Assert.Equal((start, length, count), (a.QueryStart, a.Length, a.Count));
                    Assert.Equal(Math.Min(cap, documents.Count), a.Documents.Count);
                    Assert.Equal(documents.Count > cap, a.DocumentsTruncated);
                    Assert.Subset(documents, a.Documents.Select(x => x.Index).ToHashSet());
                    Assert.All(a.Documents, x => Assert.Equal((100L * (x.Index + 1), x.Index % 2), (x.Id, x.SourceId)));
                    Assert.Equal(count, index.Count(query.AsSpan(start, length)));
                }
            }
        }
    }

    private static int[] RandomTokens(Rng rng, int length, int alphabet)
    {
        var t = new int[length];
        for (int i = 0; i < length; i++)
        {
            t[i] = rng.NextInt(alphabet);
        }

        return t;
    }

    // Longest occurring prefix at every query position by scanning every document; report those not inside the previous.
    private static List<(int Start, int Length, int Count, HashSet<int> Documents)> BruteForce(int[][] docs, int[] query, int minLength)
    {
        var result = new List<(int, int, int, HashSet<int>)>();
        int previous = 0;
        for (int s = 0; s < query.Length; s++)
        {
            int best = 0;
            for (int l = 1; s + l <= query.Length; l++)
            {
                if (Occurrences(docs, query.AsSpan(s, l)).Count > 0)
                {
                    best = l;
                }
            }

            if (best >= minLength && best >= previous)
            {
                var occ = Occurrences(docs, query.AsSpan(s, best));
                result.Add((s, best, occ.Count, occ.ToHashSet()));
            }

            previous = best;
        }

        return result;
    }

    private static List<int> Occurrences(int[][] docs, ReadOnlySpan<int> span)
    {
        var hits = new List<int>();
        for (int d = 0; d < docs.Length; d++)
        {
            for (int i = 0; i + span.Length <= docs[d].Length; i++)
            {
                if (docs[d].AsSpan(i, span.Length).SequenceEqual(span))
                {
                    hits.Add(d);
                }
            }
        }

        return hits;
    }
}
