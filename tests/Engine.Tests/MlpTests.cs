using System.Text.Json;
using Attribution.Engine.Models;

namespace Attribution.Engine.Tests;

/// <summary>MLP forward/backward/JVP checks against PyTorch reference values and finite differences.</summary>
public class MlpTests
{
    private sealed record Reference(
        int[] Widths, int Batch, int[] Labels, float[] Parameters, float[] Inputs, float[] Logits, float[] Losses, float Loss,
        float[] Margins, float[] Gradient, int MarginGradientExample, float[] MarginGradient, float[] Direction,
        float[] JvpLogits, float[] JvpMargins);

    private static readonly Lazy<Reference> Ref = new(() =>
    {
        var json = File.ReadAllText(ReferenceFiles.Path("mlp_reference.json"));
        return JsonSerializer.Deserialize<Reference>(json, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })!;
    });

    private static Mlp ReferenceModel()
    {
        var r = Ref.Value;
        var mlp = new Mlp(new MlpLayout(r.Widths));
        mlp.LoadFrom(r.Parameters);
        return mlp;
    }

    internal static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double rel = 1e-5, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = 0;
        foreach (var e in expected)
        {
            scale = Math.Max(scale, Math.Abs(e));
        }

        // Tolerance scales with the largest magnitude in the vector (float32 rounding in sums of products).
        double tol = rel * Math.Max(scale, 1e-3);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"{what}[{i}]: expected {expected[i]}, got {actual[i]} (tolerance {tol})");
        }
    }

    [Fact]
    public void LogitsLossesAndMarginsMatchPyTorch()
    {
        var r = Ref.Value;
        var mlp = ReferenceModel();
        var logits = new float[r.Batch * r.Widths[^1]];
        mlp.Logits(r.Inputs, r.Batch, logits);
        AssertClose(r.Logits, logits, what: "logits");
        var losses = new float[r.Batch];
        float mean = mlp.PerExampleLosses(r.Inputs, r.Labels, r.Batch, losses);
        AssertClose(r.Losses, losses, what: "losses");
        Assert.Equal(r.Loss, mean, 1e-5);
        var margins = new float[r.Batch];
        mlp.Margins(r.Inputs, r.Labels, r.Batch, margins);
        AssertClose(r.Margins, margins, what: "margins");
    }

    [Fact]
    public void LossGradientMatchesPyTorchAndOverwritesPreviousGradients()
    {
        var r = Ref.Value;
        var mlp = ReferenceModel();
        foreach (var p in mlp.Parameters)
        {
            Array.Fill(p.Grad, 123f);
        }

        float loss = mlp.LossAndBackward(r.Inputs, r.Labels, r.Batch);
        Assert.Equal(r.Loss, loss, 1e-5);
        var grad = new float[mlp.Layout.ParameterCount];
        mlp.CopyGradientTo(grad);
        AssertClose(r.Gradient, grad, what: "gradient");
    }

    [Fact]
    public void PerExampleMarginGradientMatchesPyTorch()
    {
        var r = Ref.Value;
        var mlp = ReferenceModel();
        var g = new float[mlp.Layout.ParameterCount];
        mlp.PerExampleGradients(r.Inputs, r.Labels, r.Batch, ModelOutput.Margin).Dense(r.MarginGradientExample, 1, g);
        AssertClose(r.MarginGradient, g, what: "margin gradient");
    }

    [Fact]
    public void JvpOfLogitsAndMarginsMatchesPyTorch()
    {
        var r = Ref.Value;
        var mlp = ReferenceModel();
        int c = r.Widths[^1];
        var logits = new float[r.Batch * c];
        var tangent = new float[r.Batch * c];
        mlp.Jvp(r.Inputs, r.Batch, r.Direction, logits, tangent);
        AssertClose(r.Logits, logits, what: "logits");
        AssertClose(r.JvpLogits, tangent, what: "jvp logits");
        var margins = new float[r.Batch];
        var dm = new float[r.Batch];
        mlp.OutputJvp(r.Inputs, r.Labels, r.Batch, r.Direction, margins, dm);
        AssertClose(r.Margins, margins, what: "margins");
        AssertClose(r.JvpMargins, dm, what: "jvp margins");
    }

    [Fact]
    public void PerExampleLossGradientsAverageToTheBatchGradientAndDotDenseMatchesMaterialised()
    {
        var (mlp, x, y) = Random([17, 9, 7, 5], batch: 6, seed: 3);
        int p = mlp.Layout.ParameterCount;
        mlp.LossAndBackward(x, y, 6);
        var batchGrad = new float[p];
        mlp.CopyGradientTo(batchGrad);
        var per = mlp.PerExampleGradients(x, y, 6);
        var mean = new float[p];
        var gi = new float[p];
        var v = new float[p];
        new Rng(9).FillNormal(v);
        var dots = new float[6];
        per.DotDense(v, dots);
        for (int i = 0; i < 6; i++)
        {
            per.Dense(i, 1, gi);
            double expectedDot = 0;
            for (int j = 0; j < p; j++)
            {
                mean[j] += gi[j] / 6f;
                expectedDot += (double)gi[j] * v[j];
            }

            Assert.Equal(expectedDot, dots[i], 1e-4 * Math.Max(1, Math.Abs(expectedDot)));
        }

        AssertClose(batchGrad, mean, what: "mean per-example gradient");
    }

    [Fact]
    public void LossGradientMatchesCentralFiniteDifferences()
    {
        var (mlp, x, y) = Random([8, 6, 4], batch: 5, seed: 11);
        int p = mlp.Layout.ParameterCount;
        mlp.LossAndBackward(x, y, 5);
        var grad = new float[p];
        mlp.CopyGradientTo(grad);
        var theta = mlp.ToFlat();
        const float h = 1e-3f; // small enough that no ReLU switches, large enough for float32 losses
        for (int j = 0; j < p; j += 3)
        {
            float t = theta[j];
            theta[j] = t + h;
            mlp.LoadFrom(theta);
            double up = mlp.Loss(x, y, 5);
            theta[j] = t - h;
            mlp.LoadFrom(theta);
            double down = mlp.Loss(x, y, 5);
            theta[j] = t;
            double fd = (up - down) / (2 * h);
            Assert.True(Math.Abs(fd - grad[j]) <= 1e-3 + 1e-2 * Math.Abs(fd), $"parameter {j}: finite difference {fd}, gradient {grad[j]}");
        }
    }

    [Fact]
    public void DefaultInitialisationIsSeededAndWithinPyTorchBounds()
    {
        var a = new Mlp([784, 128, 64, 10], seed: 42);
        var b = new Mlp([784, 128, 64, 10], seed: 42);
        var c = new Mlp([784, 128, 64, 10], seed: 43);
        Assert.Equal(a.ToFlat(), b.ToFlat());
        Assert.NotEqual(a.ToFlat(), c.ToFlat());
        Assert.Equal(["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.2.weight", "layers.2.bias"], a.Parameters.Select(p => p.Name));
        for (int l = 0; l < 3; l++)
        {
            float bound = 1f / MathF.Sqrt(a.Layout.In(l));
            var w = a.Parameters[2 * l].Data;
            Assert.All(w, v => Assert.InRange(v, -bound, bound));
            // Uniform on ±bound has variance bound²/3.
            double var = w.Select(v => (double)v * v).Average();
            Assert.Equal(bound * bound / 3.0, var, bound * bound * 0.05);
        }
    }

    [Fact]
    public void TrainingStepAllocatesNothingOnceWarm()
    {
        var (mlp, x, y) = Random([784, 128, 64, 10], batch: 32, seed: 5);
        mlp.LossAndBackward(x, y, 32);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 5; i++)
        {
            mlp.LossAndBackward(x, y, 32);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void HugeLogitsGiveFiniteLossesAndMargins()
    {
        var mlp = new Mlp(new MlpLayout([2, 3]));
        mlp.LoadFrom([1000f, 0f, -1000f, 0f, 0f, 1000f, 0f, 0f, 0f]);
        var losses = new float[1];
        mlp.PerExampleLosses([1f, 0f], [0], 1, losses);
        Assert.Equal(0f, losses[0], 1e-6);
        var margins = new float[1];
        mlp.Margins([1f, 0f], [2], 1, margins);
        Assert.Equal(-1000f, margins[0], 1e-3);
        Assert.Equal(1000f, mlp.LossAndBackward([1f, 0f], [2], 1), 1e-3);
        Assert.All(mlp.Parameters.SelectMany(p => p.Grad), g => Assert.True(float.IsFinite(g)));
    }

    [Fact]
    public void BadShapesAndLabelsAreRejectedWithWhatIsWrong()
    {
        var mlp = new Mlp([4, 3, 2], seed: 1);
        var ex = Assert.Throws<ArgumentException>(() => mlp.Loss(new float[7], [0, 1], 2));
        Assert.Contains("needs 8", ex.Message, StringComparison.Ordinal);
        var lab = Assert.Throws<ArgumentOutOfRangeException>(() => mlp.Loss(new float[8], [0, 2], 2));
        Assert.Contains("example 1", lab.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => mlp.LoadFrom(new float[5]));
    }

    internal static (Mlp Mlp, float[] X, int[] Y) Random(int[] widths, int batch, ulong seed)
    {
        var rng = new Rng(seed);
        var mlp = new Mlp(new MlpLayout(widths));
        mlp.InitializeDefault(rng);
        var x = new float[batch * widths[0]];
        rng.FillNormal(x);
        var y = new int[batch];
        for (int i = 0; i < batch; i++)
        {
            y[i] = rng.NextInt(widths[^1]);
        }

        return (mlp, x, y);
    }
}

/// <summary>Finds committed reference files (tests/Engine.Tests/reference) from the test binary's directory.</summary>
internal static class ReferenceFiles
{
    public static string Path(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "tests", "Engine.Tests", "reference", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }

            candidate = System.IO.Path.Combine(dir.FullName, "reference", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"Reference file '{name}' not found above {AppContext.BaseDirectory}.", name);
    }
}
