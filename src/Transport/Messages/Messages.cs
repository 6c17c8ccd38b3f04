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
}

/// <summary>The contamination rule that raised a <see cref="ContaminationAlertMessage"/>. Values are a wire contract: only add.</summary>
public enum AlertRule
{
    /// <summary>Flagged sources carry at least the threshold share of the query's positive source attribution (Score = that share).</summary>
    SourceShare = 0,

    /// <summary>The example with the highest relative influence (score ÷ ‖response‖) is flagged and leads the runner-up by the ratio (Score = the lead).</summary>
    ExampleLead = 1,
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
