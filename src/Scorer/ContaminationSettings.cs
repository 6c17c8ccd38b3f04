using Attribution.Attribution.Contamination;

namespace Attribution.Scorer;

/// <summary>
/// The two-stage contamination policy's configuration (section <c>Scorer:Contamination</c>): which evidence it reads,
/// its logistic weights, bias and threshold (<see cref="ContaminationPolicyOptions"/>), and the span stage's query
/// settings. Unset weights, bias and threshold are the policy's stated defaults; <c>./pipeline demo</c> and
/// <c>./pipeline eval contamination</c> show how to choose the threshold on a calibration split.
/// </summary>
public sealed class ContaminationSettings
{
    private static readonly ContaminationPolicyOptions Defaults = new();

    /// <summary>
    /// "span" (stage one: exact spans and the normalised-text match), "exact" (exact spans only), "text", "attribution",
    /// "input" (a feature query's match with the flagged training inputs), "self" (a feature query's score on a flagged
    /// item against the item's self-influence), "combined" (default: span + attribution) or
    /// "all", or several joined by '+': which evidence the score reads.
    /// </summary>
    public string Evidence { get; set; } = "combined";

    /// <summary>One weight per feature (span_coverage, span_log_length, span_rarity, attr_top_share, attr_top_z, attr_flagged_share, text_coverage, text_overlap, attr_flagged_lead, input_match, attr_self_match); unset = the stated defaults.</summary>
    public double[]? Weights { get; set; }

    /// <summary>The logistic's intercept.</summary>
    public double Bias { get; set; } = Defaults.Bias;

    /// <summary>Alert when the calibrated score (0..1) is strictly above this.</summary>
    public double Threshold { get; set; } = Defaults.Threshold;

    /// <summary>Most training document ids an alert lists as evidence.</summary>
    public int MaxEvidenceDocuments { get; set; } = Defaults.MaxEvidenceDocuments;

    /// <summary>Shortest exact span (tokens) the span stage reports.</summary>
    public int SpanMinLength { get; set; } = new CorpusMatchOptions().MinTokens;

    /// <summary>Shortest run of normalised words (case, punctuation, numbering ignored) the span stage reports.</summary>
    public int SpanMinWords { get; set; } = new CorpusMatchOptions().MinWords;

    /// <summary>Largest span index file the Scorer loads, in bytes (default 1 GiB); a larger one is dead-lettered.</summary>
    public long MaxSpanIndexBytes { get; set; } = 1L << 30;

    /// <summary>
    /// Most flagged training examples (<c>Scorer:FlaggedExamples</c> and the examples of <c>Scorer:FlaggedSources</c>)
    /// whose inputs an image model's Scorer loads for the input match and the self-influence match (1..1,000,000; default
    /// 10,000): each feature query is compared with every one.
    /// </summary>
    public int MaxFlaggedInputs { get; set; } = 10_000;

    /// <summary>The span stage's query settings.</summary>
    public CorpusMatchOptions MatchOptions() => new(SpanMinLength, SpanMinWords, MaxEvidenceDocuments);

    /// <summary>The policy options these settings describe.</summary>
    /// <exception cref="ArgumentException">An unknown evidence name, or options the policy refuses.</exception>
    public ContaminationPolicyOptions ToPolicyOptions()
    {
        var evidence = ParseEvidence(Evidence);
        var weights = Weights ?? [.. ContaminationPolicyOptions.DefaultWeights];
        if (Weights is null)
        {
            // The stated defaults with the weights of the evidence not read off.
            weights = [.. weights.Select((w, i) => ContaminationFeatures.Uses(evidence, i) ? w : 0)];
        }

        var options = new ContaminationPolicyOptions { Evidence = evidence, Weights = weights, Bias = Bias, Threshold = Threshold, MaxEvidenceDocuments = MaxEvidenceDocuments };
        options.Validate();
        return options;
    }

    /// <summary>
    /// An evidence name, or several joined by '+' (e.g. "input+attribution"): span (exact spans and the normalised-text
    /// match), exact, text, attribution, input (the flagged inputs' match), self (the self-influence match), combined (span + attribution), all.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown name.</exception>
    public static ContaminationEvidenceKind ParseEvidence(string evidence)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        ContaminationEvidenceKind kind = 0;
        foreach (var part in evidence.Split('+', StringSplitOptions.TrimEntries))
        {
            kind |= part.ToLowerInvariant() switch
            {
                "span" => ContaminationEvidenceKind.StageOne,
                "exact" => ContaminationEvidenceKind.Span,
                "text" => ContaminationEvidenceKind.Text,
                "attribution" => ContaminationEvidenceKind.Attribution,
                "input" => ContaminationEvidenceKind.Input,
                "self" => ContaminationEvidenceKind.SelfInfluence,
                "combined" => ContaminationEvidenceKind.Combined,
                "all" => ContaminationEvidenceKind.All,
                _ => throw new ArgumentException($"Scorer:Contamination:Evidence must be span, exact, text, attribution, input, self, combined or all, or several joined by '+'; got '{evidence}'.", nameof(evidence)),
            };
        }

        return kind;
    }

    /// <summary>What is invalid, or null.</summary>
    public string? Validate()
    {
        if (SpanMinLength < 1 || SpanMinWords < 1 || MaxSpanIndexBytes < 1024)
        {
            return $"Scorer:Contamination:SpanMinLength and SpanMinWords must be >= 1 (got {SpanMinLength} and {SpanMinWords}) and Scorer:Contamination:MaxSpanIndexBytes >= 1024 (got {MaxSpanIndexBytes}).";
        }

        if (MaxFlaggedInputs is < 1 or > 1_000_000)
        {
            return $"Scorer:Contamination:MaxFlaggedInputs must be 1..1000000, got {MaxFlaggedInputs}.";
        }

        try
        {
            ToPolicyOptions();
            return null;
        }
        catch (ArgumentException e)
        {
            return $"Scorer:Contamination: {e.Message}";
        }
    }
}
