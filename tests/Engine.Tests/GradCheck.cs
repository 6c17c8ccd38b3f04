using Attribution.Engine.Autograd;
using Attribution.Engine.Tensors;

namespace Attribution.Engine.Tests;

/// <summary>
/// Checks an op three ways: forward-mode tangents against central finite differences (element-wise), reverse-mode
/// gradients against the tangents (⟨seed, J v⟩ = ⟨Jᵀ seed, v⟩), and single-coordinate gradients against finite differences.
/// Tolerances scale with the magnitude of the values compared.
/// </summary>
internal static class GradCheck
{
    public static void Check(Func<Graph, Tensor[], Tensor> op, int[][] shapes, ulong seed = 1, float eps = 1e-2f,
        float minAbs = 0f, double rtol = 2e-2, double atol = 2e-3)
    {
        var rng = new Rng(seed);
        var xs = shapes.Select(s => RandomArray(rng, s.Aggregate(1, (a, d) => a * d), minAbs)).ToArray();
        var vs = shapes.Select(s => RandomArray(rng, s.Aggregate(1, (a, d) => a * d), 0f)).ToArray();

        // Forward mode.
        var g = new Graph(recordBackward: false);
        var y = op(g, xs.Select((x, i) => Graph.Wrap(x, shapes[i], tangent: vs[i])).ToArray());
        Assert.NotNull(y.Tangent);
        var jvp = (float[])y.Tangent!.Clone();
        var y0 = (float[])y.Data.Clone();
        var seedGrad = RandomArray(rng, y.Length, 0f);

        // Central differences along v.
        var plus = Eval(op, shapes, xs, vs, eps);
        var minus = Eval(op, shapes, xs, vs, -eps);
        double scale = y0.Select(Math.Abs).DefaultIfEmpty(0f).Max() + 1;
        for (int i = 0; i < jvp.Length; i++)
        {
            double fd = ((double)plus[i] - minus[i]) / (2 * eps);
            Assert.True(Math.Abs(fd - jvp[i]) <= atol * scale + rtol * Math.Abs(fd),
                $"JVP element {i}: forward mode {jvp[i]} vs finite difference {fd}");
        }

        // Reverse mode: duality with the JVP, per-coordinate finite differences.
        var gb = new Graph();
        var grads = xs.Select(x => new float[x.Length]).ToArray();
        var yb = op(gb, xs.Select((x, i) => Graph.Wrap(x, shapes[i], grad: grads[i])).ToArray());
        Assert.Equal(y0, yb.Data);
        gb.Backward(yb, seedGrad);
        double lhs = Dot(seedGrad, jvp), rhs = 0;
        for (int i = 0; i < xs.Length; i++)
        {
            rhs += Dot(grads[i], vs[i]);
        }

        double mag = Math.Abs(Dot(seedGrad, jvp.Select(Math.Abs).ToArray())) + 1e-3;
        Assert.True(Math.Abs(lhs - rhs) <= 1e-4 * mag + 1e-5, $"<seed, J v> = {lhs} but <J^T seed, v> = {rhs}");

        for (int input = 0; input < xs.Length; input++)
        {
            for (int j = 0; j < Math.Min(4, xs[input].Length); j++)
            {
                var e = xs.Select(x => new float[x.Length]).ToArray();
                e[input][j] = 1f;
                var p = Eval(op, shapes, xs, e, eps);
                var m = Eval(op, shapes, xs, e, -eps);
                double fd = 0;
                for (int k = 0; k < p.Length; k++)
                {
                    fd += seedGrad[k] * (((double)p[k] - m[k]) / (2 * eps));
                }

                double gscale = seedGrad.Select(Math.Abs).Sum() * 1e-3 + 1e-3;
                Assert.True(Math.Abs(fd - grads[input][j]) <= gscale + rtol * Math.Abs(fd),
                    $"grad of input {input} at {j}: backward {grads[input][j]} vs finite difference {fd}");
            }
        }
    }

    private static float[] Eval(Func<Graph, Tensor[], Tensor> op, int[][] shapes, float[][] xs, float[][] dirs, float step)
    {
        var g = new Graph(recordBackward: false);
        var inputs = xs.Select((x, i) =>
        {
            var shifted = new float[x.Length];
            for (int k = 0; k < x.Length; k++)
            {
                shifted[k] = x[k] + (step * dirs[i][k]);
            }

            return Graph.Wrap(shifted, shapes[i]);
        }).ToArray();
        return (float[])op(g, inputs).Data.Clone();
    }

    public static float[] RandomArray(Rng rng, int n, float minAbs)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++)
        {
            float v = (float)rng.NextNormal();
            a[i] = minAbs > 0 ? (MathF.Sign(v) * minAbs) + v * 0.5f : v;
        }

        return a;
    }

    public static double Dot(float[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += (double)a[i] * b[i];
        }

        return s;
    }
}
