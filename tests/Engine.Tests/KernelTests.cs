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
    public void Kernels_RejectMismatchedLengths()
    {
        Assert.Throws<ArgumentException>(() => Kernels.ReluMask(new float[3], new float[4], new float[3], false));
        Assert.Throws<ArgumentException>(() => Kernels.GeluDerivativeMultiply(new float[3], new float[3], new float[3], new float[2], false));
        var x = new float[8];
        Assert.Throws<ArgumentException>(() => Kernels.Gelu(x, x, new float[8]));
    }
}
