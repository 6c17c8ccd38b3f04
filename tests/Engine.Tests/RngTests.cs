namespace Attribution.Engine.Tests;

public class RngTests
{
    [Fact]
    public void Stream_MatchesXoshiro256StarStarSeededBySplitMix64()
    {
        // Reference values computed independently (Python big-int implementation of the published algorithms).
        var rng = new Rng(42);
        Assert.Equal(0x15780b2e0c2ec716UL, rng.NextUInt64());
        Assert.Equal(0x6104d9866d113a7eUL, rng.NextUInt64());
        Assert.Equal(0xae17533239e499a1UL, rng.NextUInt64());
    }

    [Fact]
    public void SameSeed_GivesIdenticalFloatBits()
    {
        var a = new float[1000];
        var b = new float[1000];
        new Rng(7).FillNormal(a, 0f, 0.02f);
        new Rng(7).FillNormal(b, 0f, 0.02f);
        Assert.Equal(a, b);
        var c = new float[1000];
        new Rng(8).FillNormal(c, 0f, 0.02f);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void NextInt_StaysInRangeAndCoversIt()
    {
        var rng = new Rng(1);
        var seen = new int[7];
        for (int i = 0; i < 7000; i++)
        {
            int v = rng.NextInt(7);
            Assert.InRange(v, 0, 6);
            seen[v]++;
        }

        // Each bucket expects 1000; 5 sigma is ~150.
        Assert.All(seen, count => Assert.InRange(count, 850, 1150));
        Assert.Throws<ArgumentOutOfRangeException>(() => rng.NextInt(0));
    }

    [Fact]
    public void NormalSamples_HaveUnitMomentsWithinSamplingError()
    {
        var x = new float[20000];
        new Rng(3).FillNormal(x);
        double mean = x.Average(v => (double)v);
        double var = x.Average(v => (v - mean) * (v - mean));
        Assert.InRange(mean, -0.03, 0.03);
        Assert.InRange(var, 0.96, 1.04);
    }

    [Fact]
    public void Permutation_IsAPermutation()
    {
        var p = new Rng(5).Permutation(100);
        Assert.Equal(Enumerable.Range(0, 100), p.Order());
        Assert.NotEqual(Enumerable.Range(0, 100), p);
    }
}
