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
        int batch = 64)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(clean);
        var evidence = new List<(SpanEvidence Span, AttributionEvidence Attribution)>(clean.Count);
        for (int start = 0; start < clean.Count; start += batch)
        {
            var part = clean.Skip(start).Take(batch).ToArray();
            var scores = scorer.Score(part);
            for (int q = 0; q < part.Length; q++)
            {
                var a = policy.Assess(scores.ExampleRow(q).Span, scorer.ExampleNorms.Span, scorer.ExampleIds, scorer.ExampleSourceIds, null);
                evidence.Add((a.Span, a.Attribution));
            }
        }

        var options = ContaminationCalibration.Calibrate(policy.Calibrated.Options, evidence, falseAlertRate);
        var calibrated = policy.With(options);
        return (calibrated, [.. evidence.Select(e => calibrated.Calibrated.Score(e.Span, e.Attribution))]);
    }
}
