using System.Text;

namespace Attribution.Attribution.Spans;

/// <summary>
/// The words a text is compared by when its layout should not matter: lower case, split at every character that is not
/// a letter or digit (so whitespace, punctuation, line breaks and markup vanish), and without numbers and one-character
/// words (item numbering, "Q:"/"A:" template markers, the article "a"). A reformatted copy of a text (another template,
/// numbering, capitals, line wrapping) has the same words as the original.
/// </summary>
public static class TextNormalizer
{
    /// <summary>The normalised words of <paramref name="text"/>, in order.</summary>
    public static List<string> Words(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var words = new List<string>();
        var word = new StringBuilder();
        bool letter = false;
        foreach (char c in text)
        {
            if (char.IsLetterOrDigit(c))
            {
                word.Append(char.ToLowerInvariant(c));
                letter |= char.IsLetter(c);
                continue;
            }

            Flush();
        }

        Flush();
        return words;

        void Flush()
        {
            if (word.Length >= 2 && letter)
            {
                words.Add(word.ToString());
            }

            word.Clear();
            letter = false;
        }
    }
}

/// <summary>
/// What a query shares with the training corpus once layout is ignored (<see cref="TextNormalizer"/>): its longest run
/// of normalised words found in one training document (a reformatted leak matches whole), and its near-duplicate
/// overlap: the largest share of the query's distinct words, weighted by rarity (inverse document frequency), that one
/// training document contains (robust to reordering and to substituted common words: a paraphrase keeps its rare words).
/// </summary>
/// <param name="Words">Normalised words in the query.</param>
/// <param name="SpanWords">Length in words of the longest shared run (0 when none reached the minimum).</param>
/// <param name="SpanCount">Occurrences of that run in the corpus (0 when there is none).</param>
/// <param name="Overlap">Rarity-weighted share of the query's distinct words held by the best document, in [0, 1].</param>
/// <param name="OverlapDocument">The best document of <paramref name="Overlap"/> (null when no document shares a word).</param>
/// <param name="Documents">Documents holding the longest run (at most the query's cap), then the overlap's document when it is not among them.</param>
public sealed record TextMatch(int Words, int SpanWords, int SpanCount, double Overlap, SpanDocument? OverlapDocument, IReadOnlyList<SpanDocument> Documents)
{
    /// <summary>Nothing shared (or no words in the query).</summary>
    public static TextMatch None { get; } = new(0, 0, 0, 0, null, []);

    /// <summary>Share of the query's normalised words the longest run covers, in [0, 1].</summary>
    public double Coverage => Words > 0 ? Math.Min(1.0, (double)SpanWords / Words) : 0;
}

/// <summary>
/// Index of the training documents' normalised words (<see cref="TextNormalizer"/>): an exact-span index over word ids
/// (<see cref="SpanIndex"/>, so runs of words are found as spans are) and an inverted index (word → documents holding
/// it) with document frequencies for the rarity-weighted overlap. Pure compute; immutable and safe to query from many
/// threads.
/// </summary>
public sealed class NormalizedTextIndex
{
    private readonly Dictionary<string, int> _vocabulary;
    private readonly SpanIndex _words;
    private readonly int[] _postingStarts; // documents of word w: _postings[_postingStarts[w].._postingStarts[w + 1]]
    private readonly int[] _postings;
    private readonly long[] _ids;
    private readonly int[] _sources;

    private NormalizedTextIndex(Dictionary<string, int> vocabulary, SpanIndex words, int[] postingStarts, int[] postings, long[] ids, int[] sources)
    {
        _vocabulary = vocabulary;
        _words = words;
        _postingStarts = postingStarts;
        _postings = postings;
        _ids = ids;
        _sources = sources;
    }

    /// <summary>Documents indexed.</summary>
    public int DocumentCount => _ids.Length;

    /// <summary>Distinct normalised words in the corpus.</summary>
    public int VocabularySize => _vocabulary.Count;

    /// <summary>Normalised words indexed.</summary>
    public long WordCount => _words.TokenCount;

    /// <summary>Builds the index of <paramref name="texts"/>.</summary>
    /// <param name="texts">Each document's text.</param>
    /// <param name="ids">Stable id of each document (distinct).</param>
    /// <param name="sourceIds">Source of each document (non-negative).</param>
    /// <exception cref="ArgumentException">Mismatched counts, a repeated id or a negative source.</exception>
    public static NormalizedTextIndex Build(IReadOnlyList<string> texts, IReadOnlyList<long> ids, IReadOnlyList<int> sourceIds)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(sourceIds);
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var documents = new int[texts.Count][];
        var frequency = new List<int>();
        var seen = new HashSet<int>();
        for (int d = 0; d < texts.Count; d++)
        {
            ArgumentNullException.ThrowIfNull(texts[d], $"texts[{d}]");
            var words = TextNormalizer.Words(texts[d]);
            var doc = new int[words.Count];
            seen.Clear();
            for (int i = 0; i < words.Count; i++)
            {
                if (!vocabulary.TryGetValue(words[i], out int id))
                {
                    id = vocabulary.Count;
                    vocabulary.Add(words[i], id);
                    frequency.Add(0);
                }

                doc[i] = id;
                if (seen.Add(id))
                {
                    frequency[id]++;
                }
            }

            documents[d] = doc;
        }

        var index = SpanIndex.Build(documents, ids, sourceIds); // validates counts, ids and sources
        var starts = new int[vocabulary.Count + 1];
        for (int w = 0; w < frequency.Count; w++)
        {
            starts[w + 1] = starts[w] + frequency[w];
        }

        var postings = new int[starts[^1]];
        var fill = starts[..^1];
        for (int d = 0; d < documents.Length; d++)
        {
            seen.Clear();
            foreach (int w in documents[d])
            {
                if (seen.Add(w))
                {
                    postings[fill[w]++] = d;
                }
            }
        }

        return new NormalizedTextIndex(vocabulary, index, starts, postings, [.. ids], [.. sourceIds]);
    }

    /// <summary>
    /// What <paramref name="query"/> shares with the corpus: its longest run of at least <paramref name="minWords"/>
    /// normalised words held by a training document, and its rarity-weighted overlap with the best document. A word's
    /// weight is ln((N + 1) / (df + 1)) for N documents, df of them holding it (a word in every document weighs 0, a word
    /// in none the most).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minWords"/> or <paramref name="maxDocuments"/> below 1.</exception>
    public TextMatch Find(string query, int minWords, int maxDocuments)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(minWords, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDocuments, 1);
        var words = TextNormalizer.Words(query);
        if (words.Count == 0 || _ids.Length == 0)
        {
            return TextMatch.None with { Words = words.Count };
        }

        // A word the corpus lacks gets an id no document holds, so no run crosses it.
        int unknown = _vocabulary.Count;
        var ids = words.Select(w => _vocabulary.GetValueOrDefault(w, unknown)).ToArray();
        SpanMatch? best = null;
        foreach (var m in _words.Find(ids, new SpanQueryOptions(minWords, maxDocuments)))
        {
            if (best is null || m.Length > best.Length || (m.Length == best.Length && m.Count < best.Count))
            {
                best = m;
            }
        }

        var (overlap, document) = Overlap(words, ids);
        var documents = new List<SpanDocument>(best?.Documents ?? []);
        if (document is { } o && !documents.Any(d => d.Index == o.Index))
        {
            documents.Add(o);
        }

        return new TextMatch(words.Count, best?.Length ?? 0, best?.Count ?? 0, overlap, document, documents);
    }

    // The best document's rarity-weighted share of the query's distinct words (a tie goes to the earlier document).
    private (double Overlap, SpanDocument? Document) Overlap(List<string> words, int[] ids)
    {
        int n = _ids.Length;
        var weights = new Dictionary<string, (int Id, double Weight)>(StringComparer.Ordinal);
        for (int i = 0; i < words.Count; i++)
        {
            if (!weights.ContainsKey(words[i]))
            {
                int df = ids[i] < _vocabulary.Count ? _postingStarts[ids[i] + 1] - _postingStarts[ids[i]] : 0;
                weights[words[i]] = (ids[i], Math.Log((n + 1.0) / (df + 1.0)));
            }
        }

        double total = weights.Values.Sum(v => v.Weight);
        if (!(total > 0))
        {
            return (0, null);
        }

        var held = new double[n];
        foreach (var (id, weight) in weights.Values)
        {
            if (id < _vocabulary.Count && weight > 0)
            {
                for (int p = _postingStarts[id]; p < _postingStarts[id + 1]; p++)
                {
                    held[_postings[p]] += weight;
                }
            }
        }

        int top = 0;
        for (int d = 1; d < n; d++)
        {
            if (held[d] > held[top])
            {
                top = d;
            }
        }

        return held[top] > 0 ? (Math.Min(1.0, held[top] / total), new SpanDocument(top, _ids[top], _sources[top])) : (0, null);
    }
}
