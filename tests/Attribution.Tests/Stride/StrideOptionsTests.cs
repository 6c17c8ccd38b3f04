using Attribution.Attribution;
using Attribution.Attribution.Stride;

namespace Attribution.Tests.Stride;

public class StrideOptionsTests
{
    // The size-aware default K = 2n in [1000, 10000] (docs/benchmarks/stride-kscale.md); an explicit k is kept as given.
    [Theory]
    [InlineData(0, 100, 1000)]
    [InlineData(0, 1000, 2000)]
    [InlineData(0, 5000, 10_000)]
    [InlineData(0, 60_000, 10_000)]
    [InlineData(512, 256, 512)]
    [InlineData(8000, 1000, 8000)]
    public void Subsets_default_to_twice_the_examples_within_bounds(int k, int examples, int expected)
    {
        Assert.Equal(expected, new StrideOptions { Subsets = k }.SubsetsFor(examples));
    }

    [Fact]
    public void Default_is_size_aware_and_bad_k_is_refused()
    {
        Assert.Equal(0, new StrideOptions().Subsets);
        Assert.Contains("2n in [1000, 10000]", new StrideMethod().Describe());
        Assert.Contains("K = 300,", MethodFactory.Create("stride", new Dictionary<string, string> { ["k"] = "300" }).Describe());
        Assert.Contains("K ≥ 2", Assert.Throws<ArgumentException>(() => new StrideOptions { Subsets = 1 }.Validate()).Message);
        Assert.Contains("K ≥ 2", Assert.Throws<ArgumentException>(() => new StrideOptions { Subsets = -5 }.Validate()).Message);
        Assert.Contains("d = 2000", Assert.Throws<ArgumentException>(() => new StrideOptions { Degree = 2000 }.Validate()).Message);
    }
}
