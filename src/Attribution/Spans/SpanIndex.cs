namespace Attribution.Attribution.Spans;

/// <summary>A training document that contains a span.</summary>
/// <param name="Index">Position of the document in the list the index was built from.</param>
/// <param name="Id">The caller's stable document id.</param>
/// <param name="SourceId">The caller's source id.</param>
public sealed record SpanDocument(int Index, long Id, int SourceId);

/// <summary>
/// A maximal exact match between a query and the training corpus: it occurs in at least one training document, and
/// extending it by one query token on either side gives a sequence that occurs in none.
/// </summary>
/// <param name="QueryStart">Position of the span's first token in the query.</param>
/// <param name="Length">Length in tokens.</param>
/// <param name="Count">Occurrences of the span in the corpus (all documents together); small = rare.</param>
/// <param name="Documents">Documents holding it, ascending by index, at most the query's document cap.</param>
/// <param name="DocumentsTruncated">More documents hold the span than <paramref name="Documents"/> lists.</param>
public sealed record SpanMatch(int QueryStart, int Length, int Count, IReadOnlyList<SpanDocument> Documents, bool DocumentsTruncated);

/// <summary>What a span query reports.</summary>
/// <param name="MinLength">Shortest span reported, in tokens (at least 1).</param>
/// <param name="MaxDocuments">Most documents listed per span (at least 1).</param>
public sealed record SpanQueryOptions(int MinLength = 8, int MaxDocuments = 16)
{
    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a value is out of range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MinLength, 1, nameof(MinLength));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDocuments, 1, nameof(MaxDocuments));
    }
}

/// <summary>
/// Exact-span index over token-id training documents: the documents' tokens concatenated, each document followed by a
/// separator that no query token equals (so no match crosses a document boundary), and the suffix array of that text.
/// A query finds, for every query position, the longest prefix of the rest of the query that occurs in the corpus, by
/// narrowing a suffix-array interval one token at a time, and reports the maximal ones. Pure compute; document and
/// source ids come from the caller. Immutable and safe to query from many threads.
/// </summary>
public sealed class SpanIndex
{
    /// <summary>The symbol after each document in the indexed text.</summary>
    internal const int Separator = -1;

    private readonly int[] _text;
    private readonly int[] _suffixes;
    private readonly int[] _starts; // offset of each document in _text, plus _text.Length at the end
    private readonly long[] _ids;
    private readonly int[] _sources;

    private SpanIndex(int[] text, int[] suffixes, int[] starts, long[] ids, int[] sources)
    {
        _text = text;
        _suffixes = suffixes;
        _starts = starts;
        _ids = ids;
        _sources = sources;
    }

    internal (int[] Text, int[] Suffixes, int[] Starts, long[] Ids, int[] Sources) Arrays => (_text, _suffixes, _starts, _ids, _sources);

    /// <summary>Documents indexed.</summary>
    public int DocumentCount => _ids.Length;

    /// <summary>Tokens indexed (separators not counted).</summary>
    public long TokenCount => _text.Length - _ids.Length;

    /// <summary>Bytes held by the index's arrays.</summary>
    public long MemoryBytes => (4L * (_text.Length + _suffixes.Length + _starts.Length + _sources.Length)) + (8L * _ids.Length);

    /// <summary>The token ids of document <paramref name="index"/> (its position in the list the index was built from).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not a document's position.</exception>
    public ReadOnlySpan<int> DocumentTokens(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _ids.Length);
        return _text.AsSpan(_starts[index], _starts[index + 1] - _starts[index] - 1);
    }

    /// <summary>The caller's id of document <paramref name="index"/>.</summary>
    public long DocumentId(int index) => _ids[index];

    /// <summary>The source of document <paramref name="index"/>.</summary>
    public int DocumentSource(int index) => _sources[index];

    /// <summary>Builds the index.</summary>
    /// <param name="documents">Token ids of each document (non-negative).</param>
    /// <param name="ids">Stable id of each document (distinct).</param>
    /// <param name="sourceIds">Source of each document (non-negative).</param>
    /// <exception cref="ArgumentException">Mismatched counts, a negative token or source, a repeated id, or more than
    /// <see cref="Array.MaxLength"/> tokens and documents together.</exception>
    public static SpanIndex Build(IReadOnlyList<int[]> documents, IReadOnlyList<long> ids, IReadOnlyList<int> sourceIds)
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(sourceIds);
        int d = documents.Count;
        if (ids.Count != d || sourceIds.Count != d)
        {
            throw new ArgumentException($"{d} documents need {d} ids and {d} source ids; got {ids.Count} and {sourceIds.Count}.", nameof(ids));
        }

        long total = d;
        var seen = new HashSet<long>();
        for (int i = 0; i < d; i++)
        {
            ArgumentNullException.ThrowIfNull(documents[i], $"documents[{i}]");
            total += documents[i].Length;
            if (!seen.Add(ids[i]))
            {
                throw new ArgumentException($"Document {i} repeats the id {ids[i]}; document ids must be distinct.", nameof(ids));
            }

            if (sourceIds[i] < 0)
            {
                throw new ArgumentException($"Document {i} has the negative source id {sourceIds[i]}.", nameof(sourceIds));
            }
        }

        if (total > Array.MaxLength)
        {
            throw new ArgumentException($"{total} tokens plus separators exceed the index's limit of {Array.MaxLength}; split the corpus.", nameof(documents));
        }

        var text = new int[total];
        var starts = new int[d + 1];
        int p = 0;
        for (int i = 0; i < d; i++)
        {
            starts[i] = p;
            var doc = documents[i];
            for (int j = 0; j < doc.Length; j++)
            {
                if (doc[j] < 0)
                {
                    throw new ArgumentException($"Document {i} (id {ids[i]}) has the negative token id {doc[j]} at position {j}; token ids are non-negative.", nameof(documents));
                }
            }

            doc.CopyTo(text, p);
            p += doc.Length;
            text[p++] = Separator;
        }

        starts[d] = p;
        return new SpanIndex(text, SuffixArray.Build(text), starts, [.. ids], [.. sourceIds]);
    }

    // Arrays already validated by SpanIndexFormat.Read.
    internal static SpanIndex FromArrays(int[] text, int[] suffixes, int[] starts, long[] ids, int[] sources) => new(text, suffixes, starts, ids, sources);

    /// <summary>Occurrences of <paramref name="span"/> in the corpus (0 for an empty span or one with a negative id).</summary>
    public int Count(ReadOnlySpan<int> span)
    {
        if (span.IsEmpty)
        {
            return 0;
        }

        int lo = 0, hi = _suffixes.Length;
        for (int depth = 0; depth < span.Length && lo < hi; depth++)
        {
            if (span[depth] < 0)
            {
                return 0;
            }

            (lo, hi) = Narrow(lo, hi, depth, span[depth]);
        }

        return hi - lo;
    }

    /// <summary>
    /// The maximal exact matches of <paramref name="query"/> at least <see cref="SpanQueryOptions.MinLength"/> tokens
    /// long, in query order. Each query position starts at most one (the longest) match; a match contained in the
    /// previous one is not reported.
    /// </summary>
    /// <exception cref="ArgumentException">A negative token id in the query.</exception>
    public IReadOnlyList<SpanMatch> Find(ReadOnlySpan<int> query, SpanQueryOptions? options = null)
    {
        options ??= new SpanQueryOptions();
        options.Validate();
        for (int i = 0; i < query.Length; i++)
        {
            if (query[i] < 0)
            {
                throw new ArgumentException($"Query token {i} is the negative id {query[i]}; token ids are non-negative.", nameof(query));
            }
        }

        var matches = new List<SpanMatch>();
        int previous = 0;
        for (int start = 0; start < query.Length; start++)
        {
            int lo = 0, hi = _suffixes.Length, length = 0;
            while (start + length < query.Length)
            {
                var (l, h) = Narrow(lo, hi, length, query[start + length]);
                if (l == h)
                {
                    break;
                }

                (lo, hi) = (l, h);
                length++;
            }

            // The match at start is inside the previous one exactly when the previous one reaches past its end.
            if (length >= options.MinLength && length >= previous)
            {
                var (documents, truncated) = DocumentsOf(lo, hi, options.MaxDocuments);
                matches.Add(new SpanMatch(start, length, hi - lo, documents, truncated));
            }

            previous = length;
        }

        return matches;
    }

    // The sub-interval of [lo, hi) (suffixes sharing `depth` leading tokens) whose next token is `token`.
    private (int Lo, int Hi) Narrow(int lo, int hi, int depth, int token)
    {
        if (hi - lo == 1)
        {
            return At(_suffixes[lo] + depth) == token ? (lo, hi) : (lo, lo);
        }

        int a = lo, b = hi;
        while (a < b)
        {
            int mid = (int)((uint)(a + b) >> 1);
            if (At(_suffixes[mid] + depth) < token)
            {
                a = mid + 1;
            }
            else
            {
                b = mid;
            }
        }

        int first = a;
        b = hi;
        while (a < b)
        {
            int mid = (int)((uint)(a + b) >> 1);
            if (At(_suffixes[mid] + depth) <= token)
            {
                a = mid + 1;
            }
            else
            {
                b = mid;
            }
        }

        return (first, a);
    }

    private int At(int position) => position < _text.Length ? _text[position] : int.MinValue;

    // Distinct documents of the suffixes in [lo, hi): the first `cap` in suffix order, then whether any other exists.
    private (SpanDocument[] Documents, bool Truncated) DocumentsOf(int lo, int hi, int cap)
    {
        var found = new HashSet<int>();
        bool truncated = false;
        for (int k = lo; k < hi; k++)
        {
            int doc = DocumentAt(_suffixes[k]);
            if (found.Count == cap && !found.Contains(doc))
            {
                truncated = true;
                break;
            }

            found.Add(doc);
        }

        var sorted = found.Order();
        return ([.. sorted.Select(i => new SpanDocument(i, _ids[i], _sources[i]))], truncated);
    }

    private int DocumentAt(int position)
    {
        int i = Array.BinarySearch(_starts, position);
        return i >= 0 ? i : ~i - 1;
    }
}
