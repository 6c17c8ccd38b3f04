using Attribution.Engine.Optim;

namespace Attribution.Engine.Tests;

/// <summary>
/// Optimiser and schedule checks. Reference values come from PyTorch 1.13 (torch.optim.SGD / AdamW /
/// CosineAnnealingLR) on a 19-element parameter θ_i = sin(i+1) with gradients g_i(step s) = cos(0.7·i + s) and
/// learning rates 0.1, 0.05, 0.02 for the three steps (19 = two 8-wide vectors plus a scalar tail).
/// </summary>
public class OptimTests
{
    private static readonly float[] Rates = [0.1f, 0.05f, 0.02f];

    private static float[] Run(Func<IReadOnlyList<Parameter>, Optimizer> create, int n = 19)
    {
        var p = new Parameter("w", n);
        for (int i = 0; i < n; i++)
        {
            p.Data[i] = MathF.Sin(i + 1);
        }

        var opt = create([p]);
        for (int s = 0; s < Rates.Length; s++)
        {
            for (int i = 0; i < n; i++)
            {
                p.Grad[i] = (float)Math.Cos(0.7 * i + s);
            }

            opt.Step(Rates[s]);
        }

        return p.Data;
    }

    private static void AssertClose(IReadOnlyList<double> expected, float[] actual, double rel = 2e-6)
    {
        Assert.Equal(expected.Count, actual.Length);
        for (int i = 0; i < actual.Length; i++)
        {
            double tol = rel * Math.Max(1.0, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }

    [Fact]
    public void SgdWithMomentumAndWeightDecayMatchesPyTorch()
    {
        double[] expected = [0.6517536044120789, 0.8127380609512329, 0.18318292498588562, -0.5958923101425171, -0.7548877596855164, -0.1282677948474884, 0.6841426491737366, 0.8797875046730042, 0.2174091339111328, -0.732271134853363, -1.093274474143982, -0.4910743236541748, 0.5830197930335999, 1.1942455768585205, 0.7989927530288696, -0.26403364539146423, -1.0736054182052612, -0.9465534090995789, -0.037111397832632065];
        AssertClose(expected, Run(ps => new Sgd(ps, momentum: 0.9f, weightDecay: 5e-4f)));
    }

    [Fact]
    public void SgdWithNesterovMomentumMatchesPyTorch()
    {
        double[] expected = [0.5491263270378113, 0.7671738862991333, 0.21766920387744904, -0.49733319878578186, -0.6399062871932983, -0.05258433520793915, 0.6844543218612671, 0.8057063221931458, 0.10547160357236862, -0.8287131190299988, -1.1297945976257324, -0.45220983028411865, 0.678071141242981, 1.3014994859695435, 0.8697029948234558, -0.26200899481773376, -1.1417118310928345, -1.0544064044952393, -0.13527262210845947];
        AssertClose(expected, Run(ps => new Sgd(ps, momentum: 0.9f, weightDecay: 1e-2f, nesterov: true)));
    }

    [Fact]
    public void PlainSgdWithWeightDecayMatchesPyTorch()
    {
        double[] expected = [0.7214243412017822, 0.8558440208435059, 0.1800936609506607, -0.6436240077018738, -0.8253481388092041, -0.1889963001012802, 0.6615100502967834, 0.9063597321510315, 0.2813885807991028, -0.6606836915016174, -1.0481324195861816, -0.49431565403938293, 0.5325399041175842, 1.1205658912658691, 0.7374663352966309, -0.2840100824832916, -1.0428401231765747, -0.8801957368850708, 0.03309863805770874];
        AssertClose(expected, Run(ps => new Sgd(ps, weightDecay: 1e-2f)));
    }

    [Fact]
    public void AdamWWithDefaultBetasMatchesPyTorch()
    {
        double[] expected = [0.6836577653884888, 0.7852720618247986, 0.08521762490272522, -0.588154673576355, -0.7934051752090454, -0.13559287786483765, 0.7434778213500977, 0.8262453079223633, 0.24377653002738953, -0.6990026831626892, -1.119429111480713, -0.5901452898979187, 0.5869415402412415, 1.1525352001190186, 0.7917406558990479, -0.20161733031272888, -1.1216710805892944, -0.9172542691230774, -0.0057946182787418365];
        AssertClose(expected, Run(ps => new AdamW(ps, weightDecay: 0.01f)));
    }

    [Fact]
    public void AdamWWithCustomBetasEpsilonAndDecayMatchesPyTorch()
    {
        double[] expected = [0.6735652089118958, 0.77603679895401, 0.08672907203435898, -0.5768011808395386, -0.7806400060653687, -0.13500632345676422, 0.7284643054008484, 0.810348391532898, 0.23851555585861206, -0.6879622936248779, -1.0995585918426514, -0.5784032940864563, 0.5803384780883789, 1.1355845928192139, 0.7781313061714172, -0.20221930742263794, -1.1078169345855713, -0.9047726988792419, -0.005271420814096928];
        AssertClose(expected, Run(ps => new AdamW(ps, beta1: 0.8f, beta2: 0.95f, epsilon: 1e-6f, weightDecay: 0.1f)));
    }

    [Fact]
    public void SgdVectorPathEqualsScalarFormulaForEveryTailLength()
    {
        // Sizes 0..64 exercise every vector tail; the scalar recurrence is the PyTorch formula written out.
        for (int n = 0; n <= 64; n++)
        {
            var actual = Run(ps => new Sgd(ps, momentum: 0.9f, weightDecay: 5e-4f), n);
            var theta = new double[n];
            var buf = new double[n];
            for (int i = 0; i < n; i++)
            {
                theta[i] = MathF.Sin(i + 1);
            }

            for (int s = 0; s < Rates.Length; s++)
            {
                for (int i = 0; i < n; i++)
                {
                    double g = (float)Math.Cos(0.7 * i + s) + 5e-4 * theta[i];
                    buf[i] = s == 0 ? g : 0.9 * buf[i] + g;
                    theta[i] -= Rates[s] * buf[i];
                }
            }

            AssertClose(theta, actual, 1e-5);
        }
    }

    [Fact]
    public void AdamWVectorPathGivesTheScalarLoopsBitsForEveryTailLength()
    {
        // The scalar loop AdamW ran before it was vectorized, in float with the same operation order: equal bits.
        const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
        for (int n = 0; n <= 40; n++)
        {
            var actual = Run(ps => new AdamW(ps, weightDecay: wd), n);
            var theta = new float[n];
            var m = new float[n];
            var v = new float[n];
            for (int i = 0; i < n; i++)
            {
                theta[i] = MathF.Sin(i + 1);
            }

            for (int s = 0; s < Rates.Length; s++)
            {
                float lr = Rates[s];
                float stepSize = (float)(lr / (1.0 - Math.Pow(b1, s + 1)));
                float invSqrtBc2 = (float)(1.0 / Math.Sqrt(1.0 - Math.Pow(b2, s + 1)));
                float decay = 1f - lr * wd;
                for (int i = 0; i < n; i++)
                {
                    float g = (float)Math.Cos(0.7 * i + s);
                    m[i] = b1 * m[i] + (1f - b1) * g;
                    v[i] = b2 * v[i] + (1f - b2) * g * g;
                    theta[i] = theta[i] * decay - stepSize * m[i] / (MathF.Sqrt(v[i]) * invSqrtBc2 + eps);
                }
            }

            Assert.Equal(theta, actual);
        }
    }

    [Fact]
    public void StepLeavesGradientsUntouchedAndZeroGradClearsThem()
    {
        var p = new Parameter("w", 3);
        p.Grad[0] = 1f;
        p.Grad[2] = -2f;
        var opt = new Sgd([p], momentum: 0.5f);
        opt.Step(0.1f);
        Assert.Equal([1f, 0f, -2f], p.Grad);
        Assert.Equal([-0.1f, 0f, 0.2f], p.Data);
        Assert.Equal(1, opt.StepCount);
        opt.ZeroGrad();
        Assert.Equal([0f, 0f, 0f], p.Grad);
    }

    [Fact]
    public void InvalidHyperparametersAreRejectedWithTheirName()
    {
        var ps = new[] { new Parameter("w", 2) };
        Assert.Equal("momentum", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(ps, momentum: 1f)).ParamName);
        Assert.Equal("weightDecay", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(ps, weightDecay: -1f)).ParamName);
        Assert.Equal("beta2", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW(ps, beta2: 1f)).ParamName);
        Assert.Equal("learningRate", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(ps).Step(float.NaN)).ParamName);
    }

    [Fact]
    public void CosineScheduleMatchesPyTorchCosineAnnealingAndHoldsTheMinimumAfterwards()
    {
        double[] expected = [0.05, 0.04880088464923127, 0.045320916362186214, 0.039900738681165594, 0.03307091636218621, 0.0255, 0.01792908363781379, 0.01109926131883441, 0.005679083637813789, 0.0021991153507687385, 0.001];
        var s = new CosineSchedule(0.05f, 10, 0.001f);
        for (int t = 0; t < expected.Length; t++)
        {
            Assert.Equal(expected[t], s.At(t), 1e-7);
        }

        Assert.Equal(0.001f, s.At(11));
        Assert.Equal(0.001f, s.At(1000));
        Assert.Equal(0.0f, new CosineSchedule(0.05f, 4).At(4));
    }

    [Fact]
    public void WarmupRisesLinearlyThenHandsOverToTheShiftedInnerSchedule()
    {
        var s = new WarmupSchedule(4, new CosineSchedule(0.1f, 8));
        Assert.Equal(0.025f, s.At(0), 6);
        Assert.Equal(0.05f, s.At(1), 6);
        Assert.Equal(0.1f, s.At(3), 6);
        Assert.Equal(0.1f, s.At(4), 6);
        Assert.Equal(0.05f, s.At(8), 6);
        Assert.Equal(0f, s.At(12), 6);
        Assert.Equal(0.3f, new ConstantSchedule(0.3f).At(123));
    }
}
