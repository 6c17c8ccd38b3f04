using Attribution.Attribution;
using Attribution.Attribution.Kernels;
using Attribution.Attribution.Methods;
using Attribution.Engine.Models;

namespace Attribution.Tests.Methods;

public sealed class TrajectoryOperatorTests
{
    // The dense Hessian of the training objective from the same finite-difference HVPs, symmetrised.
    private static double[] DenseHessian(TrainingObjective objective, float[] theta)
    {
        int p = theta.Length;
        var h = new double[p * p];
        var e = new double[p];
        var column = new double[p];
        for (int j = 0; j < p; j++)
        {
            Array.Clear(e);
            e[j] = 1;
            objective.Hvp(theta, e, column);
            for (int i = 0; i < p; i++)
            {
                h[i * p + j] += column[i] / 2;
                h[j * p + i] += column[i] / 2;
            }
        }

        return h;
    }

    [Fact]
    public void Response_function_is_the_sum_of_k_damped_steps_and_its_zero_curvature_limit()
    {
        // φ(a) = −η Σ_{m<K} (1 − ηa)^m: protects the closed form against the series it replaces, including a < 0.
        foreach (double a in new[] { 3.0, 0.4, 1e-12, -0.2 })
        {
            double series = 0, term = 1;
            for (int m = 0; m < 50; m++)
            {
                series += term;
                term *= 1 - 0.05 * a;
            }

            Assert.Equal(-0.05 * series, TrajectoryOperator.Response(a, 0.05, 50), 9);
        }

        Assert.Equal(-2.5, TrajectoryOperator.Response(0, 0.05, 50), 12);
    }

    [Fact]
    public void Segment_responses_tile_the_horizon_and_accumulate_to_apply()
    {
        // Segments [0, 7), [7, 30), [30, 50) of K = 50 steps: their maps must sum to φ_K, so a gradient that does not
        // change along the trajectory gets the same response segmented as in one piece (the drift correction's identity).
        foreach (double a in new[] { 3.0, 0.4, 0.0, -0.2 })
        {
            double sum = TrajectoryOperator.SegmentResponse(a, 0.05, 7, 43) + TrajectoryOperator.SegmentResponse(a, 0.05, 23, 20)
                + TrajectoryOperator.SegmentResponse(a, 0.05, 20, 0);
            Assert.Equal(TrajectoryOperator.Response(a, 0.05, 50), sum, 9);
        }

        var layout = new MlpLayout([4, 5, 3]);
        int p = layout.ParameterCount;
        var theta = KernelTests.RandomTheta(layout, 5);
        var (x, y) = KernelTests.RandomData(layout, 30, 6);
        var problem = new AttributionProblem(layout, theta, x, y, weightDecay: 0.01f);
        var op = TrajectoryOperator.Build(new TrainingObjective(problem), theta, 0.01f, 10, seed: 3);
        var g = KernelTests.RandomTheta(layout, 7);
        var whole = (float[])g.Clone();
        op.Apply(whole, 1, 0.2, 20, 0.1);
        var pieces = new float[p];
        op.Accumulate(g, 1, 0.2, 5, 15, 0.1, pieces);
        op.Accumulate(g, 1, 0.2, 15, 0, 0.1, pieces);
        double norm = Math.Sqrt(whole.Sum(v => (double)v * v));
        for (int i = 0; i < p; i++)
        {
            Assert.True(Math.Abs(whole[i] - pieces[i]) < 1e-5 * norm, $"entry {i}: segmented {pieces[i]} vs whole {whole[i]}");
        }
    }

    [Fact]
    public void Gradient_complement_is_the_probes_rayleigh_quotient_outside_the_ritz_span()
    {
        // The curvature assumed outside span(V) must be Σ g⊥ᵀ H g⊥ / Σ ‖g⊥‖² of the probes' components there, checked
        // against the dense Hessian; with every direction kept there is no complement and the weight decay stays.
        var layout = new MlpLayout([4, 5, 3]);
        int p = layout.ParameterCount;
        var theta = KernelTests.RandomTheta(layout, 8);
        var (x, y) = KernelTests.RandomData(layout, 40, 9);
        const float wd = 0.02f;
        var problem = new AttributionProblem(layout, theta, x, y, weightDecay: wd);
        var objective = new TrainingObjective(problem);
        var op = TrajectoryOperator.Build(objective, theta, wd, 6, seed: 4);
        var model = problem.CreateModel();
        var probes = new float[3 * p];
        for (int i = 0; i < 3; i++)
        {
            model.OutputGradient(ForwardOnlySimulator.Rows(problem.Training, [i]), ModelOutput.Loss, default, probes.AsSpan(i * p, p), default);
        }

        var withComplement = op.WithGradientComplement(objective, theta, probes, 3);
        var h = DenseHessian(objective, theta);
        var ritz = op.Vectors.ToArray();
        double numerator = 0, denominator = 0;
        for (int u = 0; u < 3; u++)
        {
            var v = probes.AsSpan(u * p, p).ToArray().Select(t => (double)t).ToArray();
            for (int a = 0; a < op.Rank; a++)
            {
                double dot = 0;
                for (int i = 0; i < p; i++)
                {
                    dot += ritz[a * p + i] * v[i];
                }

                for (int i = 0; i < p; i++)
                {
                    v[i] -= dot * ritz[a * p + i];
                }
            }

            for (int i = 0; i < p; i++)
            {
                double hv = 0;
                for (int j = 0; j < p; j++)
                {
                    hv += h[i * p + j] * v[j];
                }

                numerator += v[i] * hv;
                denominator += v[i] * v[i];
            }
        }

        double expected = Math.Max(numerator / denominator, wd);
        Assert.True(expected > 2 * wd, $"the probes must meet curvature outside the span for the check to mean anything ({expected})");
        Assert.Equal(expected, withComplement.Complement, 2);
        Assert.Equal(wd, withComplement.Floor, 6);
        Assert.Equal(op.Eigenvalues, withComplement.Eigenvalues);

        var full = TrajectoryOperator.Build(objective, theta, wd, p, seed: 4).WithGradientComplement(objective, theta, probes, 3);
        Assert.Equal(wd, full.Complement, 3);
    }

    [Fact]
    public void Full_rank_operator_on_a_relu_mlp_equals_phi_of_the_dense_hessian()
    {
        // With as many Lanczos steps as parameters the operator must be φ(A) exactly (up to float rounding, eigenvalues
        // below wd clamped to wd as the operator does): this holds the Lanczos, the Ritz rotation and the two GEMMs of
        // Apply to an independent dense eigendecomposition.
        var layout = new MlpLayout([4, 5, 3]);
        int p = layout.ParameterCount;
        var theta = KernelTests.RandomTheta(layout, 5);
        var (x, y) = KernelTests.RandomData(layout, 30, 6);
        const float wd = 0.01f, lambda = 0.1f, eta = 0.2f;
        const int horizon = 20;
        var problem = new AttributionProblem(layout, theta, x, y, weightDecay: wd);
        var objective = new TrainingObjective(problem);
        var op = TrajectoryOperator.Build(objective, theta, wd, p, seed: 3);

        var dense = DenseHessian(objective, theta);
        var (values, vectors) = Linalg.SymmetricEigen(dense, p);
        Assert.True(Math.Abs(values.Max(Math.Abs) - op.TopEigenvalue) < 1e-3 * op.TopEigenvalue, $"top Ritz value {op.TopEigenvalue} vs {values.Max(Math.Abs)}");

        var model = problem.CreateModel();
        var g = new float[2 * p];
        model.OutputGradient(ForwardOnlySimulator.Rows(problem.Training, [0]), ModelOutput.Loss, default, g.AsSpan(0, p), default);
        model.OutputGradient(ForwardOnlySimulator.Rows(problem.Training, [3, 7]), ModelOutput.Loss, default, g.AsSpan(p, p), default);
        var expected = new double[2 * p];
        for (int u = 0; u < 2; u++)
        {
            for (int k = 0; k < p; k++)
            {
                double dot = 0;
                for (int i = 0; i < p; i++)
                {
                    dot += vectors[i * p + k] * g[u * p + i];
                }

                double scale = TrajectoryOperator.Response(Math.Max(values[k], wd) + lambda, eta, horizon) * dot;
                for (int i = 0; i < p; i++)
                {
                    expected[u * p + i] += scale * vectors[i * p + k];
                }
            }
        }

        op.Apply(g, 2, eta, horizon, lambda);
        double norm = Math.Sqrt(expected.Sum(v => v * v));
        double err = Math.Sqrt(expected.Select((v, i) => (v - g[i]) * (v - g[i])).Sum());
        Assert.True(norm > 1e-3, $"reference response is degenerate ({norm})");
        Assert.True(err < 1e-3 * norm, $"‖φ(A)g − operator‖ = {err:G3} vs ‖φ(A)g‖ = {norm:G3}");
    }

    [Fact]
    public void Truncated_operator_keeps_the_top_of_the_spectrum_and_maps_the_rest_by_the_weight_decay()
    {
        // A few Lanczos steps converge to the extreme eigenvalues first; a direction orthogonal to every Ritz vector gets
        // φ(wd + λ) exactly (the assumption outside the span: no loss curvature there).
        var layout = new MlpLayout([4, 5, 3]);
        int p = layout.ParameterCount;
        var theta = KernelTests.RandomTheta(layout, 8);
        var (x, y) = KernelTests.RandomData(layout, 40, 9);
        const float wd = 0.02f;
        var problem = new AttributionProblem(layout, theta, x, y, weightDecay: wd);
        var objective = new TrainingObjective(problem);
        var op = TrajectoryOperator.Build(objective, theta, wd, 12, seed: 4);
        Assert.Equal(12, op.Rank);
        var (values, _) = Linalg.SymmetricEigen(DenseHessian(objective, theta), p);
        Assert.True(Math.Abs(values.Max() - op.Eigenvalues[0]) < 1e-3 * values.Max(), $"top Ritz value {op.Eigenvalues[0]} vs eigenvalue {values.Max()}");

        // The Ritz vectors are orthonormal, and a direction orthogonal to all of them is scaled by φ(wd + λ) alone.
        var ritz = op.Vectors.ToArray();
        for (int a = 0; a < op.Rank; a++)
        {
            for (int b = 0; b < op.Rank; b++)
            {
                double dot = 0;
                for (int i = 0; i < p; i++)
                {
                    dot += (double)ritz[a * p + i] * ritz[b * p + i];
                }

                Assert.Equal(a == b ? 1.0 : 0.0, dot, 4);
            }
        }

        var v = KernelTests.RandomTheta(layout, 10).Select(t => (double)t).ToArray();
        for (int pass = 0; pass < 2; pass++)
        {
            for (int a = 0; a < op.Rank; a++)
            {
                double dot = 0;
                for (int i = 0; i < p; i++)
                {
                    dot += ritz[a * p + i] * v[i];
                }

                for (int i = 0; i < p; i++)
                {
                    v[i] -= dot * ritz[a * p + i];
                }
            }
        }

        var probe = v.Select(t => (float)t).ToArray();
        const double eta = 0.1, lambda = 0.05;
        const int horizon = 30;
        op.Apply(probe, 1, eta, horizon, lambda);
        double outside = TrajectoryOperator.Response(wd + lambda, eta, horizon);
        double scale = Math.Sqrt(v.Sum(t => t * t));
        Assert.True(scale > 0.1, "the orthogonal complement probe is degenerate");
        for (int i = 0; i < p; i++)
        {
            Assert.True(Math.Abs(outside * v[i] - probe[i]) < 1e-4 * scale, $"entry {i}: {probe[i]} vs φ(c)·v = {outside * v[i]}");
        }
    }
}
