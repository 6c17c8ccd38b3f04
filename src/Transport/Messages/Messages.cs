namespace Attribution.Transport.Messages;

/// <summary>
/// Published by the Scorer when the attribution mass of a query on flagged training data passes a threshold.
/// Carried by the alert bus (MassTransit, in-memory or RabbitMQ), not by the event log.
/// </summary>
public sealed record ContaminationAlertMessage
{
    /// <summary>Id of the live query that triggered the alert.</summary>
    public required string QueryId { get; init; }

    /// <summary>Model version (checkpoint step or tag) that answered the query.</summary>
    public required string ModelVersion { get; init; }

    /// <summary>Which rule fired (see <see cref="AlertRule"/>); <see cref="Score"/> is that rule's value.</summary>
    public required AlertRule Rule { get; init; }

    /// <summary>
    /// Flagged source ids with positive attribution for the query (<see cref="AlertRule.SourceShare"/>: the sources whose
    /// share passed the threshold; empty for <see cref="AlertRule.ExampleLead"/>).
    /// </summary>
    public IReadOnlyList<long> FlaggedSourceIds { get; init; } = [];

    /// <summary>The flagged training example that leads the query (<see cref="AlertRule.ExampleLead"/>); empty otherwise.</summary>
    public IReadOnlyList<long> FlaggedExampleIds { get; init; } = [];

    /// <summary>The rule's value (see <see cref="Rule"/>).</summary>
    public required double Score { get; init; }

    /// <summary>Threshold the score passed.</summary>
    public required double Threshold { get; init; }

    /// <summary>When the alert was raised.</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>What the alert rests on (<see cref="AlertRule.Calibrated"/>; null for the other rules).</summary>
    public AlertEvidence? Evidence { get; init; }
}

/// <summary>
/// The evidence of a <see cref="AlertRule.Calibrated"/> alert: the longest exact span the query shares with the training
/// corpus (stage one) and the attribution evidence (stage two) that went into its calibrated score.
/// </summary>
public sealed record AlertEvidence
{
    /// <summary>The matched span as text (decoded with the model's tokenizer); empty when no span was found.</summary>
    public string MatchedSpan { get; init; } = "";

    /// <summary>The matched span's token ids.</summary>
    public IReadOnlyList<int> MatchedTokenIds { get; init; } = [];

    /// <summary>Position of the span in the query's tokens (prompt then completion).</summary>
    public int SpanStart { get; init; }

    /// <summary>Span length in tokens (0: none).</summary>
    public int SpanLength { get; init; }

    /// <summary>Occurrences of the span in the training corpus (1 = unique).</summary>
    public int SpanCount { get; init; }

    /// <summary>Training documents holding the span, then flagged documents by influence (distinct, capped).</summary>
    public IReadOnlyList<long> DocumentIds { get; init; } = [];

    /// <summary>Source of each of <see cref="DocumentIds"/> (−1 where the Scorer does not know it).</summary>
    public IReadOnlyList<long> DocumentSourceIds { get; init; } = [];

    /// <summary>Share of the query's positive influence on flagged documents (the span's documents and any flagged by configuration), 0..1.</summary>
    public double AttributionShare { get; init; }

    /// <summary>The most influential training document and its share of the positive influence.</summary>
    public long TopDocumentId { get; init; } = -1;

    /// <summary>The top document's share of the positive influence, 0..1.</summary>
    public double TopDocumentShare { get; init; }
}

/// <summary>The contamination rule that raised a <see cref="ContaminationAlertMessage"/>. Values are a wire contract: only add.</summary>
public enum AlertRule
{
    /// <summary>Flagged sources carry at least the threshold share of the query's positive source attribution (Score = that share).</summary>
    SourceShare = 0,

    /// <summary>The example with the highest relative influence (score ÷ ‖response‖) is flagged and leads the runner-up by the ratio (Score = the lead).</summary>
    ExampleLead = 1,

    /// <summary>The two-stage policy: span and attribution evidence combined into one calibrated score (Score, 0..1) above its threshold; the alert carries its <see cref="ContaminationAlertMessage.Evidence"/>.</summary>
    Calibrated = 2,
}

/// <summary>Control event: the Simulator finished publishing the probes of a run up to a training step.</summary>
public sealed record ProbeSetCompleteMessage
{
    /// <summary>Training run id.</summary>
    public required string RunId { get; init; }

    /// <summary>Number of probes in the set.</summary>
    public required long ProbeCount { get; init; }

    /// <summary>Training step the probe set covers.</summary>
    public required long Step { get; init; }
}
