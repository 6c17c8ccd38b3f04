using Attribution.Attribution.Stride;
using Attribution.Engine;

namespace Attribution.Tests.Stride;

public class LassoRecoveryTests
{
    /// <summary>A k-sparse x* with entries ±(1..2) on random examples (or positive only), and y = b + M·x* + σ·noise.</summary>
    private static (double[] X, double[] Y) Planted(SubsetDesign design, int k, double sigma, ulong seed, bool positive = false, double intercept = 0.3)
    {
        var rng = new Rng(seed);
        var x = new double[design.Examples];
        foreach (int j in rng.Permutation(design.Examples)[..k])
        {
            double mag = 1 + rng.NextDouble();
            x[j] = positive || rng.NextDouble() < 0.5 ? mag : -mag;
        }

        var y = new double[design.Subsets];
        design.Multiply(x, y);
        for (int i = 0; i < y.Length; i++)
        {
            y[i] += intercept + (sigma * rng.NextNormal());
        }

        return (x, y);
    }

    /// <summary>Dense centred residual r = y_c − C x and gradient Cᵀ r, written out the slow way.</summary>
    private static (double[] Gradient, double[] Residual) DenseGradient(SubsetDesign design, double[] y, double[] x)
    {
        int kk = design.Subsets, n = design.Examples, d = design.Degree;
        double yMean = y.Average();
        var c = new double[kk, n];
        for (int j = 0; j < n; j++)
        {
            for (int k = 0; k < kk; k++)
            {
                c[k, j] = -(double)d / kk;
            }

            foreach (int k in design.SubsetsOf(j))
            {
                c[k, j] += 1;
            }
        }

        var r = new double[kk];
        for (int k = 0; k < kk; k++)
        {
            r[k] = y[k] - yMean;
            for (int j = 0; j < n; j++)
            {
                r[k] -= c[k, j] * x[j];
            }
        }

        var g = new double[n];
        for (int j = 0; j < n; j++)
        {
            for (int k = 0; k < kk; k++)
            {
                g[j] += c[k, j] * r[k];
            }
        }

        return (g, r);
    }

    private static float[] ToFloat(double[] y) => [.. y.Select(v => (float)v)];

    [Fact]
    public void LambdaAtOrAboveLambdaMaxGivesAllZeroAndJustBelowDoesNot()
    {
        var design = SubsetDesign.Create(400, 120, 6, seed: 1);
        var (_, y) = Planted(design, 5, 0.05, seed: 2);
        var lasso = new LassoRecovery(design);
        double lmax = lasso.LambdaMax(y);
        Assert.True(lmax > 0);
        Assert.All(lasso.Solve(y, lmax).Weights, w => Assert.Equal(0.0, w));
        Assert.All(lasso.Solve(y, 3 * lmax).Weights, w => Assert.Equal(0.0, w));
        Assert.True(lasso.Solve(y, 0.99 * lmax).NonZeros >= 1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SolutionSatisfiesTheKktConditionsOfTheCentredProblem(bool nonnegative)
    {
        // Optimality of ½‖y_c − C x‖² + λ‖x‖₁: c_jᵀr = λ·sign(x_j) where x_j ≠ 0, |c_jᵀr| ≤ λ where x_j = 0
        // (non-negative: c_jᵀr = λ where x_j > 0, c_jᵀr ≤ λ where x_j = 0). Checked against a dense residual.
        var design = SubsetDesign.Create(300, 80, 5, seed: 4);
        var (_, y) = Planted(design, 8, 0.3, seed: 5);
        var lasso = new LassoRecovery(design, new LassoOptions { Nonnegative = nonnegative, Tolerance = 1e-12 });
        double lambda = 0.05 * lasso.LambdaMax(y);
        var fit = lasso.Solve(y, lambda);
        var (g, _) = DenseGradient(design, y, fit.Weights);
        double tol = 1e-5 * lambda;
        Assert.InRange(fit.NonZeros, 5, 80);
        for (int j = 0; j < design.Examples; j++)
        {
            double x = fit.Weights[j];
            if (x != 0)
            {
                Assert.True(!nonnegative || x > 0);
                Assert.Equal(lambda * Math.Sign(x), g[j], tol);
            }
            else
            {
                Assert.True((nonnegative ? g[j] : Math.Abs(g[j])) <= lambda + tol, $"example {j}: |g| = {g[j]} > λ = {lambda}");
            }
        }
    }

    [Fact]
    public void AgreesWithProximalGradientOnATinyDenseProblem()
    {
        // Slow reference: 200,000 ISTA steps on the dense centred matrix (a different algorithm, same objective).
        var design = SubsetDesign.Create(9, 7, 3, seed: 9);
        var rng = new Rng(10);
        var y = new double[7];
        for (int k = 0; k < 7; k++)
        {
            y[k] = rng.NextNormal();
        }

        var lasso = new LassoRecovery(design, new LassoOptions { Tolerance = 1e-14 });
        double lambda = 0.2 * lasso.LambdaMax(y);
        var fit = lasso.Solve(y, lambda);

        var x = new double[9];
        const double step = 1.0 / 30; // ≤ 1/‖C‖² (‖C‖² ≤ ‖M‖² ≤ max row sum · max column sum = 5·3)
        for (int it = 0; it < 200_000; it++)
        {
            var (g, _) = DenseGradient(design, y, x);
            for (int j = 0; j < 9; j++)
            {
                double z = x[j] + (step * g[j]);
                x[j] = Math.Sign(z) * Math.Max(0, Math.Abs(z) - (step * lambda));
            }
        }

        double Objective(double[] w) => (0.5 * DenseGradient(design, y, w).Residual.Sum(r => r * r)) + (lambda * w.Sum(Math.Abs));
        Assert.Equal(Objective(x), Objective(fit.Weights), 1e-10);
        for (int j = 0; j < 9; j++)
        {
            Assert.Equal(x[j], fit.Weights[j], 1e-6);
        }

        // The intercept reproduces the mean: b + mean(M x) = mean(y).
        var mx = new double[7];
        design.Multiply(fit.Weights, mx);
        Assert.Equal(y.Average(), fit.Intercept + mx.Average(), 1e-12);
    }

    [Fact]
    public void RecoversAPlantedSparseVectorExactlyFromNoiselessMeasurements()
    {
        // Paper-sized design (K = 1000, d = 10) at n = 5,000 and k = 40 non-zeros (design target ≈ 50): with λ → 0 the
        // Lasso tends to the ℓ1 minimiser, which the expander makes equal to x*. The intercept (0.3) is recovered too.
        var design = SubsetDesign.Create(5000, 1000, 10, seed: 21);
        var (x, y) = Planted(design, 40, 0, seed: 22);
        var lasso = new LassoRecovery(design, new LassoOptions { Tolerance = 1e-12, PathMinRatio = 1e-5, PathLength = 40 });
        var fit = lasso.Solve(y, 1e-5 * lasso.LambdaMax(y));
        double maxError = 0;
        for (int j = 0; j < x.Length; j++)
        {
            maxError = Math.Max(maxError, Math.Abs(fit.Weights[j] - x[j]));
        }

        Assert.True(maxError < 1e-3, $"max |ŵ − x*| = {maxError:E2}");
        Assert.Equal(0.3, fit.Intercept, 1e-3);
    }

    [Fact]
    public void NoisyRecoveryWithHeldOutLambdaStaysWithinTheNoiseLevelAndBeatsTheDenseFallback()
    {
        // σ = 0.1 per measurement against signal entries of 1..2: cross-validated λ must give relative ℓ2 error ≤ 0.25,
        // put every planted example in the top 40 of its scores, and beat the dense back-projection Mᵀy_c/d.
        var design = SubsetDesign.Create(5000, 1000, 10, seed: 31);
        var (x, y) = Planted(design, 40, 0.1, seed: 32);
        var fit = new LassoRecovery(design).Recover(ToFloat(y));
        double err = 0, norm = 0;
        for (int j = 0; j < x.Length; j++)
        {
            err += (fit.Weights[j] - x[j]) * (fit.Weights[j] - x[j]);
            norm += x[j] * x[j];
        }

        double rel = Math.Sqrt(err / norm);
        Assert.True(rel < 0.25, $"relative ℓ2 error {rel:F3}");
        Assert.True(fit.Lambda < fit.LambdaMax && fit.Lambda > 0);
        // The chosen λ is the held-out minimum, and the walk stopped CvPatience (5) values past it.
        var cvError = fit.HeldOutError!;
        int chosen = fit.PathLambdas.Length - 1;
        Assert.Equal(cvError.Where(double.IsFinite).Min(), cvError[chosen]);
        Assert.Equal(Math.Min(chosen + 6, cvError.Length), cvError.Count(double.IsFinite));

        var top = Enumerable.Range(0, x.Length).OrderByDescending(j => Math.Abs(fit.Weights[j])).Take(40).ToHashSet();
        Assert.All(Enumerable.Range(0, x.Length).Where(j => x[j] != 0), j => Assert.Contains(j, top));

        double mean = y.Average();
        var dense = new double[x.Length];
        design.MultiplyTransposed([.. y.Select(v => v - mean)], dense);
        double denseErr = 0;
        for (int j = 0; j < x.Length; j++)
        {
            denseErr += ((dense[j] / 10) - x[j]) * ((dense[j] / 10) - x[j]);
        }

        Assert.True(err < 0.1 * denseErr, $"Lasso error {err:F3} not 10x below the dense fallback's {denseErr:F3}");
    }

    [Fact]
    public void FixedFractionRuleStopsAtThatFractionOfLambdaMax()
    {
        var design = SubsetDesign.Create(1000, 200, 8, seed: 41);
        var (_, y) = Planted(design, 10, 0.05, seed: 42);
        var fit = new LassoRecovery(design, new LassoOptions { Rule = LambdaRule.FixedFraction, FixedFraction = 0.1 }).Recover(ToFloat(y));
        Assert.Equal(0.1 * fit.LambdaMax, fit.Lambda, 1e-9 * fit.LambdaMax);
        Assert.Null(fit.HeldOutError);
        Assert.Equal(fit.Lambda, fit.PathLambdas[^1]);
    }

    [Fact]
    public void InfinitePenaltyExcludesAnExampleAndNonnegativeKeepsScoresNonnegative()
    {
        var design = SubsetDesign.Create(1000, 200, 8, seed: 51);
        var (x, y) = Planted(design, 10, 0.01, seed: 52);
        int planted = Array.FindIndex(x, v => v != 0);
        var factors = Enumerable.Repeat(1.0, 1000).ToArray();
        factors[planted] = double.PositiveInfinity;
        var lasso = new LassoRecovery(design, new LassoOptions { Nonnegative = true });
        var fit = lasso.Recover(ToFloat(y), factors);
        Assert.Equal(0.0, fit.Weights[planted]);
        Assert.All(fit.Weights, w => Assert.True(w >= 0));
        Assert.True(new LassoRecovery(design).Recover(ToFloat(y)).Weights[planted] != 0);
    }

    [Fact]
    public void BatchEqualsOneQueryAtATime()
    {
        var design = SubsetDesign.Create(800, 150, 6, seed: 61);
        var lasso = new LassoRecovery(design);
        var ys = new float[3 * 150];
        for (int q = 0; q < 3; q++)
        {
            ToFloat(Planted(design, 6, 0.05, seed: (ulong)(70 + q)).Y).CopyTo(ys, q * 150);
        }

        var scores = new float[3 * 800];
        lasso.RecoverBatch(ys, 3, scores);
        for (int q = 0; q < 3; q++)
        {
            var single = lasso.Recover(ys.AsSpan(q * 150, 150)).Weights;
            for (int j = 0; j < 800; j++)
            {
                Assert.Equal((float)single[j], scores[(q * 800) + j]);
            }
        }
    }

    [Fact]
    public void BadMeasurementsThrowSayingWhatIsWrong()
    {
        var design = SubsetDesign.Create(100, 20, 4, seed: 1);
        var lasso = new LassoRecovery(design);
        Assert.Contains("K = 20", Assert.Throws<ArgumentException>(() => lasso.Recover(new float[19])).Message);
        var bad = new float[20];
        bad[3] = float.NaN;
        Assert.Contains("measurement 3", Assert.Throws<ArgumentException>(() => lasso.Recover(bad)).Message);
        Assert.Contains("penalty factor 0", Assert.Throws<ArgumentException>(() => lasso.Recover(new float[20], new double[100])).Message);
        Assert.Throws<ArgumentException>(() => new LassoRecovery(design, new LassoOptions { Folds = 1 }));
    }
}
