using global::Attribution.Cli.Commands;

namespace Attribution.Integration.Tests.Services;

/// <summary>The statistics <c>bench gpt</c> states its verdict with: the exact sign test and the bootstrap interval of the
/// median per-round ratio.</summary>
public sealed class GptBenchStatisticsTests
{
    [Theory]
    [InlineData(30, 30, 1.862645149230957e-9)] // 2 * 0.5^30
    [InlineData(0, 30, 1.862645149230957e-9)]
    [InlineData(5, 10, 1.0)]
    [InlineData(8, 10, 0.109375)] // 2 * (45 + 10 + 1) / 1024
    [InlineData(1, 1, 1.0)]
    public void SignTest_is_the_exact_two_sided_binomial_tail(int faster, int rounds, double expected) =>
        Assert.Equal(expected, GptBench.SignTest(faster, rounds), 9);

    [Fact]
    public void Bootstrap_interval_holds_the_median_is_reproducible_and_narrows_with_more_rounds()
    {
        var rng = new global::Attribution.Engine.Rng(4);
        var few = Enumerable.Range(0, 8).Select(_ => 0.9 + (0.2 * rng.NextDouble())).ToList();
        var many = Enumerable.Range(0, 200).Select(_ => 0.9 + (0.2 * rng.NextDouble())).ToList();
        var (lo, hi) = GptBench.BootstrapMedian(few, 2000, seed: 11);
        Assert.InRange(GptBench.Median(few), lo, hi);
        Assert.Equal((lo, hi), GptBench.BootstrapMedian(few, 2000, seed: 11));
        var (lo2, hi2) = GptBench.BootstrapMedian(many, 2000, seed: 11);
        Assert.InRange(GptBench.Median(many), lo2, hi2);
        Assert.True(hi2 - lo2 < hi - lo, $"200 rounds [{lo2}, {hi2}] not narrower than 8 rounds [{lo}, {hi}]");
        Assert.Equal((1.0, 1.0), GptBench.BootstrapMedian([1.0, 1.0, 1.0], 500, seed: 1));
    }
}
