using Attribution.Engine.Autograd;

namespace Attribution.Engine.Tests;

public class AutogradTests
{
    [Fact]
    public void Add_SameShape_MatchesFiniteDifferences() =>
        GradCheck.Check((g, x) => g.Add(x[0], x[1]), [[3, 4], [3, 4]]);

    [Fact]
    public void Add_BiasBroadcast_SumsGradientOverLeadingDims() =>
        GradCheck.Check((g, x) => g.Add(x[0], x[1]), [[2, 3, 4], [4]]);

    [Fact]
    public void Mul_SameShapeAndBroadcast_MatchFiniteDifferences()
    {
        GradCheck.Check((g, x) => g.Mul(x[0], x[1]), [[5, 3], [5, 3]]);
        GradCheck.Check((g, x) => g.Mul(x[0], x[1]), [[2, 5, 3], [5, 3]], seed: 2);
    }

    [Fact]
    public void ScaleAndSum_MatchFiniteDifferences() =>
        GradCheck.Check((g, x) => g.Sum(g.Scale(x[0], -1.5f)), [[7, 3]]);

    [Fact]
    public void Relu_AwayFromKink_MatchesFiniteDifferences() =>
        GradCheck.Check((g, x) => g.Relu(x[0]), [[37]], minAbs: 0.1f, eps: 1e-3f);

    [Fact]
    public void Gelu_MatchesFiniteDifferences() =>
        GradCheck.Check((g, x) => g.Gelu(x[0]), [[41]]);

    [Fact]
    public void Tanh_MatchesFiniteDifferences() =>
        GradCheck.Check((g, x) => g.Tanh(x[0]), [[29]]);

    [Fact]
    public void MatMul_2DFoldedAndBatched_MatchFiniteDifferences()
    {
        GradCheck.Check((g, x) => g.MatMul(x[0], x[1]), [[3, 4], [4, 5]]);
        GradCheck.Check((g, x) => g.MatMul(x[0], x[1]), [[2, 3, 4], [4, 2]], seed: 3);
        GradCheck.Check((g, x) => g.MatMul(x[0], x[1]), [[2, 3, 4], [2, 4, 5]], seed: 4);
    }

    [Fact]
    public void Linear_WithAndWithoutBias_MatchFiniteDifferences()
    {
        GradCheck.Check((g, x) => g.Linear(x[0], x[1], x[2]), [[2, 3, 4], [5, 4], [5]]);
        GradCheck.Check((g, x) => g.Linear(x[0], x[1]), [[6, 4], [3, 4]], seed: 5);
    }

    [Fact]
    public void LayerNorm_MatchesFiniteDifferences() =>
        GradCheck.Check((g, x) => g.LayerNorm(x[0], x[1], x[2]), [[4, 6], [6], [6]], eps: 3e-3f);

    [Fact]
    public void LogSoftmax_MatchesFiniteDifferences() =>
        GradCheck.Check((g, x) => g.LogSoftmax(x[0]), [[3, 7]]);

    [Fact]
    public void CrossEntropy_WithIgnoredRow_MatchesFiniteDifferences() =>
        GradCheck.Check((g, x) => g.CrossEntropy(x[0], [2, -1, 0, 6]), [[4, 7]]);

    [Fact]
    public void Embedding_RepeatedIds_AccumulateGradient() =>
        GradCheck.Check((g, x) => g.Embedding(x[0], [1, 3, 1, 0]), [[4, 5]]);

    [Fact]
    public void ReshapeTransposeSlice_MatchFiniteDifferences()
    {
        GradCheck.Check((g, x) => g.Transpose(Graph.Reshape(x[0], 2, 3, 4), 0, 2), [[6, 4]]);
        GradCheck.Check((g, x) => g.Slice(x[0], 1, 1, 2), [[2, 4, 3]], seed: 6);
    }

    [Fact]
    public void CausalSelfAttention_MatchesFiniteDifferences() =>
        GradCheck.Check((g, x) => g.CausalSelfAttention(x[0], 2), [[2, 5, 12]], eps: 3e-3f);

    [Fact]
    public void CausalSelfAttention_FuturePositionsDoNotAffectPast()
    {
        var rng = new Rng(9);
        var a = GradCheck.RandomArray(rng, 1 * 4 * 6, 0f);
        var b = (float[])a.Clone();
        for (int i = 3 * 6; i < 4 * 6; i++)
        {
            b[i] += 5f; // change the last position only
        }

        var ya = new Graph(false).CausalSelfAttention(Graph.Wrap(a, [1, 4, 6]), 1).Data;
        var yb = new Graph(false).CausalSelfAttention(Graph.Wrap(b, [1, 4, 6]), 1).Data;
        Assert.Equal(ya.AsSpan(0, 3 * 2).ToArray(), yb.AsSpan(0, 3 * 2).ToArray());
        Assert.NotEqual(ya.AsSpan(3 * 2, 2).ToArray(), yb.AsSpan(3 * 2, 2).ToArray());
    }

    [Fact]
    public void LogSoftmax_HugeLogits_StayFinite()
    {
        var y = new Graph(false).LogSoftmax(Graph.Wrap([1000f, 0f, -1000f], [1, 3])).Data;
        Assert.Equal(0f, y[0], 1e-6f);
        Assert.Equal(-1000f, y[1], 1e-3f);
        Assert.All(y, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void CrossEntropy_KnownValue_AndAllIgnoredIsZero()
    {
        var g = new Graph(false);
        // log(e^0 + e^1 + e^2) - 2 = 0.40760596
        Assert.Equal(0.40760596f, g.CrossEntropy(Graph.Wrap([0f, 1f, 2f], [1, 3]), [2]).Item(), 1e-6f);
        Assert.Equal(0f, g.CrossEntropy(Graph.Wrap([0f, 1f, 2f], [1, 3]), [-1]).Item());
    }

    [Fact]
    public void Gelu_MatchesPyTorchTanhApproximation()
    {
        float[] x = [-3f, -0.5f, 0f, 0.7f, 1f, 2.5f];
        // torch.nn.functional.gelu(x, approximate='tanh') in float64
        double[] expected = [-0.003637392, -0.154285990, 0.0, 0.530570135, 0.841191991, 2.484915734];
        var y = new Graph(false).Gelu(Graph.Wrap(x, [6])).Data;
        for (int i = 0; i < x.Length; i++)
        {
            Assert.Equal(expected[i], y[i], 1e-6);
        }
    }

    [Fact]
    public void ShapeMismatch_ErrorNamesOpAndBothShapes()
    {
        var g = new Graph();
        var ex = Assert.Throws<ArgumentException>(() => g.MatMul(Graph.Wrap(new float[6], [2, 3]), Graph.Wrap(new float[8], [4, 2])));
        Assert.Contains("MatMul", ex.Message, StringComparison.Ordinal);
        Assert.Contains("[2, 3]", ex.Message, StringComparison.Ordinal);
        Assert.Contains("[4, 2]", ex.Message, StringComparison.Ordinal);
        var add = Assert.Throws<ArgumentException>(() => g.Add(Graph.Wrap(new float[6], [2, 3]), Graph.Wrap(new float[2], [2])));
        Assert.Contains("Add", add.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => g.Embedding(Graph.Wrap(new float[6], [3, 2]), [0, 3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => g.CrossEntropy(Graph.Wrap(new float[6], [2, 3]), [0, 7]));
        Assert.Throws<ArgumentException>(() => Graph.Reshape(Graph.Wrap(new float[6], [2, 3]), 4, 2));
    }

    [Fact]
    public void LinearCapture_PerExampleGradientsMatchSingleExampleRunsAndSumToBatchGradient()
    {
        var rng = new Rng(11);
        int examples = 3, rows = 2, inF = 4, outF = 5;
        var w = new Parameter("w", outF, inF);
        var b = new Parameter("b", outF);
        rng.FillNormal(w.Data);
        rng.FillNormal(b.Data);
        var x = GradCheck.RandomArray(rng, examples * rows * inF, 0f);
        var seed = GradCheck.RandomArray(rng, examples * rows * outF, 0f);
        var capture = new LinearCapture(w, b);
        var g = new Graph();
        var y = g.Tanh(g.Linear(Graph.Wrap(x, [examples * rows, inF]), g.Param(w), g.Param(b), capture));
        g.Backward(y, seed);
        var totalW = (float[])w.Grad.Clone();

        var sumW = new float[outF * inF];
        var wg = new float[outF * inF];
        var bg = new float[outF];
        for (int e = 0; e < examples; e++)
        {
            capture.MaterializeWeightGrad(e, rows, wg, bg);
            for (int i = 0; i < sumW.Length; i++)
            {
                sumW[i] += wg[i];
            }

            // The same example alone.
            w.ZeroGrad();
            b.ZeroGrad();
            var g1 = new Graph();
            var y1 = g1.Tanh(g1.Linear(Graph.Wrap(x.AsSpan(e * rows * inF, rows * inF).ToArray(), [rows, inF]), g1.Param(w), g1.Param(b)));
            g1.Backward(y1, seed.AsSpan(e * rows * outF, rows * outF));
            for (int i = 0; i < wg.Length; i++)
            {
                Assert.Equal(w.Grad[i], wg[i], 1e-5f);
            }

            for (int i = 0; i < bg.Length; i++)
            {
                Assert.Equal(b.Grad[i], bg[i], 1e-5f);
            }
        }

        for (int i = 0; i < sumW.Length; i++)
        {
            Assert.Equal(totalW[i], sumW[i], 1e-4f);
        }
    }

    [Fact]
    public void ResetReusesBuffers_AndRepeatedStepsGiveIdenticalBits()
    {
        var rng = new Rng(12);
        var w = new Parameter("w", 64, 64);
        rng.FillNormal(w.Data);
        var x = GradCheck.RandomArray(rng, 256 * 64, 0f);
        var targets = Enumerable.Range(0, 256).Select(i => i % 64).ToArray();
        var g = new Graph();
        float[]? first = null, firstGrad = null;
        float[]? firstBuffer = null;
        for (int step = 0; step < 3; step++)
        {
            w.ZeroGrad();
            long before = GC.GetAllocatedBytesForCurrentThread();
            var h = g.Gelu(g.Linear(Graph.Wrap(x, [256, 64]), g.Param(w)));
            var loss = g.CrossEntropy(h, targets);
            g.Backward(loss);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (step == 0)
            {
                first = (float[])h.Data.Clone();
                firstGrad = (float[])w.Grad.Clone();
                firstBuffer = h.Data;
            }
            else
            {
                Assert.Equal(first, h.Data);
                Assert.Equal(firstGrad, w.Grad);
                Assert.Same(firstBuffer, h.Data);
                Assert.True(allocated < 16 * 1024, $"step {step} allocated {allocated} bytes; one activation is 64 KiB");
            }

            g.Reset();
        }
    }
}
