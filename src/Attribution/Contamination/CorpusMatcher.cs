using Attribution.Attribution.Spans;
using Attribution.Engine.Data;

namespace Attribution.Attribution.Contamination;

/// <summary>What stage one reports: the exact spans' minimum length and document cap, and the normalised runs' minimum length.</summary>
/// <param name="MinTokens">Shortest exact span reported, in tokens (at least 1).</param>
/// <param name="MinWords">Shortest run of normalised words reported (at least 1).</param>
/// <param name="MaxDocuments">Most documents listed per span or run (at least 1).</param>
public sealed record CorpusMatchOptions(int MinTokens = 8, int MinWords = 3, int MaxDocuments = 16)
{
    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a value is out of range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MinTokens, 1, nameof(MinTokens));
        ArgumentOutOfRangeException.ThrowIfLessThan(MinWords, 1, nameof(MinWords));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDocuments, 1, nameof(MaxDocuments));
    }
}

/// <summary>
/// Stage one of the contamination policy over one training corpus: the exact-span index of its token ids (what the
/// Simulator publishes per checkpoint) and, derived from it, the <see cref="NormalizedTextIndex"/> of its decoded text.
/// A query's token ids give its <see cref="SpanEvidence"/> with both. The Scorer and <c>eval contamination</c> build it
/// the same way (from a <see cref="SpanIndex"/> and the model's tokenizer). Pure compute; safe to query from many threads.
/// </summary>
public sealed class CorpusMatcher
{
    /// <summary>Builds the normalised-text index of <paramref name="index"/>'s documents, decoded with <paramref name="tokenizer"/>.</summary>
    /// <exception cref="ArgumentException">A document holds a token the tokenizer cannot decode (the index was built with another tokenizer).</exception>
    public CorpusMatcher(SpanIndex index, ITokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(tokenizer);
        Index = index;
        Tokenizer = tokenizer;
        var texts = new string[index.DocumentCount];
        var ids = new long[texts.Length];
        var sources = new int[texts.Length];
        for (int d = 0; d < texts.Length; d++)
        {
            texts[d] = tokenizer.Decode(index.DocumentTokens(d));
            ids[d] = index.DocumentId(d);
            sources[d] = index.DocumentSource(d);
        }

        Text = NormalizedTextIndex.Build(texts, ids, sources);
    }

    /// <summary>The exact-span index over token ids.</summary>
    public SpanIndex Index { get; }

    /// <summary>The index of the documents' normalised words.</summary>
    public NormalizedTextIndex Text { get; }

    /// <summary>The tokenizer the token ids come from.</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>Stage-one evidence of a query given as token ids of <see cref="Tokenizer"/> (prompt then completion, no framing).</summary>
    /// <exception cref="ArgumentException">A negative or undecodable token id.</exception>
    public SpanEvidence Find(ReadOnlySpan<int> query, CorpusMatchOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var span = SpanEvidence.From(Index.Find(query, new SpanQueryOptions(options.MinTokens, options.MaxDocuments)), Math.Max(1, query.Length));
        return span with { Text = Text.Find(Tokenizer.Decode(query), options.MinWords, options.MaxDocuments) };
    }
}
