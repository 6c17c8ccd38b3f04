using Attribution.Attribution.Contamination;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Transport.Messages;

namespace Attribution.Scorer;

/// <summary>A contamination verdict for one query: which rule fired, its value and threshold, the flagged ids behind it, and (for <see cref="AlertRule.Calibrated"/>) its evidence.</summary>
public sealed record ContaminationVerdict(AlertRule Rule, double Score, double Threshold, IReadOnlyList<long> FlaggedSourceIds, IReadOnlyList<long> FlaggedExampleIds, AlertEvidence? Evidence = null);

/// <summary>A text query's stage-one evidence with what the alert needs to show it: the query's tokens and the tokenizer that decodes them.</summary>
/// <param name="Evidence">The longest span shared with the training corpus.</param>
/// <param name="QueryTokens">The tokens the spans were searched in (prompt then completion).</param>
/// <param name="Tokenizer">The model's tokenizer.</param>
public sealed record QuerySpans(SpanEvidence Evidence, int[] QueryTokens, ITokenizer Tokenizer);

/// <summary>
/// The contamination policy (pure: no I/O). Rules, first match wins: <see cref="AlertRule.Calibrated"/>, the two-stage
/// policy (<see cref="ContaminationPolicy"/>: span evidence from the training corpus's exact-span index, when the query
/// is text and the model has one, and attribution evidence from the query's relative influence per example, combined into
/// one calibrated score against the configured threshold; the alert carries both as <see cref="AlertEvidence"/>); then
/// <see cref="AlertRule.SourceShare"/>, the flagged sources carrying at least <c>AlertThreshold</c> of the positive
/// source attribution; then <see cref="AlertRule.ExampleLead"/>, the example the answer aligns with most specifically
/// being a flagged one that leads the runner-up by <c>ExampleLeadRatio</c>.
/// </summary>
public sealed class AlertPolicy
{
    private readonly HashSet<long> _sources;
    private readonly HashSet<long> _examples;
    private readonly HashSet<int> _sourcesInt;
    private readonly double _shareThreshold;
    private readonly double _leadRatio;

    /// <summary>Creates the policy; <paramref name="calibrated"/> null uses the two-stage policy's stated defaults.</summary>
    public AlertPolicy(IEnumerable<long> flaggedSources, IEnumerable<long> flaggedExamples, double shareThreshold, double leadRatio, ContaminationPolicyOptions? calibrated = null)
    {
        _sources = [.. flaggedSources];
        _examples = [.. flaggedExamples];
        _sourcesInt = [.. _sources.Where(s => s is >= int.MinValue and <= int.MaxValue).Select(s => (int)s)];
        _shareThreshold = shareThreshold;
        _leadRatio = leadRatio;
        Calibrated = new ContaminationPolicy(calibrated ?? new ContaminationPolicyOptions());
    }

    /// <summary>The policy of <paramref name="options"/> (FlaggedSources, FlaggedExamples, AlertThreshold, ExampleLeadRatio, Contamination).</summary>
    public static AlertPolicy From(ScorerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new AlertPolicy(options.FlaggedSources, options.FlaggedExamples, options.AlertThreshold, options.ExampleLeadRatio, options.Contamination.ToPolicyOptions());
    }

    /// <summary>The two-stage policy (weights, bias, threshold).</summary>
    public ContaminationPolicy Calibrated { get; }

    /// <summary>The flagged example ids (<c>FlaggedExamples</c>).</summary>
    public IReadOnlySet<long> FlaggedExamples => _examples;

    /// <summary>The flagged source ids (<c>FlaggedSources</c>).</summary>
    public IReadOnlySet<long> FlaggedSources => _sources;

    /// <summary>This policy with the two-stage policy's options replaced (e.g. a threshold calibrated on clean queries).</summary>
    public AlertPolicy With(ContaminationPolicyOptions calibrated) => new(_sources, _examples, _shareThreshold, _leadRatio, calibrated);

    /// <summary>
    /// The two-stage policy's assessment of one query: attribution evidence over the examples' relative influence
    /// (score ÷ response norm; examples of a flagged source, flagged examples and the span's documents count as flagged)
    /// and the span evidence when there is one; for a query given as features (<paramref name="input"/>) and the live
    /// model's <paramref name="flagged"/> items, the input match with the nearest flagged item and the self-influence
    /// match (<see cref="AttributionEvidence.SelfMatch"/>).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="flagged"/> was measured on a scorer with another number of examples.</exception>
    public ContaminationAssessment Assess(ReadOnlySpan<float> exampleScores, ReadOnlySpan<float> exampleNorms, IReadOnlyList<long> exampleIds,
        IReadOnlyList<long>? exampleSourceIds, SpanEvidence? span, IReadOnlyList<float>? input = null, FlaggedItems? flagged = null)
    {
        ArgumentNullException.ThrowIfNull(exampleIds);
        span ??= SpanEvidence.None(1);
        if (flagged is not null && input is not null)
        {
            span = span with { Input = flagged.Inputs.Find(input as float[] ?? [.. input]) };
        }

        if (flagged is not null && flagged.SelfInfluence.Length != exampleScores.Length)
        {
            throw new ArgumentException($"The flagged items' self-influences were read for {flagged.SelfInfluence.Length} examples (model {flagged.Version}); the query was scored against {exampleScores.Length}.", nameof(flagged));
        }

        var relative = new float[exampleScores.Length];
        var self = flagged is null ? [] : new float[exampleScores.Length];
        for (int i = 0; i < relative.Length; i++)
        {
            relative[i] = exampleNorms[i] > 0 ? exampleScores[i] / exampleNorms[i] : 0;
            if (self.Length > 0)
            {
                self[i] = exampleNorms[i] > 0 ? flagged!.SelfInfluence[i] / exampleNorms[i] : float.NaN;
            }
        }

        var sources = new int[relative.Length];
        for (int i = 0; i < sources.Length; i++)
        {
            sources[i] = exampleSourceIds is null ? -1 : (int)Math.Clamp(exampleSourceIds[i], -1, int.MaxValue);
        }

        IReadOnlySet<long> flaggedIds = span.AllDocuments.Count == 0 ? _examples : [.. _examples, .. ContaminationPolicy.SpanDocuments(span)];
        var attribution = AttributionEvidence.From(relative, exampleIds, sources, flaggedIds, exampleSourceIds is null ? null : _sourcesInt, Calibrated.Options.MaxEvidenceDocuments, self);
        return Calibrated.Assess(span, attribution);
    }

    /// <summary>
    /// The verdict for one query from its source scores (aligned with <paramref name="sourceIds"/>), example scores
    /// and response norms (aligned with <paramref name="exampleIds"/>), the examples' sources when known, a text
    /// query's spans, a feature query's input and the live model's flagged items; null when no rule fires.
    /// </summary>
    public ContaminationVerdict? Evaluate(ReadOnlySpan<float> sourceScores, IReadOnlyList<long> sourceIds,
        ReadOnlySpan<float> exampleScores, ReadOnlySpan<float> exampleNorms, IReadOnlyList<long> exampleIds,
        IReadOnlyList<long>? exampleSourceIds = null, QuerySpans? spans = null, IReadOnlyList<float>? input = null, FlaggedItems? flagged = null)
    {
        var assessment = Assess(exampleScores, exampleNorms, exampleIds, exampleSourceIds, spans?.Evidence, input, flagged);
        if (assessment.Alert)
        {
            return new ContaminationVerdict(AlertRule.Calibrated, assessment.Score, assessment.Threshold,
                [.. assessment.SourceIds.Select(s => (long)s).Where(_sources.Contains)], [.. assessment.DocumentIds.Where(_examples.Contains)], EvidenceOf(assessment, spans, exampleIds, exampleSourceIds));
        }

        var contributors = new List<long>();
        var share = FlaggedShare(sourceScores, sourceIds, _sources, contributors);
        if (share >= _shareThreshold && contributors.Count > 0)
        {
            return new ContaminationVerdict(AlertRule.SourceShare, share, _shareThreshold, contributors, []);
        }

        if (_leadRatio > 0 && ExampleLead(exampleScores, exampleNorms, exampleIds, _examples) is { } lead && lead.Lead >= _leadRatio)
        {
            return new ContaminationVerdict(AlertRule.ExampleLead, lead.Lead, _leadRatio, [], [lead.ExampleId]);
        }

        return null;
    }

    /// <summary>An assessment as the alert's evidence: the span as text and tokens, the documents with their sources, the shares.</summary>
    internal static AlertEvidence EvidenceOf(ContaminationAssessment assessment, QuerySpans? spans, IReadOnlyList<long> exampleIds, IReadOnlyList<long>? exampleSourceIds)
    {
        var span = assessment.Span;
        int[] tokens = spans is { } s && span.Length > 0 ? s.QueryTokens[span.QueryStart..(span.QueryStart + span.Length)] : [];
        var documents = assessment.DocumentIds;
        var sourceOf = new Dictionary<long, long>();
        foreach (var d in span.Documents)
        {
            sourceOf.TryAdd(d.Id, d.SourceId);
        }

        if (exampleSourceIds is not null && documents.Any(d => !sourceOf.ContainsKey(d)))
        {
            for (int i = 0; i < exampleIds.Count; i++)
            {
                sourceOf.TryAdd(exampleIds[i], exampleSourceIds[i]);
            }
        }

        return new AlertEvidence
        {
            MatchedSpan = tokens.Length > 0 ? spans!.Tokenizer.Decode(tokens) : "",
            MatchedTokenIds = tokens,
            SpanStart = span.QueryStart,
            SpanLength = span.Length,
            SpanCount = span.Count,
            DocumentIds = documents,
            DocumentSourceIds = [.. documents.Select(d => sourceOf.GetValueOrDefault(d, -1))],
            AttributionShare = assessment.Attribution.FlaggedShare,
            TopDocumentId = assessment.Attribution.TopDocumentId,
            TopDocumentShare = assessment.Attribution.TopShare,
        };
    }

    /// <summary>
    /// The example with the highest relative influence (score ÷ ‖response‖) when it is flagged and positive: its id and
    /// its lead over the runner-up (+∞ when no other example is positive); null otherwise.
    /// </summary>
    internal static (long ExampleId, double Lead)? ExampleLead(ReadOnlySpan<float> scores, ReadOnlySpan<float> norms, IReadOnlyList<long> ids, HashSet<long> flagged)
    {
        if (flagged.Count == 0)
        {
            return null;
        }

        int best = -1;
        double first = 0, second = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (norms[i] <= 0)
            {
                continue;
            }

            double relative = scores[i] / norms[i];
            if (relative > first)
            {
                second = first;
                first = relative;
                best = i;
            }
            else if (relative > second)
            {
                second = relative;
            }
        }

        return best >= 0 && flagged.Contains(ids[best]) ? (ids[best], second > 0 ? first / second : double.PositiveInfinity) : null;
    }

    /// <summary>
    /// Flagged share of positive mass: Σ max(s, 0) over flagged units / Σ max(s, 0) over all units (0 when nothing is
    /// positive). Positive scores are the units that pushed the prediction up, so this is "how much of what supports the
    /// answer comes from flagged data". The flagged units with positive scores are added to <paramref name="contributors"/>.
    /// </summary>
    internal static double FlaggedShare(ReadOnlySpan<float> scores, IReadOnlyList<long> ids, HashSet<long> flagged, List<long> contributors)
    {
        if (flagged.Count == 0)
        {
            return 0;
        }

        double total = 0, hit = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] > 0)
            {
                total += scores[i];
                if (flagged.Contains(ids[i]))
                {
                    hit += scores[i];
                    contributors.Add(ids[i]);
                }
            }
        }

        return total > 0 ? hit / total : 0;
    }
}

/// <summary>
/// The span stage of a language model's queries: the query's tokens looked up in its training corpus's span index and
/// its normalised-text index (<see cref="CorpusMatcher"/>).
/// </summary>
public sealed class SpanLookup(LanguageModelScorer scorer, CorpusMatcher matcher, CorpusMatchOptions options)
{
    /// <summary>What <paramref name="query"/> shares with the training corpus (longest exact span, normalised-text match), with what its alert shows.</summary>
    public QuerySpans Find(ModelQuery query)
    {
        var tokens = scorer.SpanTokens(query);
        return new QuerySpans(matcher.Find(tokens, options), tokens, scorer.Tokenizer);
    }
}
