using Attribution.Attribution.Stride;
using Attribution.Engine;

namespace Attribution.Tests.Stride;

public class SubsetDesignTests
{
    [Theory]
    [InlineData(5000, 1000, 10)]
    [InlineData(997, 31, 7)]
    [InlineData(50, 10, 10)] // d = K: every example in every subset
    [InlineData(3, 100, 4)] // fewer slots than subsets: sizes 0 or 1
    public void EveryExampleIsInExactlyDDistinctSubsetsAndSubsetSizesDifferByAtMostOne(int n, int kk, int d)
    {
        var design = SubsetDesign.Create(n, kk, d, seed: 7);
        var size = new int[kk];
        for (int i = 0; i < n; i++)
        {
            var s = design.SubsetsOf(i);
            Assert.Equal(d, s.Length);
            for (int t = 1; t < d; t++)
            {
                Assert.True(s[t] > s[t - 1], $"example {i}: subsets not strictly ascending (repeat or unsorted)");
            }

            foreach (int k in s)
            {
                size[k]++;
            }
        }

        long slots = (long)n * d;
        int low = (int)(slots / kk);
        int high = low + (slots % kk == 0 ? 0 : 1);
        for (int k = 0; k < kk; k++)
        {
            Assert.InRange(size[k], low, high);
            var members = design.MembersOf(k);
            Assert.Equal(size[k], members.Length);
            for (int t = 0; t < members.Length; t++)
            {
                Assert.True(t == 0 || members[t] > members[t - 1]);
                Assert.Contains(k, design.SubsetsOf(members[t]).ToArray()); // the two sparse views agree
            }
        }
    }

    [Fact]
    public void SameSeedGivesTheSameDesignAndAnotherSeedADifferentOne()
    {
        var a = SubsetDesign.Create(2000, 300, 10, seed: 42);
        var b = SubsetDesign.Create(2000, 300, 10, seed: 42);
        var c = SubsetDesign.Create(2000, 300, 10, seed: 43);
        Assert.True(a.MembershipByExample.SequenceEqual(b.MembershipByExample));
        Assert.False(a.MembershipByExample.SequenceEqual(c.MembershipByExample));
        Assert.Equal(42UL, a.Seed);
    }

    [Fact]
    public void RandomSmallSetsTouchAtLeastFiveSixthsOfTheirSlots()
    {
        // Berinde et al.'s guarantee needs a (2k, ε)-expander with ε < 1/6: |N(S)| ≥ (1 − ε)·|S|·d for |S| ≤ 2k.
        // On the paper's K = 1000, d = 10 design (n = 5,000) random sets up to 20 examples must keep 5/6 of their slots.
        var design = SubsetDesign.Create(5000, 1000, 10, seed: 3);
        var rng = new Rng(11);
        foreach (int s in new[] { 2, 5, 10, 20 })
        {
            double worst = 1;
            for (int trial = 0; trial < 2000; trial++)
            {
                int[] set = rng.Permutation(5000)[..s];
                worst = Math.Min(worst, design.NeighbourhoodSize(set) / (double)(s * 10));
            }

            Assert.True(worst >= 5.0 / 6.0, $"|S| = {s}: worst |N(S)|/(|S|·d) = {worst:F3} < 5/6");
        }
    }

    [Fact]
    public void SecondSingularValueIsNearTheRamanujanBoundOfABiregularGraph()
    {
        // M (K×n) of a left-d, right-D regular graph has σ₁ = √(dD) (constant vectors); a good expander keeps the rest
        // of the spectrum near √(d−1) + √(D−1). n = 2,000, K = 200, d = 10 → D = 100: σ₁ = 31.6, bound 12.95.
        const int n = 2000, kk = 200, d = 10;
        var design = SubsetDesign.Create(n, kk, d, seed: 5);
        var v = new double[kk];
        var t = new double[n];
        var rng = new Rng(1);
        for (int k = 0; k < kk; k++)
        {
            v[k] = rng.NextNormal();
        }

        double lambda = 0;
        for (int it = 0; it < 400; it++)
        {
            // v ← P M Mᵀ P v, P = I − 11ᵀ/K removes the top (constant) direction.
            double mean = v.Average();
            for (int k = 0; k < kk; k++)
            {
                v[k] -= mean;
            }

            design.MultiplyTransposed(v, t);
            design.Multiply(t, v);
            mean = v.Average();
            for (int k = 0; k < kk; k++)
            {
                v[k] -= mean;
            }

            double norm = Math.Sqrt(v.Sum(x => x * x));
            lambda = norm;
            for (int k = 0; k < kk; k++)
            {
                v[k] /= norm;
            }
        }

        double sigma2 = Math.Sqrt(lambda);
        double bound = Math.Sqrt(d - 1) + Math.Sqrt((n * d / kk) - 1);
        Assert.True(sigma2 <= 1.1 * bound, $"σ₂ = {sigma2:F2} above 1.1 × the Ramanujan bound {bound:F2}");
        Assert.True(sigma2 / Math.Sqrt(d * n * d / (double)kk) < 0.45, $"σ₂/σ₁ = {sigma2 / 31.62:F3}: spectral gap too small");
    }

    [Theory]
    [InlineData(0, 10, 2)]
    [InlineData(10, 0, 2)]
    [InlineData(10, 5, 0)]
    [InlineData(10, 5, 6)]
    public void ImpossibleSizesThrowWithTheValues(int n, int kk, int d)
    {
        var e = Assert.Throws<ArgumentException>(() => SubsetDesign.Create(n, kk, d, 1));
        Assert.Contains($"K = {kk}", e.Message);
    }
}
