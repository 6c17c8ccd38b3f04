namespace Attribution.Attribution.Evaluation;

/// <summary>
/// A per-query metric averaged over queries (shared/docs/evaluation.md §1): undefined queries (NaN) are skipped and
/// counted, never silently folded in.
/// </summary>
/// <param name="Mean">Mean over the defined queries (NaN when none is defined).</param>
/// <param name="Std">Sample standard deviation across defined queries.</param>
/// <param name="Ci95">Half-width of the normal-approximation 95% confidence interval of the mean (1.96·std/√n).</param>
/// <param name="Queries">Number of queries that contributed.</param>
/// <param name="Skipped">Number of queries skipped because the metric was undefined for them.</param>
/// <param name="PerQuery">The metric of every query, NaN where skipped.</param>
public sealed record MetricSummary(double Mean, double Std, double Ci95, int Queries, int Skipped, double[] PerQuery)
{
    /// <summary>Summarises per-query values, skipping NaN.</summary>
    public static MetricSummary FromPerQuery(double[] perQuery)
    {
        ArgumentNullException.ThrowIfNull(perQuery);
        int n = 0;
        double sum = 0;
        foreach (var v in perQuery)
        {
            if (!double.IsNaN(v))
            {
                n++;
                sum += v;
            }
        }

        double mean = n == 0 ? double.NaN : sum / n;
        double ss = 0;
        foreach (var v in perQuery)
        {
            if (!double.IsNaN(v))
            {
                ss += (v - mean) * (v - mean);
            }
        }

        double std = n > 1 ? Math.Sqrt(ss / (n - 1)) : double.NaN;
        double ci = n > 1 ? 1.96 * std / Math.Sqrt(n) : double.NaN;
        return new MetricSummary(mean, std, ci, n, perQuery.Length - n, perQuery);
    }
}

/// <summary>Order statistics for latency reports.</summary>
public static class Percentiles
{
    /// <summary>The p-th percentile (0..100) with linear interpolation between order statistics (NumPy's default).</summary>
    public static double Of(ReadOnlySpan<double> values, double p)
    {
        if (values.IsEmpty)
        {
            throw new ArgumentException("percentile of an empty sample is undefined.", nameof(values));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(p, 0.0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(p, 100.0);
        var sorted = values.ToArray();
        Array.Sort(sorted);
        double pos = p / 100.0 * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + ((pos - lo) * (sorted[hi] - sorted[lo]));
    }
}
