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

    /// <summary>Flagged training example or source ids that carried the attribution mass.</summary>
    public required IReadOnlyList<string> FlaggedIds { get; init; }

    /// <summary>
    /// Which rule fired: <c>source-share</c> (Score = flagged sources' share of the positive source mass) or
    /// <c>example-lead</c> (Score = the flagged top example's relative influence ÷ the runner-up's).
    /// </summary>
    public string Rule { get; init; } = "source-share";

    /// <summary>The rule's value (see <see cref="Rule"/>).</summary>
    public required double Score { get; init; }

    /// <summary>Threshold the score passed.</summary>
    public required double Threshold { get; init; }

    /// <summary>When the alert was raised.</summary>
    public required DateTimeOffset Timestamp { get; init; }
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
