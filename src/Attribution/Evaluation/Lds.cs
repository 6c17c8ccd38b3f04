namespace Attribution.Attribution.Evaluation;

/// <summary>
/// Linear Datamodeling Score (TRAK; shared/docs/evaluation.md §2): per query, the Spearman correlation over subsets
/// between the predicted output <c>g_j(q) = Σ_{i∈S_j} S[i, q]</c> and the actual output of the model retrained on
/// <c>S_j</c>; averaged over queries.
/// </summary>
public static class Lds
{
    /// <summary>
    /// Predicted outputs [m, q] (row j = subset j): sums of each subset's member scores, accumulated in double.
    /// <paramref name="scores"/> is row-major [q, n] as in <see cref="ScoreMatrix.Scores"/>.
    /// </summary>
    public static double[] Predict(ReadOnlySpan<float> scores, int queryCount, int exampleCount, IReadOnlyList<int[]> subsets)
    {
        ArgumentNullException.ThrowIfNull(subsets);
        if (scores.Length != (long)queryCount * exampleCount)
        {
            throw new ArgumentException($"scores hold {scores.Length} values for {queryCount} queries × {exampleCount} examples.", nameof(scores));
        }

        int m = subsets.Count;
        var predicted = new double[m * queryCount];
        for (int j = 0; j < m; j++)
        {
            var subset = subsets[j];
            foreach (var i in subset)
            {
                if ((uint)i >= (uint)exampleCount)
                {
                    throw new ArgumentException($"subset {j} holds training index {i}, outside the score matrix's 0..{exampleCount - 1}.", nameof(subsets));
                }
            }

            for (int q = 0; q < queryCount; q++)
            {
                var row = scores.Slice(q * exampleCount, exampleCount);
                double s = 0;
                foreach (var i in subset)
                {
                    s += row[i];
                }

                predicted[(j * queryCount) + q] = s;
            }
        }

        return predicted;
    }

    /// <summary>
    /// LDS of a score matrix against actual outputs [m, q] (row j = the model trained on subset j; a margin, or
    /// <c>−loss</c> for loss targets: the caller applies the sign rule).
    /// </summary>
    public static MetricSummary Compute(ScoreMatrix scores, IReadOnlyList<int[]> subsets, double[] actual)
    {
        ArgumentNullException.ThrowIfNull(scores);
        var predicted = Predict(scores.Scores, scores.QueryCount, scores.ExampleCount, subsets);
        return Correlate(predicted, actual, subsets.Count, scores.QueryCount);
    }

    /// <summary>
    /// Per-query Spearman across the m rows of two [m, q] matrices, summarised over queries. A query with a non-finite
    /// prediction (a method that returned NaN or ∞ scores for it) has no rank order: it counts as skipped, so one
    /// broken query neither aborts a benchmark run nor enters the mean (callers report how many scores were non-finite).
    /// </summary>
    public static MetricSummary Correlate(double[] predicted, double[] actual, int subsetCount, int queryCount)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(actual);
        if (predicted.Length != (long)subsetCount * queryCount || actual.Length != predicted.Length)
        {
            throw new ArgumentException($"predicted ({predicted.Length}) and actual ({actual.Length}) must both be {subsetCount} subsets × {queryCount} queries.", nameof(actual));
        }

        var perQuery = new double[queryCount];
        var x = new double[subsetCount];
        var y = new double[subsetCount];
        for (int q = 0; q < queryCount; q++)
        {
            for (int j = 0; j < subsetCount; j++)
            {
                x[j] = predicted[(j * queryCount) + q];
                y[j] = actual[(j * queryCount) + q];
            }

            perQuery[q] = Array.TrueForAll(x, double.IsFinite) ? Correlation.Spearman(x, y) : double.NaN;
        }

        return MetricSummary.FromPerQuery(perQuery);
    }

    /// <summary>
    /// Noise ceiling (evaluation.md §7): the LDS-style Spearman between two independent retraining draws of the same
    /// subsets, e.g. seed 0 and seed 1 of every subset model. No method can be expected to exceed it.
    /// </summary>
    public static MetricSummary NoiseCeiling(double[] outputsA, double[] outputsB, int subsetCount, int queryCount)
        => Correlate(outputsA, outputsB, subsetCount, queryCount);
}
