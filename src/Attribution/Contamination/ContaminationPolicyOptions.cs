namespace Attribution.Attribution.Contamination;

/// <summary>Which evidence a contamination policy reads.</summary>
[Flags]
public enum ContaminationEvidenceKind
{
    /// <summary>Exact spans of token ids shared with the training corpus (stage one).</summary>
    Span = 1,

    /// <summary>Stage two only: attribution scores over the training documents.</summary>
    Attribution = 2,

    /// <summary>The normalised-text match with the training corpus: runs of normalised words, rarity-weighted word overlap (stage one).</summary>
    Text = 4,

    /// <summary>All of stage one: exact spans and the normalised-text match.</summary>
    StageOne = Span | Text,

    /// <summary>Both stages of a language model's policy, combined into one score.</summary>
    Combined = Span | Text | Attribution,

    /// <summary>
    /// The query's input matched against the flagged training items' inputs (<see cref="FlaggedInputIndex"/>: an exact
    /// or near-exact copy): stage one for a model whose queries are not text (the image analogue of the span index).
    /// </summary>
    Input = 8,

    /// <summary>
    /// Attribution against the flagged items' own self-influence (<see cref="AttributionEvidence.SelfMatch"/>: how close
    /// the query's score on a flagged item comes to that item's score on itself): stage two for a query that may copy a
    /// flagged training item, needing only the items' inputs once per probe set, not the query's nearness in input space.
    /// </summary>
    SelfInfluence = 16,

    /// <summary>Every kind of evidence.</summary>
    All = Combined | Input | SelfInfluence,
}

/// <summary>
/// The features a contamination score combines, in the order of <see cref="ContaminationPolicyOptions.Weights"/>:
/// span coverage (longest exact span ÷ query length), ln(1 + span length), span rarity (1 ÷ corpus count), the top
/// document's share of positive influence, the top score's standing (signed ln(1 + |z|)), the flagged documents'
/// share of positive influence, then the normalised-text match (<see cref="Spans.TextMatch"/>): the longest run of
/// normalised words ÷ the query's words, and the rarity-weighted word overlap with the best document; then how far the
/// best flagged document leads the best unflagged one (<see cref="AttributionEvidence.FlaggedLead"/>); last the input
/// match with the nearest flagged training item (<see cref="InputMatch.Match"/>: 1 for an exact copy); then the self-influence
/// match with the flagged items (<see cref="AttributionEvidence.SelfMatch"/>: 1 when the query scores a flagged item as
/// the item scores itself).
/// </summary>
public static class ContaminationFeatures
{
    /// <summary>Feature names, in weight order.</summary>
    public static IReadOnlyList<string> Names { get; } =
        ["span_coverage", "span_log_length", "span_rarity", "attr_top_share", "attr_top_z", "attr_flagged_share", "text_coverage", "text_overlap", "attr_flagged_lead", "input_match", "attr_self_match"];

    /// <summary>The stage each feature belongs to, aligned with <see cref="Names"/>.</summary>
    public static IReadOnlyList<ContaminationEvidenceKind> Kinds { get; } =
    [
        ContaminationEvidenceKind.Span, ContaminationEvidenceKind.Span, ContaminationEvidenceKind.Span,
        ContaminationEvidenceKind.Attribution, ContaminationEvidenceKind.Attribution, ContaminationEvidenceKind.Attribution,
        ContaminationEvidenceKind.Text, ContaminationEvidenceKind.Text,
        ContaminationEvidenceKind.Attribution,
        ContaminationEvidenceKind.Input,
        ContaminationEvidenceKind.SelfInfluence,
    ];

    /// <summary>Number of features.</summary>
    public static int Count => Names.Count;

    /// <summary>The feature vector of one query's evidence.</summary>
    public static double[] Of(SpanEvidence span, AttributionEvidence attribution)
    {
        ArgumentNullException.ThrowIfNull(span);
        ArgumentNullException.ThrowIfNull(attribution);
        return
        [
            span.Coverage, Math.Log(1 + span.Length), span.Rarity,
            attribution.TopShare, Math.Sign(attribution.TopZ) * Math.Log(1 + Math.Abs(attribution.TopZ)), attribution.FlaggedShare,
            span.Text.Coverage, span.Text.Overlap,
            attribution.FlaggedLead,
            span.Input.Match,
            attribution.SelfMatch,
        ];
    }

    /// <summary>Whether feature <paramref name="index"/> is read under <paramref name="evidence"/>.</summary>
    public static bool Uses(ContaminationEvidenceKind evidence, int index) => (evidence & Kinds[index]) != 0;
}

/// <summary>
/// Configuration of the two-stage contamination policy: score = logistic(bias + Σ weight·feature) over
/// <see cref="ContaminationFeatures"/>, an alert when the score exceeds <see cref="Threshold"/>. The defaults are a
/// stated, uncalibrated rule (an alert when the longest exact span covers about half the query or more and is rare, or
/// when flagged documents carry most of the influence; the normalised-text features weigh 0 until calibrated, since how
/// much word overlap a clean query has depends on the corpus: short queries of common words overlap a lot; an exact copy
/// of a flagged training input alerts on its own); <see cref="ContaminationCalibration"/> fits the weights on a
/// calibration split and picks the threshold for a target false-alert rate.
/// </summary>
public sealed record ContaminationPolicyOptions
{
    /// <summary>The stated rule's weights (see <see cref="ContaminationFeatures.Names"/>).</summary>
    public static IReadOnlyList<double> DefaultWeights { get; } = [12, 0, 2, 2, 0, 4, 0, 0, 0, 12, 0];

    /// <summary>Which evidence the policy reads; weights of the other features must be 0.</summary>
    public ContaminationEvidenceKind Evidence { get; init; } = ContaminationEvidenceKind.All;

    /// <summary>One weight per feature of <see cref="ContaminationFeatures"/>, in its order.</summary>
    public IReadOnlyList<double> Weights { get; init; } = DefaultWeights;

    /// <summary>The logistic's intercept.</summary>
    public double Bias { get; init; } = -8;

    /// <summary>Alert when the score (in [0, 1]) is strictly above this.</summary>
    public double Threshold { get; init; } = 0.5;

    /// <summary>Most training document ids an alert lists as evidence (at least 1).</summary>
    public int MaxEvidenceDocuments { get; init; } = 16;

    /// <summary>Throws <see cref="ArgumentException"/> naming the field and the fix when a value cannot be used.</summary>
    public void Validate()
    {
        if (Evidence == 0 || (Evidence & ~ContaminationEvidenceKind.All) != 0)
        {
            throw new ArgumentException($"ContaminationPolicyOptions.Evidence is {Evidence}; use Span, Text, Attribution, Input, SelfInfluence or a combination (StageOne, Combined, All).", nameof(Evidence));
        }

        if (Weights is null || Weights.Count != ContaminationFeatures.Count)
        {
            throw new ArgumentException($"ContaminationPolicyOptions.Weights needs {ContaminationFeatures.Count} values ({string.Join(", ", ContaminationFeatures.Names)}); got {Weights?.Count ?? 0}.", nameof(Weights));
        }

        for (int i = 0; i < Weights.Count; i++)
        {
            if (!double.IsFinite(Weights[i]))
            {
                throw new ArgumentException($"ContaminationPolicyOptions.Weights[{i}] ({ContaminationFeatures.Names[i]}) is {Weights[i]}; weights must be finite.", nameof(Weights));
            }

            if (Weights[i] != 0 && !ContaminationFeatures.Uses(Evidence, i))
            {
                throw new ArgumentException($"ContaminationPolicyOptions.Weights[{i}] ({ContaminationFeatures.Names[i]}) is {Weights[i]} but Evidence is {Evidence}, which does not read it; set it to 0 or add its kind ({ContaminationFeatures.Kinds[i]}) to Evidence.", nameof(Weights));
            }
        }

        if (!double.IsFinite(Bias))
        {
            throw new ArgumentException($"ContaminationPolicyOptions.Bias is {Bias}; it must be finite.", nameof(Bias));
        }

        if (!(Threshold >= 0 && Threshold <= 1))
        {
            throw new ArgumentException($"ContaminationPolicyOptions.Threshold is {Threshold}; it is a score threshold in [0, 1].", nameof(Threshold));
        }

        if (MaxEvidenceDocuments < 1)
        {
            throw new ArgumentException($"ContaminationPolicyOptions.MaxEvidenceDocuments is {MaxEvidenceDocuments}; it must be at least 1.", nameof(MaxEvidenceDocuments));
        }
    }
}
