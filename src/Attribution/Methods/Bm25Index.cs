namespace Attribution.Attribution.Methods;

/// <summary>
/// Okapi BM25 over documents of token ids, with token n-grams as terms (n = 1: single tokens; for a byte-level
/// tokenizer a few bytes make a useful term). For a query q and a document d:
/// <c>BM25(q, d) = Σ_{t ∈ q} qtf(t) · idf(t) · tf(t, d)·(k1 + 1) / (tf(t, d) + k1·(1 − b + b·|d| / avgdl))</c>, summed over
/// q's distinct terms, where qtf is the term's count in the query (Robertson's k3 → ∞), |d| is d's number of n-grams,
/// avgdl their mean over the documents, and <c>idf(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))</c> (Lucene's form,
/// never negative). Pure and immutable after construction; <see cref="Score"/> is thread-safe.
/// </summary>
public sealed class Bm25Index
{
    private readonly Dictionary<ulong, Posting[]> _postings;
    private readonly float[] _lengthNorm;

    /// <summary>Indexes <paramref name="documents"/> (token ids each).</summary>
    public Bm25Index(IReadOnlyList<int[]> documents, int ngram = 1, float k1 = 1.2f, float b = 0.75f)
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentOutOfRangeException.ThrowIfLessThan(ngram, 1);
        if (!(k1 >= 0) || !(b >= 0 && b <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(k1), $"BM25 needs k1 >= 0 and 0 <= b <= 1 (got k1 = {k1}, b = {b}).");
        }

        NGram = ngram;
        K1 = k1;
        B = b;
        Count = documents.Count;
        var lists = new Dictionary<ulong, List<Posting>>();
        var lengths = new int[documents.Count];
        for (int d = 0; d < documents.Count; d++)
        {
            var terms = Terms(documents[d] ?? throw new ArgumentException($"document {d} is null.", nameof(documents)));
            foreach (var (term, tf) in terms)
            {
                if (!lists.TryGetValue(term, out var list))
                {
                    lists[term] = list = [];
                }

                list.Add(new Posting(d, tf));
                lengths[d] += tf;
            }
        }

        double avg = documents.Count == 0 ? 0 : lengths.Average();
        AverageLength = avg;
        _lengthNorm = new float[documents.Count];
        for (int d = 0; d < lengths.Length; d++)
        {
            _lengthNorm[d] = (float)(k1 * (1 - b + (avg > 0 ? b * lengths[d] / avg : 0)));
        }

        _postings = lists.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
        StateBytes = (_postings.Count * 48L) + (_postings.Values.Sum(p => (long)p.Length) * 8) + (_lengthNorm.Length * 4L);
    }

    /// <summary>Terms are token n-grams of this length.</summary>
    public int NGram { get; }

    /// <summary>Term-frequency saturation k1.</summary>
    public float K1 { get; }

    /// <summary>Length normalisation b.</summary>
    public float B { get; }

    /// <summary>Number of documents N.</summary>
    public int Count { get; }

    /// <summary>Mean number of n-grams per document (avgdl).</summary>
    public double AverageLength { get; }

    /// <summary>Approximate bytes held by the index.</summary>
    public long StateBytes { get; }

    /// <summary>Inverse document frequency of a term held by <paramref name="documentFrequency"/> documents.</summary>
    public double Idf(int documentFrequency) => Math.Log(1 + ((Count - documentFrequency + 0.5) / (documentFrequency + 0.5)));

    /// <summary>Writes BM25(<paramref name="query"/>, d) for every document d into <paramref name="scores"/> [N].</summary>
    public void Score(ReadOnlySpan<int> query, Span<float> scores)
    {
        if (scores.Length != Count)
        {
            throw new ArgumentException($"scores hold {scores.Length} values for {Count} documents.", nameof(scores));
        }

        scores.Clear();
        var acc = new double[Count];
        foreach (var (term, qtf) in Terms(query))
        {
            if (!_postings.TryGetValue(term, out var postings))
            {
                continue;
            }

            double weight = qtf * Idf(postings.Length);
            foreach (var p in postings)
            {
                acc[p.Document] += weight * p.Frequency * (K1 + 1) / (p.Frequency + _lengthNorm[p.Document]);
            }
        }

        for (int d = 0; d < Count; d++)
        {
            scores[d] = (float)acc[d];
        }
    }

    /// <summary>The distinct n-grams of <paramref name="tokens"/> with their counts (FNV-1a-64 of the ids; none when shorter than n).</summary>
    public Dictionary<ulong, int> Terms(ReadOnlySpan<int> tokens)
    {
        var counts = new Dictionary<ulong, int>();
        for (int s = 0; s + NGram <= tokens.Length; s++)
        {
            ulong h = 14695981039346656037UL;
            for (int k = 0; k < NGram; k++)
            {
                uint v = (uint)tokens[s + k];
                for (int byteIndex = 0; byteIndex < 4; byteIndex++)
                {
                    h = (h ^ ((v >> (8 * byteIndex)) & 0xFF)) * 1099511628211UL;
                }
            }

            counts[h] = counts.TryGetValue(h, out int c) ? c + 1 : 1;
        }

        return counts;
    }

    private readonly record struct Posting(int Document, int Frequency);
}
