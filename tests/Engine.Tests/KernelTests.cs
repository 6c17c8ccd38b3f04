using Attribution.Engine.Tensors;

namespace Attribution.Engine.Tests;

public class KernelTests
{
    private static double GeluTanh(double x) => 0.5 * x * (1 + Math.Tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));

    [Fact]
    public void ReluMaskAndGelu_AllSizes0To256_MatchScalarReference()
    {
        // One fact sweeping every length so every vector body/tail split runs, in both accumulate modes.
        var rng = new Rng(21);
        for (int n = 0; n <= 256; n++)
        {
            var x = GradCheck.RandomArray(rng, n, 0f);
            var dy = GradCheck.RandomArray(rng, n, 0f);
            var start = GradCheck.RandomArray(rng, n, 0f);

            var relu = (float[])start.Clone();
            Kernels.ReluMask(x, dy, relu, accumulate: true);
            var reluSet = new float[n];
            Kernels.ReluMask(x, dy, reluSet, accumulate: false);

            var t = new float[n];
            var y = new float[n];
            Kernels.Gelu(x, t, y);
            var gd = (float[])start.Clone();
            Kernels.GeluDerivativeMultiply(x, t, dy, gd, accumulate: true);
            for (int i = 0; i < n; i++)
            {
                float r = x[i] > 0 ? dy[i] : 0f;
                Assert.Equal(start[i] + r, relu[i]);
                Assert.Equal(r, reluSet[i]);
                Assert.Equal(GeluTanh(x[i]), y[i], 1e-6 * (1 + Math.Abs(x[i])));
                double h = 1e-5;
                double deriv = (GeluTanh(x[i] + h) - GeluTanh(x[i] - h)) / (2 * h);
                Assert.Equal(start[i] + (deriv * dy[i]), gd[i], 1e-5 * (1 + Math.Abs(gd[i])));
            }
        }
    }

    [Fact]
    public void Gelu_OverTheWholeFloatRange_IsFiniteAndAccurateInVectorAndScalarPaths()
    {
        // The vector path computes exp itself (clamped); every magnitude from 1e-6 to 1e30, both signs, must give the
        // double-precision GELU and tanh within float rounding, never NaN or infinity. 9 values: 8 vector lanes + 1 tail.
        foreach (var mag in new[] { 1e-6f, 1e-3f, 0.1f, 0.5f, 1f, 2f, 3f, 5f, 8f, 10f, 20f, 50f, 100f, 1e4f, 1e30f })
        {
            foreach (var sign in new[] { 1f, -1f })
            {
                var x = Enumerable.Range(0, 9).Select(i => sign * mag * (1f + (0.01f * i))).ToArray();
                var t = new float[9];
                var y = new float[9];
                Kernels.Gelu(x, t, y);
                for (int i = 0; i < 9; i++)
                {
                    Assert.True(float.IsFinite(y[i]) && float.IsFinite(t[i]), $"gelu({x[i]}) = {y[i]}, tanh {t[i]}");
                    double u = 0.7978845608028654 * (x[i] + (0.044715 * x[i] * (double)x[i] * x[i]));
                    Assert.Equal(Math.Tanh(u), t[i], 3e-7);
                    Assert.Equal(GeluTanh(x[i]), y[i], 1e-6 * (1 + Math.Abs(x[i])));
                }
            }
        }
    }

    [Fact]
    public void Kernels_RejectMismatchedLengths()
    {
        Assert.Throws<ArgumentException>(() => Kernels.ReluMask(new float[3], new float[4], new float[3], false));
        Assert.Throws<ArgumentException>(() => Kernels.GeluDerivativeMultiply(new float[3], new float[3], new float[3], new float[2], false));
        var x = new float[8];
        Assert.Throws<ArgumentException>(() => Kernels.Gelu(x, x, new float[8]));
    }

    [Fact]
    public void AddToAndAddRows_GiveTensorPrimitivesBits_AndRefuseBadLengths()
    {
        var rng = new Rng(23);
        for (int n = 0; n <= 40; n++)
        {
            var rows = new float[3 * n];
            rng.FillNormal(rows);
            var expected = new float[n];
            rng.FillNormal(expected);
            var actual = (float[])expected.Clone();
            for (int r = 0; r < 3; r++)
            {
                System.Numerics.Tensors.TensorPrimitives.Add(expected, rows.AsSpan(r * n, n), expected);
            }

            Kernels.AddRows(rows, 3, actual);
            Assert.Equal(expected, actual);
            Kernels.AddTo(rows.AsSpan(0, n), actual);
            System.Numerics.Tensors.TensorPrimitives.Add(expected, rows.AsSpan(0, n), expected);
            Assert.Equal(expected, actual);
        }

        Assert.Throws<ArgumentException>(() => Kernels.AddTo(new float[3], new float[4]));
        Assert.Throws<ArgumentException>(() => Kernels.AddRows(new float[7], 2, new float[4]));
    }
}
