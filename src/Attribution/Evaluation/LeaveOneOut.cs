namespace Attribution.Attribution.Evaluation;

/// <summary>
/// Leave-one-out ground truth (shared/docs/evaluation.md §3): <c>Delta[k, q] = f_q(θ_{−i_k}) − f_q(θ)</c> for each
/// removed training index <c>i_k</c>, outputs averaged over the same seeds for the full and the removal models.
/// </summary>
public sealed record LooGroundTruth(int[] Removed, int[] Seeds, int QueryCount, double[] Full, double[] Delta);

/// <summary>LOO retraining and its correlation with predicted removal effects.</summary>
public static class LeaveOneOut
{
    /// <summary>Retrains without each index in <paramref name="removed"/> (and once on the full pool) for every seed.</summary>
    public static LooGroundTruth Run(int poolSize, int[] removed, int[] seeds, int queryCount, RetrainAndMeasure retrain,
        IProgress<RetrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(removed);
        ArgumentNullException.ThrowIfNull(seeds);
        ArgumentNullException.ThrowIfNull(retrain);
        SubsetPlan.ValidateIndices(removed, poolSize, "LOO removal set");
        int total = (removed.Length + 1) * seeds.Length;
        var full = RetrainingHarness.RunFull(poolSize, seeds, queryCount, retrain, cancellationToken);
        progress?.Report(new RetrainProgress(seeds.Length, total, "LOO"));
        var delta = new double[removed.Length * queryCount];
        for (int k = 0; k < removed.Length; k++)
        {
            var without = RetrainingHarness.MeanOverSeeds(RetrainingHarness.Complement(poolSize, [removed[k]]), seeds, queryCount, retrain, cancellationToken);
            for (int q = 0; q < queryCount; q++)
            {
                delta[(k * queryCount) + q] = without[q] - full[q];
            }

            progress?.Report(new RetrainProgress((k + 2) * seeds.Length, total, "LOO"));
        }

        return new LooGroundTruth(removed, seeds, queryCount, full, delta);
    }

    /// <summary>
    /// Per query, the <b>Pearson</b> correlation (dattri's choice) across removed examples between the predicted
    /// removal effect <c>−S[i, q]</c> (removing a helpful example lowers the output) and the measured <c>Δ_i(q)</c>.
    /// A correctly signed method gives positive values.
    /// </summary>
    public static MetricSummary Correlate(ScoreMatrix scores, LooGroundTruth truth)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(truth);
        if (scores.QueryCount != truth.QueryCount)
        {
            throw new ArgumentException($"scores cover {scores.QueryCount} queries; the LOO ground truth covers {truth.QueryCount}.", nameof(truth));
        }

        int r = truth.Removed.Length;
        var perQuery = new double[truth.QueryCount];
        var x = new double[r];
        var y = new double[r];
        for (int q = 0; q < truth.QueryCount; q++)
        {
            var row = scores.Row(q);
            for (int k = 0; k < r; k++)
            {
                int i = truth.Removed[k];
                if ((uint)i >= (uint)scores.ExampleCount)
                {
                    throw new ArgumentException($"LOO removed index {i} is outside the score matrix's 0..{scores.ExampleCount - 1}.", nameof(truth));
                }

                x[k] = -row[i];
                y[k] = truth.Delta[(k * truth.QueryCount) + q];
            }

            perQuery[q] = Correlation.Pearson(x, y);
        }

        return MetricSummary.FromPerQuery(perQuery);
    }
}
