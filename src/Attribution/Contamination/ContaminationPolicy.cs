using Attribution.Attribution.Spans;

namespace Attribution.Attribution.Contamination;

/// <summary>
/// One query's contamination verdict with its evidence: the calibrated score, the threshold, whether it alerts, the
/// matched span (position, length, corpus count, the training documents holding it, with their sources) and the
/// attribution evidence (the flagged documents' share of influence, the top document).
/// </summary>
/// <param name="Score">Calibrated score in [0, 1].</param>
/// <param name="Threshold">The policy's threshold (an alert when <paramref name="Score"/> is above it).</param>
/// <param name="Alert">Whether the query alerts.</param>
/// <param name="Span">Stage-one evidence (documents capped at the policy's MaxEvidenceDocuments).</param>
/// <param name="Attribution">Stage-two evidence.</param>
public sealed record ContaminationAssessment(double Score, double Threshold, bool Alert, SpanEvidence Span, AttributionEvidence Attribution)
{
    /// <summary>Training document ids the alert names: stage one's documents (exact span, then normalised text), then the flagged documents by influence, distinct.</summary>
    public IReadOnlyList<long> DocumentIds => [.. Span.AllDocuments.Select(d => d.Id).Concat(Attribution.FlaggedDocumentIds).Distinct()];

    /// <summary>Sources of stage one's documents, distinct, ascending.</summary>
    public IReadOnlyList<int> SourceIds => [.. Span.AllDocuments.Select(d => d.SourceId).Distinct().Order()];
}

/// <summary>
/// The two-stage contamination policy (pure compute): stage one is exact-span evidence from the training corpus's
/// <see cref="SpanIndex"/>, stage two attribution evidence from any method's scores; both become
/// <see cref="ContaminationFeatures"/> and one logistic score, thresholded per <see cref="ContaminationPolicyOptions"/>.
/// Immutable and safe to share between threads.
/// </summary>
public sealed class ContaminationPolicy
{
    private readonly double[] _weights;

    /// <summary>Creates the policy; the options are validated here (so a service fails at start-up, not at its first query).</summary>
    /// <exception cref="ArgumentException">Invalid options.</exception>
    public ContaminationPolicy(ContaminationPolicyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        _weights = [.. options.Weights];
    }

    /// <summary>The policy's configuration.</summary>
    public ContaminationPolicyOptions Options { get; }

    /// <summary>The calibrated score of one query's evidence, in [0, 1].</summary>
    public double Score(SpanEvidence span, AttributionEvidence attribution) => Score(ContaminationFeatures.Of(span, attribution));

    /// <summary>The score of a feature vector (<see cref="ContaminationFeatures.Of"/>).</summary>
    public double Score(ReadOnlySpan<double> features)
    {
        if (features.Length != _weights.Length)
        {
            throw new ArgumentException($"{features.Length} features given; the policy reads {_weights.Length}.", nameof(features));
        }

        double z = Options.Bias;
        for (int i = 0; i < _weights.Length; i++)
        {
            z += _weights[i] * features[i];
        }

        return 1 / (1 + Math.Exp(-z));
    }

    /// <summary>The verdict and evidence for one query.</summary>
    public ContaminationAssessment Assess(SpanEvidence span, AttributionEvidence attribution)
    {
        ArgumentNullException.ThrowIfNull(span);
        ArgumentNullException.ThrowIfNull(attribution);
        double score = Score(span, attribution);
        int cap = Options.MaxEvidenceDocuments;
        var shownSpan = span.Documents.Count > cap ? span with { Documents = [.. span.Documents.Take(cap)] } : span;
        shownSpan = span.Text.Documents.Count > cap ? shownSpan with { Text = span.Text with { Documents = [.. span.Text.Documents.Take(cap)] } } : shownSpan;
        var shownAttribution = attribution.FlaggedDocumentIds.Count > cap ? attribution with { FlaggedDocumentIds = [.. attribution.FlaggedDocumentIds.Take(cap)] } : attribution;
        return new ContaminationAssessment(score, Options.Threshold, score > Options.Threshold, shownSpan, shownAttribution);
    }

    /// <summary>
    /// The span stage's documents (exact span and normalised-text match) as the flagged set for the attribution stage:
    /// what the two-stage design hands from stage one to stage two when monitoring has flagged nothing itself.
    /// </summary>
    public static IReadOnlySet<long> SpanDocuments(SpanEvidence span)
    {
        ArgumentNullException.ThrowIfNull(span);
        return span.AllDocuments.Select(d => d.Id).ToHashSet();
    }
}
