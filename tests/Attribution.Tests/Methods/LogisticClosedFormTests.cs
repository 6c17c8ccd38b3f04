namespace Attribution.Tests.Methods;

/// <summary>
/// docs/forward-only-attribution.md §10: the required fp64 sanity check of the simulation algebra on L2-regularised
/// logistic regression (d = 5, n = 40, regulariser 1e-2, η = 0.5, 12 units, K ∈ {1, 10, 100, 1000}), with and without
/// the proximal damping λ(θ − θ*).
/// </summary>
public sealed class LogisticClosedFormTests
{
    private const int D = 5;
    private const int N = 40;
    private const double Reg = 1e-2;
    private const double Eta = 0.5;
    private const int Units = 12;

    private readonly double[][] _x;
    private readonly double[] _y;
    private readonly double[] _theta;
    private readonly double[] _xq;
    private readonly double _yq;

    public LogisticClosedFormTests()
    {
        var rng = new Random(1234);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var truth = Enumerable.Range(0, D).Select(_ => Normal()).ToArray();
        _x = new double[N][];
        _y = new double[N];
        for (int i = 0; i < N; i++)
        {
            _x[i] = Enumerable.Range(0, D).Select(_ => Normal()).ToArray();
            double logit = Dot(truth, _x[i]) + 0.8 * Normal();
            _y[i] = logit > 0 ? 1 : -1;
        }

        _xq = Enumerable.Range(0, D).Select(_ => Normal()).ToArray();
        _yq = 1;
        _theta = new double[D];
        for (int it = 0; it < 100; it++)
        {
            var g = Gradient(_theta, -1, 0, 0, _theta);
            if (Math.Sqrt(Dot(g, g)) < 1e-13)
            {
                break;
            }

            var step = Solve(Hessian(_theta, 0), g);
            for (int j = 0; j < D; j++)
            {
                _theta[j] -= step[j];
            }
        }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1e-2)]
    public void Two_trajectory_simulation_matches_the_closed_form_with_second_order_error(double lambda)
    {
        double e3 = MaxError(lambda, 100, 1e-3, twoTrajectory: true);
        double e4 = MaxError(lambda, 100, 1e-4, twoTrajectory: true);
        Assert.True(e4 <= 1e-5, $"error at eps=1e-4: {e4:G3}");
        double ratio = e3 / e4;
        Assert.InRange(ratio, 30, 300);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1e-2)]
    public void Single_trajectory_simulation_is_first_order_in_epsilon(double lambda)
    {
        double e3 = MaxError(lambda, 100, 1e-3, twoTrajectory: false);
        double e4 = MaxError(lambda, 100, 1e-4, twoTrajectory: false);
        Assert.True(e3 > 1e-5, $"single-trajectory error at 1e-3 should be visibly first order, got {e3:G3}");
        Assert.InRange(e3 / e4, 5, 20);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1e-2)]
    public void Horizon_one_equals_grad_dot(double lambda)
    {
        var gq = QueryGradient();
        var sim = Simulate(lambda, 1, 1e-4, twoTrajectory: true);
        double scale = 0;
        var gradDot = new double[Units];
        for (int b = 0; b < Units; b++)
        {
            gradDot[b] = -Eta * Dot(gq, LossGradient(_theta, b));
            scale = Math.Max(scale, Math.Abs(gradDot[b]));
        }

        for (int b = 0; b < Units; b++)
        {
            Assert.True(Math.Abs(sim[b] - gradDot[b]) <= 1e-8 * scale, $"unit {b}: {sim[b]} vs {gradDot[b]}");
        }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1e-2)]
    public void Simulation_converges_monotonically_to_the_damped_influence_function(double lambda)
    {
        var gq = QueryGradient();
        var h = Hessian(_theta, lambda);
        var influence = new double[Units];
        for (int b = 0; b < Units; b++)
        {
            influence[b] = -Dot(gq, Solve(h, LossGradient(_theta, b)));
        }

        double scale = influence.Max(Math.Abs);
        double previous = double.PositiveInfinity;
        double last = 0;
        foreach (int k in new[] { 1, 10, 100, 1000 })
        {
            var sim = Simulate(lambda, k, 1e-4, twoTrajectory: true);
            double err = Enumerable.Range(0, Units).Max(b => Math.Abs(sim[b] - influence[b])) / scale;
            Assert.True(err < previous, $"distance to the IF did not shrink at K={k}: {err:G3} after {previous:G3}");
            previous = err;
            last = err;
        }

        Assert.True(last <= 1e-2, $"distance to the damped IF at K=1000: {last:G3}");
    }

    private double MaxError(double lambda, int k, double eps, bool twoTrajectory)
    {
        var closed = ClosedForm(lambda, k);
        var sim = Simulate(lambda, k, eps, twoTrajectory);
        double scale = closed.Max(Math.Abs);
        return Enumerable.Range(0, Units).Max(b => Math.Abs(sim[b] - closed[b])) / scale;
    }

    // τ_K(q, b) = −η g_qᵀ Σ_{j<K} (I − ηH_λ)^j g_b.
    private double[] ClosedForm(double lambda, int k)
    {
        var h = Hessian(_theta, lambda);
        var gq = QueryGradient();
        var result = new double[Units];
        for (int b = 0; b < Units; b++)
        {
            var term = LossGradient(_theta, b);
            var sum = new double[D];
            for (int j = 0; j < k; j++)
            {
                for (int i = 0; i < D; i++)
                {
                    sum[i] += term[i];
                }

                var ht = MatVec(h, term);
                for (int i = 0; i < D; i++)
                {
                    term[i] -= Eta * ht[i];
                }
            }

            result[b] = -Eta * Dot(gq, sum);
        }

        return result;
    }

    private double[] Simulate(double lambda, int k, double eps, bool twoTrajectory)
    {
        var baseline = Trajectory(-1, 0, lambda, k);
        var result = new double[Units];
        for (int b = 0; b < Units; b++)
        {
            var plus = Trajectory(b, eps, lambda, k);
            result[b] = twoTrajectory
                ? (Margin(plus) - Margin(Trajectory(b, -eps, lambda, k))) / (2 * eps)
                : (Margin(plus) - Margin(baseline)) / eps;
        }

        return result;
    }

    private double[] Trajectory(int unit, double weight, double lambda, int k)
    {
        var t = (double[])_theta.Clone();
        for (int step = 0; step < k; step++)
        {
            var g = Gradient(t, unit, weight, lambda, _theta);
            for (int i = 0; i < D; i++)
            {
                t[i] -= Eta * g[i];
            }
        }

        return t;
    }

    private double Margin(double[] t) => _yq * Dot(t, _xq);

    private double[] QueryGradient() => _xq.Select(v => _yq * v).ToArray();

    private double[] LossGradient(double[] t, int i)
    {
        double m = _y[i] * Dot(t, _x[i]);
        double s = -_y[i] / (1 + Math.Exp(m));
        return _x[i].Select(v => s * v).ToArray();
    }

    // ∇[ (1/n)Σℓ + reg/2‖θ‖² + weight·ℓ_unit + λ/2‖θ − θ*‖² ].
    private double[] Gradient(double[] t, int unit, double weight, double lambda, double[] star)
    {
        var g = new double[D];
        for (int i = 0; i < N; i++)
        {
            var gi = LossGradient(t, i);
            for (int j = 0; j < D; j++)
            {
                g[j] += gi[j] / N;
            }
        }

        for (int j = 0; j < D; j++)
        {
            g[j] += Reg * t[j] + lambda * (t[j] - star[j]);
        }

        if (unit >= 0)
        {
            var gu = LossGradient(t, unit);
            for (int j = 0; j < D; j++)
            {
                g[j] += weight * gu[j];
            }
        }

        return g;
    }

    private double[,] Hessian(double[] t, double lambda)
    {
        var h = new double[D, D];
        for (int i = 0; i < N; i++)
        {
            double p = 1 / (1 + Math.Exp(-Dot(t, _x[i])));
            double w = p * (1 - p) / N;
            for (int a = 0; a < D; a++)
            {
                for (int b = 0; b < D; b++)
                {
                    h[a, b] += w * _x[i][a] * _x[i][b];
                }
            }
        }

        for (int a = 0; a < D; a++)
        {
            h[a, a] += Reg + lambda;
        }

        return h;
    }

    private static double[] MatVec(double[,] m, double[] v)
    {
        var r = new double[D];
        for (int a = 0; a < D; a++)
        {
            for (int b = 0; b < D; b++)
            {
                r[a] += m[a, b] * v[b];
            }
        }

        return r;
    }

    // Gaussian elimination with partial pivoting (D = 5).
    private static double[] Solve(double[,] m, double[] rhs)
    {
        var a = (double[,])m.Clone();
        var b = (double[])rhs.Clone();
        for (int c = 0; c < D; c++)
        {
            int piv = c;
            for (int r = c + 1; r < D; r++)
            {
                if (Math.Abs(a[r, c]) > Math.Abs(a[piv, c]))
                {
                    piv = r;
                }
            }

            for (int k = 0; k < D; k++)
            {
                (a[c, k], a[piv, k]) = (a[piv, k], a[c, k]);
            }

            (b[c], b[piv]) = (b[piv], b[c]);
            for (int r = c + 1; r < D; r++)
            {
                double f = a[r, c] / a[c, c];
                for (int k = c; k < D; k++)
                {
                    a[r, k] -= f * a[c, k];
                }

                b[r] -= f * b[c];
            }
        }

        var x = new double[D];
        for (int r = D - 1; r >= 0; r--)
        {
            double s = b[r];
            for (int k = r + 1; k < D; k++)
            {
                s -= a[r, k] * x[k];
            }

            x[r] = s / a[r, r];
        }

        return x;
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * b[i];
        }

        return s;
    }
}
