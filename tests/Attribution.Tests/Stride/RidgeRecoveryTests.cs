using Attribution.Attribution;
using Attribution.Attribution.Stride;
using Attribution.Engine;

namespace Attribution.Tests.Stride;

public class RidgeRecoveryTests
{
    /// <summary>A dense planted w* (normal entries), and y = b + M·w* + σ·noise.</summary>
    private static (double[] W, float[] Y) Planted(SubsetDesign design, double sigma, ulong seed, double intercept = 0.7)
    {
        var rng = new Rng(seed);
        var w = new double[design.Examples];
        for (int j = 0; j < w.Length; j++)
        {
            w[j] = rng.NextNormal();
        }

        var y = new double[design.Subsets];
        design.Multiply(w, y);
        return (w, [.. y.Select(v => (float)(v + intercept + (sigma * rng.NextNormal())))]);
    }

    private static double Correlation(double[] a, double[] b)
    {
        double ma = a.Average(), mb = b.Average(), ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            ab += (a[i] - ma) * (b[i] - mb);
            aa += (a[i] - ma) * (a[i] - ma);
            bb += (b[i] - mb) * (b[i] - mb);
        }

        return ab / Math.Sqrt(aa * bb);
    }

    // Overdetermined design (K = 4n), noiseless: a small γ recovers a dense w* (which the Lasso's sparsity prior would not
    // fit) to within γ's shrinkage, up to the uniform shift the intercept absorbs.
    [Fact]
    public void Small_gamma_recovers_a_dense_planted_vector_from_an_overdetermined_design()
    {
        var design = SubsetDesign.Create(200, 800, 5, seed: 3);
        var (w, y) = Planted(design, 0, seed: 4);
        var fit = new RidgeRecovery(design, new RidgeOptions { Gamma = 1e-4, Tolerance = 1e-10, MaxIterations = 2000 }).Recover(y);
        double shift = fit.Weights.Average() - w.Average();
        for (int j = 0; j < w.Length; j++)
        {
            Assert.True(Math.Abs(fit.Weights[j] - shift - w[j]) < 1e-2, $"w[{j}] = {fit.Weights[j] - shift}, planted {w[j]}");
        }

        Assert.Equal(1e-4, fit.Gamma);
    }

    // The CG solution satisfies the normal equations of the centred problem, (M_cᵀM_c + γI)w = M_cᵀ y_c, written out densely.
    [Fact]
    public void Solution_satisfies_the_dense_normal_equations()
    {
        var design = SubsetDesign.Create(60, 90, 4, seed: 5);
        var (_, y) = Planted(design, 0.5, seed: 6);
        double gamma = 0.8;
        var ridge = new RidgeRecovery(design, new RidgeOptions { Tolerance = 1e-12, MaxIterations = 1000 });
        var w = ridge.Solve([.. y.Select(v => (double)v)], gamma);
        int kk = design.Subsets, n = design.Examples;
        var c = new double[kk, n];
        for (int j = 0; j < n; j++)
        {
            for (int k = 0; k < kk; k++)
            {
                c[k, j] = -(double)design.Degree / kk;
            }

            foreach (int k in design.SubsetsOf(j))
            {
                c[k, j] += 1;
            }
        }

        double yMean = y.Average(v => (double)v);
        var r = new double[kk];
        for (int k = 0; k < kk; k++)
        {
            r[k] = y[k] - yMean;
            for (int j = 0; j < n; j++)
            {
                r[k] -= c[k, j] * w[j];
            }
        }

        for (int j = 0; j < n; j++)
        {
            double g = -gamma * w[j];
            for (int k = 0; k < kk; k++)
            {
                g += c[k, j] * r[k];
            }

            Assert.True(Math.Abs(g) < 1e-8, $"normal equation {j} off by {g}");
        }
    }

    // Noisy measurements: the held-out rule picks a γ from the grid, and its fit is closer to w* than both ends of the grid
    // would be at their worst (it does not pick the over-smoothed end when the data support a small γ).
    [Fact]
    public void Held_out_gamma_fits_a_noisy_planted_vector_well()
    {
        var design = SubsetDesign.Create(300, 1200, 10, seed: 7);
        var (w, y) = Planted(design, 1.0, seed: 8);
        var cv = new RidgeRecovery(design, new RidgeOptions { Gamma = null, Grid = [100, 10, 1, 0.1, 0.01] }).Recover(y);
        Assert.Contains(cv.Gamma, new[] { 100.0, 10, 1, 0.1, 0.01 });
        Assert.NotEqual(100.0, cv.Gamma);
        double chosen = Correlation(cv.Weights, w);
        Assert.True(chosen > 0.9, $"correlation with the planted vector {chosen}");
        double huge = Correlation(new RidgeRecovery(design, new RidgeOptions { Gamma = 100 }).Recover(y).Weights, w);
        Assert.True(chosen >= huge, $"held-out γ {cv.Gamma}: {chosen} vs γ = 100·d: {huge}");
    }

    [Fact]
    public void Bad_options_and_measurements_throw_saying_what_is_wrong()
    {
        var design = SubsetDesign.Create(20, 30, 3, seed: 1);
        Assert.Contains("gamma", Assert.Throws<ArgumentException>(() => new RidgeRecovery(design, new RidgeOptions { Gamma = -1 })).Message);
        Assert.Contains("grid", Assert.Throws<ArgumentException>(() => new RidgeRecovery(design, new RidgeOptions { Gamma = null, Grid = [] })).Message);
        Assert.Contains("folds", Assert.Throws<ArgumentException>(() => new RidgeRecovery(design, new RidgeOptions { Gamma = null, Folds = 40 })).Message);
        var ridge = new RidgeRecovery(design);
        Assert.Contains("K = 30", Assert.Throws<ArgumentException>(() => ridge.Recover(new float[29])).Message);
        var y = new float[30];
        y[4] = float.NaN;
        Assert.Contains("measurement 4", Assert.Throws<ArgumentException>(() => ridge.Recover(y)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ridge.Solve(new double[30], 0));

        // The stride method's options: ridge takes gamma (a number or cv), refuses the Lasso's options, and the Lasso refuses gamma.
        var m = Assert.IsType<StrideMethod>(MethodFactory.Create("stride", new Dictionary<string, string> { ["recovery"] = "ridge", ["gamma"] = "0.3" }));
        Assert.Contains("ridge γ = 0.3·d", m.Describe());
        m = Assert.IsType<StrideMethod>(MethodFactory.Create("stride", new Dictionary<string, string> { ["recovery"] = "ridge", ["gamma"] = "cv", ["folds"] = "4" }));
        Assert.Contains("ridge γ by 4-fold held-out subsets", m.Describe());
        Assert.Contains("recovery=ridge", Assert.Throws<MethodOptionException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["gamma"] = "1" })).Message);
        Assert.Contains("lambda-fraction", Assert.Throws<MethodOptionException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["recovery"] = "ridge", ["lambda-fraction"] = "0.1" })).Message);
        Assert.Contains("gamma", Assert.ThrowsAny<ArgumentException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["recovery"] = "ridge", ["gamma"] = "0" })).Message);
        Assert.Contains("recovery=lasso", Assert.ThrowsAny<ArgumentException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["recovery"] = "ridge", ["combine"] = "prior" })).Message);
    }
}
