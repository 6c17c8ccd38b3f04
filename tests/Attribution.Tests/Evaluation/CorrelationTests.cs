using Attribution.Attribution.Evaluation;

namespace Attribution.Attribution.Tests.Evaluation;

public class CorrelationTests
{
    [Fact]
    public void Ranks_average_tied_values()
    {
        var ranks = new double[5];
        Correlation.Ranks([10, 20, 10, 30, 20], ranks);
        Assert.Equal([1.5, 3.5, 1.5, 5, 3.5], ranks);
    }

    [Fact]
    public void Spearman_with_ties_matches_hand_computed_value()
    {
        // ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: r = 4.5 / sqrt(4.5 * 5) = 0.948683298 (scipy.stats.spearmanr agrees).
        double r = Correlation.Spearman([1, 2, 2, 3], [1, 3, 2, 4]);
        Assert.Equal(0.9486832980505138, r, 12);
    }

    [Fact]
    public void Spearman_is_invariant_to_monotone_transforms_and_flips_sign_when_reversed()
    {
        double[] x = [0.3, -1.2, 4.0, 2.2, 0.0, 7.5];
        var y = x.Select(v => Math.Exp(v)).ToArray();
        var z = x.Select(v => -v * v * v).ToArray();
        Assert.Equal(1.0, Correlation.Spearman(x, y), 12);
        Assert.Equal(-1.0, Correlation.Spearman(x, z), 12);
    }

    [Fact]
    public void Pearson_matches_hand_computed_value()
    {
        // x centred [-1, 0, 1], y centred [-1, -1, 2]: r = 3 / sqrt(2 * 6).
        Assert.Equal(3 / Math.Sqrt(12), Correlation.Pearson([1, 2, 3], [1, 1, 4]), 12);
    }

    [Fact]
    public void Correlations_are_undefined_for_constant_or_tiny_samples()
    {
        Assert.True(double.IsNaN(Correlation.Pearson([1, 1, 1], [1, 2, 3])));
        Assert.True(double.IsNaN(Correlation.Spearman([1, 2, 3], [5, 5, 5])));
        Assert.True(double.IsNaN(Correlation.Pearson([1], [2])));
    }

    [Fact]
    public void Correlation_rejects_mismatched_lengths_and_nan()
    {
        Assert.Throws<ArgumentException>(() => Correlation.Pearson([1, 2], [1, 2, 3]));
        Assert.Throws<ArgumentException>(() => Correlation.Spearman([1, double.NaN], [1, 2]));
    }

    [Fact]
    public void Summary_skips_and_counts_undefined_queries()
    {
        var s = MetricSummary.FromPerQuery([0.2, double.NaN, 0.4, 0.6]);
        Assert.Equal(0.4, s.Mean, 12);
        Assert.Equal(0.2, s.Std, 12);
        Assert.Equal(1.96 * 0.2 / Math.Sqrt(3), s.Ci95, 12);
        Assert.Equal(3, s.Queries);
        Assert.Equal(1, s.Skipped);
    }

    [Fact]
    public void Percentiles_interpolate_like_numpy()
    {
        double[] v = [5, 1, 4, 2, 3];
        Assert.Equal(3.0, Percentiles.Of(v, 50), 12);
        Assert.Equal(4.96, Percentiles.Of(v, 99), 12);
        Assert.Equal(1.0, Percentiles.Of(v, 0), 12);
    }
}
