using Attribution.Attribution.Contamination;
using Attribution.Contracts;

namespace Attribution.Scorer;

/// <summary>
/// Chooses the two-stage policy's threshold on a calibration split of clean queries (never the queries it is then
/// judged on): the queries are scored by the live model's readout, assessed by the policy as the Scorer assesses them
/// (<see cref="AlertPolicy.Assess"/>), and the threshold set so that at most the target share of them would alert
/// (<see cref="ContaminationCalibration.Calibrate"/>). Pure compute over the scorer given.
/// </summary>
public static class AlertCalibration
{
    /// <summary>
    /// <paramref name="policy"/> with its threshold calibrated on <paramref name="clean"/> for <paramref name="falseAlertRate"/>,
    /// and the clean queries' scores (for reporting). The queries are assessed on attribution evidence (no span stage).
    /// </summary>
    public static (AlertPolicy Policy, double[] CleanScores) Calibrate(IQueryScorer scorer, AlertPolicy policy, IReadOnlyList<ModelQuery> clean, double falseAlertRate,
        int batch = 64, FlaggedItems? flagged = null)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(clean);
        var evidence = Evidence(scorer, policy, clean, batch, flagged);
        var options = ContaminationCalibration.Calibrate(policy.Calibrated.Options, evidence, falseAlertRate);
        var calibrated = policy.With(options);
        return (calibrated, [.. evidence.Select(e => calibrated.Calibrated.Score(e.Span, e.Attribution))]);
    }

    /// <summary>
    /// <paramref name="policy"/> with its weights fitted (<see cref="ContaminationCalibration.Fit"/>, the evidence its
    /// options read) on a calibration split of <paramref name="leaked"/> queries (copies of flagged training items that
    /// are not among the queries the policy is then judged on) and <paramref name="clean"/> ones, and its threshold set
    /// for <paramref name="falseAlertRate"/> on the clean ones; with the calibration queries' scores under it. Feature
    /// queries are assessed with the live model's <paramref name="flagged"/> items when given (input and self-influence match).
    /// </summary>
    public static (AlertPolicy Policy, double[] CleanScores, double[] LeakedScores) Fit(IQueryScorer scorer, AlertPolicy policy, IReadOnlyList<ModelQuery> clean,
        IReadOnlyList<ModelQuery> leaked, double falseAlertRate, int batch = 64, FlaggedItems? flagged = null)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(leaked);
        return Fit(policy, Evidence(scorer, policy, clean, batch, flagged), Evidence(scorer, policy, leaked, batch, flagged), falseAlertRate);
    }

    /// <summary>
    /// <see cref="Fit(IQueryScorer, AlertPolicy, IReadOnlyList{ModelQuery}, IReadOnlyList{ModelQuery}, double, int, FlaggedItems)"/> on
    /// calibration evidence already assessed (<see cref="AlertPolicy.Assess"/>): the weights of the evidence the policy's options
    /// read, the threshold on the clean ones.
    /// </summary>
    public static (AlertPolicy Policy, double[] CleanScores, double[] LeakedScores) Fit(AlertPolicy policy, IReadOnlyList<(SpanEvidence Span, AttributionEvidence Attribution)> clean,
        IReadOnlyList<(SpanEvidence Span, AttributionEvidence Attribution)> leaked, double falseAlertRate)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(leaked);
        var fitted = ContaminationCalibration.Fit([.. clean, .. leaked], [.. clean.Select(_ => false), .. leaked.Select(_ => true)],
            policy.Calibrated.Options.Evidence, falseAlertRate) with { MaxEvidenceDocuments = policy.Calibrated.Options.MaxEvidenceDocuments };
        var calibrated = policy.With(fitted);
        return (calibrated, [.. clean.Select(e => calibrated.Calibrated.Score(e.Span, e.Attribution))], [.. leaked.Select(e => calibrated.Calibrated.Score(e.Span, e.Attribution))]);
    }

    // Each query's evidence as the Scorer assesses it (attribution, and the flagged items' input and self-influence match when given; no span stage).
    private static List<(SpanEvidence Span, AttributionEvidence Attribution)> Evidence(IQueryScorer scorer, AlertPolicy policy, IReadOnlyList<ModelQuery> queries, int batch,
        FlaggedItems? flagged)
    {
        var evidence = new List<(SpanEvidence Span, AttributionEvidence Attribution)>(queries.Count);
        for (int start = 0; start < queries.Count; start += batch)
        {
            var part = queries.Skip(start).Take(batch).ToArray();
            var scores = scorer.Score(part);
            for (int q = 0; q < part.Length; q++)
            {
                var a = policy.Assess(scores.ExampleRow(q).Span, scorer.ExampleNorms.Span, scorer.ExampleIds, scorer.ExampleSourceIds, null, part[q].Features, flagged);
                evidence.Add((a.Span, a.Attribution));
            }
        }

        return evidence;
    }
}
