using Attribution.Attribution.Spans;

namespace Attribution.Attribution.Contamination;

/// <summary>
/// Stage-one evidence for one query: its longest exact span shared with the training corpus (<see cref="SpanIndex"/>),
/// and what it shares with the corpus once layout is ignored (<see cref="Text"/>: normalised words, near-duplicate overlap).
/// </summary>
/// <param name="QueryLength">Tokens in the query the spans were searched in (at least 1).</param>
/// <param name="QueryStart">Position of the longest span in the query (0 when there is none).</param>
/// <param name="Length">Length of the longest span in tokens (0 when no span reached the index's minimum length).</param>
/// <param name="Count">Occurrences of that span in the corpus (0 when there is none; 1 = unique, the strongest evidence).</param>
/// <param name="Documents">Training documents holding it (ids and sources), at most the span query's document cap.</param>
public sealed record SpanEvidence(int QueryLength, int QueryStart, int Length, int Count, IReadOnlyList<SpanDocument> Documents)
{
    /// <summary>No span of the minimum length: the query shares nothing notable with the corpus.</summary>
    public static SpanEvidence None(int queryLength) => new(queryLength, 0, 0, 0, []);

    /// <summary>
    /// The longest of <paramref name="matches"/> (a tie goes to the rarer span, then the earlier one), or
    /// <see cref="None"/> when the list is empty.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="queryLength"/> is below 1 or shorter than a match's end.</exception>
    public static SpanEvidence From(IReadOnlyList<SpanMatch> matches, int queryLength)
    {
        ArgumentNullException.ThrowIfNull(matches);
        ArgumentOutOfRangeException.ThrowIfLessThan(queryLength, 1);
        SpanMatch? best = null;
        foreach (var m in matches)
        {
            if (m.QueryStart + m.Length > queryLength)
            {
                throw new ArgumentOutOfRangeException(nameof(queryLength), $"A span at {m.QueryStart} of length {m.Length} ends past the query's {queryLength} tokens.");
            }

            if (best is null || m.Length > best.Length || (m.Length == best.Length && m.Count < best.Count))
            {
                best = m;
            }
        }

        return best is null ? None(queryLength) : new SpanEvidence(queryLength, best.QueryStart, best.Length, best.Count, best.Documents);
    }

    /// <summary>The normalised-text match (<see cref="NormalizedTextIndex"/>); <see cref="TextMatch.None"/> when it was not searched.</summary>
    public TextMatch Text { get; init; } = TextMatch.None;

    /// <summary>The input match with the nearest flagged training item (<see cref="FlaggedInputIndex"/>); <see cref="InputMatch.None"/> when it was not searched.</summary>
    public InputMatch Input { get; init; } = InputMatch.None;

    /// <summary>Every training document stage one names: the exact span's, the normalised-text match's, then a matching flagged input's, distinct.</summary>
    public IReadOnlyList<SpanDocument> AllDocuments =>
        [.. Documents.Concat(Text.Documents).Concat(Input.Match > 0 ? [new SpanDocument(Input.Index, Input.DocumentId, Input.SourceId)] : []).DistinctBy(d => d.Id)];

    /// <summary>Share of the query the longest span covers, in [0, 1].</summary>
    public double Coverage => QueryLength > 0 ? Math.Min(1.0, (double)Length / QueryLength) : 0;

    /// <summary>1 / occurrences of the span (1 for a span found once, 0 when there is none).</summary>
    public double Rarity => Count > 0 ? 1.0 / Count : 0;
}

/// <summary>
/// Stage-two evidence for one query, from its attribution scores over the training documents (any method: larger =
/// more supporting). Positive scores are the documents that pushed the answer up; the shares are of their total.
/// </summary>
/// <param name="TopShare">The top document's share of the positive influence, in [0, 1] (0 when nothing is positive).</param>
/// <param name="TopZ">How far the top score stands out: (top − mean) / standard deviation over all documents (0 when they are all equal).</param>
/// <param name="FlaggedShare">Share of the positive influence on flagged documents (the span stage's documents, or
/// documents/sources monitoring has flagged), in [0, 1].</param>
/// <param name="TopDocumentId">Id of the top-scored document (−1 when there are no documents).</param>
/// <param name="TopSourceId">Source of the top-scored document (−1 when there are no documents).</param>
/// <param name="FlaggedDocumentIds">Flagged documents with a positive score, strongest first (at most the cap given to <see cref="From"/>).</param>
public sealed record AttributionEvidence(double TopShare, double TopZ, double FlaggedShare, long TopDocumentId, int TopSourceId, IReadOnlyList<long> FlaggedDocumentIds)
{
    /// <summary>
    /// Largest |<see cref="FlaggedLead"/>|: a lead of e (2.7x) or more counts as much as any, so the feature says
    /// mainly whether a flagged document leads (the demo's old example-lead rule asked for 1.05x) and a clean query's
    /// far-behind flagged documents do not dominate a linear fit.
    /// </summary>
    public const double LeadCap = 1;

    /// <summary>No attribution ran for the query (the span-only policy, or a method that failed).</summary>
    public static AttributionEvidence None { get; } = new(0, 0, 0, -1, -1, []);

    /// <summary>
    /// How far the best flagged document leads the best unflagged one: ln(best flagged score ÷ best unflagged score),
    /// clamped to ±<see cref="LeadCap"/>; −cap when no flagged document scores above 0, +cap when only flagged ones do
    /// (0 when no attribution ran). A query copying a flagged training item puts its own copy first.
    /// </summary>
    public double FlaggedLead { get; init; }

    /// <summary>
    /// How close the query comes to being a flagged item itself, by attribution: the largest, over flagged documents with
    /// a known nonzero self-influence s(i,i), of s(q,i) ÷ s(i,i) (0 when none is known; s(i,i) may be negative: the
    /// readout explains the predicted class's margin, which training on item i can lower). A query that copies flagged
    /// item i scores about s(i,i) against it (exactly, for an exact copy under a deterministic readout: 1); a clean query
    /// scores a flagged item far below the item's own self-influence.
    /// </summary>
    public double SelfRatio { get; init; }

    /// <summary>
    /// Decades of agreement <see cref="SelfMatch"/> counts up to: a ratio within 10⁻⁶ of 1 (float readouts of the same
    /// input agree to about 10⁻⁷) scores 1.
    /// </summary>
    public const double SelfMatchDecades = 6;

    /// <summary>
    /// How exactly the query scores one flagged item as the item scores itself: −log10(min over flagged documents with a
    /// known nonzero self-influence of |1 − s(q,i) ÷ s(i,i)|) ÷ <see cref="SelfMatchDecades"/>, clamped to [0, 1]: 1 for a
    /// copy (the readout of the item's own input reproduces s(i,i) to float rounding), 1/3 for a ratio within 1 % of 1,
    /// 0 for one off by 100 % or more; 0 when no self-influence is known. On a log scale because clean queries come
    /// within 1 % of some flagged item's self-influence (the demo: 0.994 at most of 300), exact copies within 10⁻⁶.
    /// </summary>
    public double SelfMatch { get; init; }

    /// <summary>
    /// The evidence of one query's scores. A document is flagged when its id is in <paramref name="flaggedDocuments"/>
    /// or its source in <paramref name="flaggedSources"/> (either may be null or empty); <paramref name="selfInfluence"/>,
    /// when given, is each document's self-influence in the units of <paramref name="scores"/> (NaN or 0 where unknown),
    /// for <see cref="SelfRatio"/>.
    /// </summary>
    /// <param name="scores">The query's score per training document.</param>
    /// <param name="documentIds">Document ids, aligned with <paramref name="scores"/>.</param>
    /// <param name="sourceIds">Source ids, aligned with <paramref name="scores"/>.</param>
    /// <param name="flaggedDocuments">Flagged document ids.</param>
    /// <param name="flaggedSources">Flagged source ids.</param>
    /// <param name="maxFlagged">Most flagged ids listed (at least 1).</param>
    /// <param name="selfInfluence">Self-influence per document, aligned with <paramref name="scores"/>, or empty.</param>
    /// <exception cref="ArgumentException">Misaligned lengths or a non-finite score.</exception>
    public static AttributionEvidence From(ReadOnlySpan<float> scores, IReadOnlyList<long> documentIds, IReadOnlyList<int> sourceIds,
        IReadOnlySet<long>? flaggedDocuments = null, IReadOnlySet<int>? flaggedSources = null, int maxFlagged = 16, ReadOnlySpan<float> selfInfluence = default)
    {
        if (!selfInfluence.IsEmpty && selfInfluence.Length != scores.Length)
        {
            throw new ArgumentException($"{scores.Length} scores need as many self-influences (or none); got {selfInfluence.Length}.", nameof(selfInfluence));
        }

        ArgumentNullException.ThrowIfNull(documentIds);
        ArgumentNullException.ThrowIfNull(sourceIds);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFlagged, 1);
        if (documentIds.Count != scores.Length || sourceIds.Count != scores.Length)
        {
            throw new ArgumentException($"{scores.Length} scores need as many document ids and source ids; got {documentIds.Count} and {sourceIds.Count}.", nameof(documentIds));
        }

        if (scores.IsEmpty)
        {
            return None;
        }

        int top = 0;
        double sum = 0, positive = 0, flagged = 0, bestFlagged = double.NegativeInfinity, bestOther = double.NegativeInfinity, selfRatio = double.NegativeInfinity, selfMatch = double.NegativeInfinity;
        var hits = new List<(long Id, float Score)>();
        for (int i = 0; i < scores.Length; i++)
        {
            float s = scores[i];
            if (!float.IsFinite(s))
            {
                throw new ArgumentException($"Score {i} (document {documentIds[i]}) is {s}; attribution scores must be finite.", nameof(scores));
            }

            sum += s;
            if (s > scores[top])
            {
                top = i;
            }

            bool isFlagged = (flaggedDocuments?.Contains(documentIds[i]) ?? false) || (flaggedSources?.Contains(sourceIds[i]) ?? false);
            if (isFlagged)
            {
                bestFlagged = Math.Max(bestFlagged, s);
                if (!selfInfluence.IsEmpty && selfInfluence[i] != 0 && float.IsFinite(selfInfluence[i]))
                {
                    double ratio = s / (double)selfInfluence[i];
                    selfRatio = Math.Max(selfRatio, ratio);
                    selfMatch = Math.Max(selfMatch, Math.Clamp(-Math.Log10(Math.Abs(1 - ratio)) / SelfMatchDecades, 0, 1));
                }
            }
            else
            {
                bestOther = Math.Max(bestOther, s);
            }

            if (s > 0)
            {
                positive += s;
                if (isFlagged)
                {
                    flagged += s;
                    hits.Add((documentIds[i], s));
                }
            }
        }

        double mean = sum / scores.Length, squares = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            double d = scores[i] - mean;
            squares += d * d;
        }

        double sd = Math.Sqrt(squares / scores.Length);
        double z = sd > 0 ? (scores[top] - mean) / sd : 0;
        double topShare = positive > 0 && scores[top] > 0 ? scores[top] / positive : 0;
        var ids = hits.OrderByDescending(h => h.Score).ThenBy(h => h.Id).Take(maxFlagged).Select(h => h.Id).ToArray();
        double lead = !(bestFlagged > 0) ? -LeadCap : !(bestOther > 0) ? LeadCap : Math.Clamp(Math.Log(bestFlagged / bestOther), -LeadCap, LeadCap);
        return new AttributionEvidence(topShare, z, positive > 0 ? flagged / positive : 0, documentIds[top], sourceIds[top], ids) { FlaggedLead = lead, SelfRatio = double.IsFinite(selfRatio) ? selfRatio : 0, SelfMatch = double.IsFinite(selfMatch) ? selfMatch : 0 };
    }
}
