using Attribution.Attribution.Kernels;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Tests.Methods;

public sealed class KernelTests
{
    internal static float[] RandomTheta(MlpLayout layout, ulong seed, float scale = 0.5f)
    {
        var theta = new float[layout.ParameterCount];
        var rng = new Rng(seed);
        for (int l = 0; l < layout.LayerCount; l++)
        {
            rng.FillNormal(layout.Weight(theta.AsSpan(), l), 0f, scale / MathF.Sqrt(layout.In(l)) * 2f);
            rng.FillNormal(layout.Bias(theta.AsSpan(), l), 0f, 0.1f);
        }

        return theta;
    }

    internal static (float[] X, int[] Y) RandomData(MlpLayout layout, int rows, ulong seed)
    {
        var rng = new Rng(seed);
        var x = new float[rows * layout.Widths[0]];
        rng.FillNormal(x);
        var y = new int[rows];
        for (int i = 0; i < rows; i++)
        {
            y[i] = rng.NextInt(layout.Widths[^1]);
        }

        return (x, y);
    }

    private static double SumOutput(OutputKind kind, MlpLayout layout, float[] theta, float[] x, int[] y) =>
        MlpMath.Values(kind, layout, theta, x, y).Sum(v => (double)v);

    [Theory]
    [InlineData(OutputKind.Margin, 0)]
    [InlineData(OutputKind.Margin, 1)]
    [InlineData(OutputKind.Loss, 3)]
    [InlineData(OutputKind.Margin, 7)]
    public void Summed_gradient_matches_central_finite_differences(OutputKind kind, int rows)
    {
        var layout = new MlpLayout([5, 7, 3, 4]);
        var theta = RandomTheta(layout, 1);
        var (x, y) = RandomData(layout, rows, 2);
        var cache = MlpMath.Forward(layout, theta, x, rows);
        var values = new float[rows];
        var dz = new float[rows * 4];
        MlpMath.Output(kind, cache.Logits, y, 4, values, dz);
        var deltas = MlpMath.Backward(layout, theta, cache, dz);
        var grad = new float[layout.ParameterCount];
        MlpMath.WeightedGradient(layout, cache, deltas, [], 0f, grad);
        const float h = 1e-3f;
        for (int j = 0; j < layout.ParameterCount; j += 3)
        {
            var tp = (float[])theta.Clone();
            var tm = (float[])theta.Clone();
            tp[j] += h;
            tm[j] -= h;
            double fd = (SumOutput(kind, layout, tp, x, y) - SumOutput(kind, layout, tm, x, y)) / (2 * h);
            Assert.True(Math.Abs(fd - grad[j]) <= 2e-3 * (1 + Math.Abs(fd)), $"param {j}: fd {fd} vs {grad[j]}");
        }
    }

    [Fact]
    public void Per_example_gradients_sum_to_the_weighted_gradient()
    {
        var layout = new MlpLayout([6, 5, 3]);
        var theta = RandomTheta(layout, 3);
        var (x, y) = RandomData(layout, 9, 4);
        var cache = MlpMath.Forward(layout, theta, x, 9);
        var dz = new float[9 * 3];
        MlpMath.Output(OutputKind.Loss, cache.Logits, y, 3, new float[9], dz);
        var deltas = MlpMath.Backward(layout, theta, cache, dz);
        var weights = Enumerable.Range(0, 9).Select(i => 0.1f * (i + 1)).ToArray();
        var grad = new float[layout.ParameterCount];
        MlpMath.WeightedGradient(layout, cache, deltas, weights, 0f, grad);
        var per = new float[9 * layout.ParameterCount];
        MlpMath.PerExampleGradients(layout, cache, deltas, per);
        for (int j = 0; j < layout.ParameterCount; j++)
        {
            double s = 0;
            for (int i = 0; i < 9; i++)
            {
                s += weights[i] * per[i * layout.ParameterCount + j];
            }

            Assert.Equal(s, grad[j], 1e-4);
        }
    }

    [Theory]
    [InlineData(1, 0, 1)]
    [InlineData(3, 5, 1)]
    [InlineData(4, 13, 2)]
    public void Stacked_gradients_equal_per_slot_gradients(int slots, int batch, int extras)
    {
        var layout = new MlpLayout([6, 5, 4, 3]);
        var stacked = new StackedMlp(layout, slots);
        var thetas = Enumerable.Range(0, slots).Select(s => RandomTheta(layout, (ulong)(10 + s))).ToArray();
        for (int s = 0; s < slots; s++)
        {
            stacked.SetSlot(s, thetas[s]);
        }

        var (xb, yb) = RandomData(layout, batch, 20);
        var ex = new float[slots][];
        var ey = new int[slots][];
        var ew = new float[slots];
        for (int s = 0; s < slots; s++)
        {
            (ex[s], ey[s]) = RandomData(layout, extras, (ulong)(30 + s));
            ew[s] = s % 2 == 0 ? 0.3f : -0.7f;
        }

        var grad = new StackedMlp(layout, slots);
        stacked.LossGradient(xb, yb, 0.25f, ex, ey, ew, grad);
        var flat = new float[layout.ParameterCount];
        for (int s = 0; s < slots; s++)
        {
            // Reference: one forward/backward of the batch rows plus the extra rows with per-row weights.
            var x = xb.Concat(ex[s]).ToArray();
            var y = yb.Concat(ey[s]).ToArray();
            var w = Enumerable.Repeat(0.25f, batch).Concat(Enumerable.Repeat(ew[s], extras)).ToArray();
            var cache = MlpMath.Forward(layout, thetas[s], x, y.Length);
            var dz = new float[y.Length * 3];
            MlpMath.Output(OutputKind.Loss, cache.Logits, y, 3, new float[y.Length], dz);
            var expected = new float[layout.ParameterCount];
            MlpMath.WeightedGradient(layout, cache, MlpMath.Backward(layout, thetas[s], cache, dz), w, 0f, expected);
            grad.GetSlot(s, flat);
            for (int j = 0; j < flat.Length; j++)
            {
                Assert.Equal(expected[j], flat[j], 1e-5);
            }
        }
    }

    [Fact]
    public void Jvp_matches_finite_difference_of_logits()
    {
        var layout = new MlpLayout([5, 8, 6, 3]);
        var theta = RandomTheta(layout, 5);
        var tangent = RandomTheta(layout, 6);
        var (x, _) = RandomData(layout, 4, 7);
        var cache = MlpMath.Forward(layout, theta, x, 4);
        var jvp = MlpMath.Jvp(layout, theta, tangent, cache);
        const float h = 1e-3f;
        var plus = theta.Zip(tangent, (a, b) => a + h * b).ToArray();
        var minus = theta.Zip(tangent, (a, b) => a - h * b).ToArray();
        var lp = MlpMath.Forward(layout, plus, x, 4).Logits;
        var lm = MlpMath.Forward(layout, minus, x, 4).Logits;
        for (int i = 0; i < jvp.Length; i++)
        {
            Assert.Equal((lp[i] - lm[i]) / (2 * h), jvp[i], 2e-2);
        }
    }

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(3, 0.0)]
    [InlineData(3, 1.0)]
    [InlineData(3, 0.9)]
    public void A_units_norm_from_its_factors_equals_the_norm_of_its_reconstructed_response(int rank, double basisEnergy)
    {
        var layout = new MlpLayout([40, 10, 6, 4]);
        var set = new ResponseSet(layout, 7, rank);
        var rng = new Rng(13);
        for (int u = 0; u < set.Units; u++)
        {
            var r = new float[layout.ParameterCount];
            rng.FillNormal(r, 0f, 0.3f);
            set.Set(u, r);
        }

        if (basisEnergy > 0)
        {
            set.ShareInputBasis(0, basisEnergy);
        }

        var response = new float[layout.ParameterCount];
        for (int u = 0; u < set.Units; u++)
        {
            set.Get(u, response);
            double expected = Math.Sqrt(response.Sum(v => (double)v * v));
            Assert.Equal(expected, set.Norm(u), 1e-4 * expected);
        }
    }

    [Fact]
    public void A_prepared_jacobian_readout_shared_by_two_sets_gives_each_set_its_own_scores_and_refuses_another_layout()
    {
        var layout = new MlpLayout([12, 10, 6, 4]);
        var theta = RandomTheta(layout, 8);
        var rng = new Rng(11);
        var low = new ResponseSet(layout, 5, 2);
        var full = new ResponseSet(layout, 3, 0);
        foreach (var set in new[] { low, full })
        {
            for (int u = 0; u < set.Units; u++)
            {
                var r = new float[layout.ParameterCount];
                rng.FillNormal(r, 0f, 0.3f);
                set.Set(u, r);
            }
        }

        var (x, y) = RandomData(layout, 6, 12);
        var readout = ResponseSet.PrepareJacobian(layout, theta, x, y);
        foreach (var set in new[] { low, full })
        {
            var own = new float[6 * set.Units];
            set.JacobianScores(theta, x, y, own);
            var shared = new float[6 * set.Units];
            set.JacobianScores(readout, shared);
            Assert.Equal(own, shared);
        }

        var other = new ResponseSet(new MlpLayout([12, 8, 4]), 2, 0);
        var error = Assert.Throws<ArgumentException>(() => other.JacobianScores(readout, new float[12]));
        Assert.Contains("prepared for layout 12-10-6-4", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 3)]
    [InlineData(2, 1)]
    [InlineData(3, 7)]
    public void Batched_jvp_and_jacobian_readouts_equal_backward_dot_and_finite_difference_readout(int rank, int queries)
    {
        var layout = new MlpLayout([12, 10, 6, 4]);
        var theta = RandomTheta(layout, 8);
        const int units = 9;
        var set = new ResponseSet(layout, units, rank);
        var rng = new Rng(9);
        for (int u = 0; u < units; u++)
        {
            var r = new float[layout.ParameterCount];
            rng.FillNormal(r, 0f, 0.3f);
            set.Set(u, r);
        }

        var (x, y) = RandomData(layout, queries, 10);
        var jvp = new float[queries * units];
        set.JvpScores(theta, x, y, jvp, blockUnits: 4);
        var fd = new float[queries * units];
        set.FiniteDifferenceScores(theta, x, y, 1e-4f, fd);
        var jac = new float[queries * units];
        set.JacobianScores(theta, x, y, jac);
        var cache = MlpMath.Forward(layout, theta, x, queries);
        var dz = new float[queries * 4];
        MlpMath.Output(OutputKind.Margin, cache.Logits, y, 4, new float[queries], dz);
        var per = new float[queries * layout.ParameterCount];
        MlpMath.PerExampleGradients(layout, cache, MlpMath.Backward(layout, theta, cache, dz), per);
        var ru = new float[layout.ParameterCount];
        for (int u = 0; u < units; u++)
        {
            set.Get(u, ru);
            for (int q = 0; q < queries; q++)
            {
                double dot = System.Numerics.Tensors.TensorPrimitives.Dot(per.AsSpan(q * layout.ParameterCount, layout.ParameterCount), ru);
                Assert.Equal(dot, jvp[q * units + u], 1e-4 * (1 + Math.Abs(dot)));
                Assert.Equal(dot, jac[q * units + u], 1e-4 * (1 + Math.Abs(dot)));
                Assert.Equal(dot, fd[q * units + u], 2e-2 * (1 + Math.Abs(dot)));
            }
        }
    }

    [Fact]
    public void Shared_input_basis_keeping_all_energy_leaves_scores_unchanged_and_a_smaller_one_keeps_what_it_reports()
    {
        var layout = new MlpLayout([40, 10, 6, 4]);
        var theta = RandomTheta(layout, 8);
        const int units = 12, queries = 5;
        var set = new ResponseSet(layout, units, 3);
        var rng = new Rng(9);
        // Responses whose input-layer rows live in a 6-dimensional subspace of the 40 inputs (as real ones live in
        // the span of the training images), plus a little noise outside it.
        var span = new float[6 * 40];
        rng.FillNormal(span);
        for (int u = 0; u < units; u++)
        {
            var r = new float[layout.ParameterCount];
            rng.FillNormal(r, 0f, 0.3f);
            var coefficients = new float[10 * 6];
            rng.FillNormal(coefficients);
            var w0 = layout.Weight(r.AsSpan(), 0);
            Blas.Gemm(false, false, 10, 40, 6, 1f, coefficients, span, 0f, w0);
            var noise = new float[w0.Length];
            rng.FillNormal(noise, 0f, 1e-3f);
            System.Numerics.Tensors.TensorPrimitives.Add(w0, noise, w0);
            set.Set(u, r);
        }

        var (x, y) = RandomData(layout, queries, 10);
        var reference = new float[queries * units];
        set.JacobianScores(theta, x, y, reference);
        var copy = Copy(set, layout, units);
        var (k, kept) = copy.ShareInputBasis(0, 1.0);
        Assert.Equal(40, k);
        Assert.Equal(1.0, kept, 1e-9);
        var exact = new float[queries * units];
        copy.JacobianScores(theta, x, y, exact);
        var jvp = new float[queries * units];
        copy.JvpScores(theta, x, y, jvp);
        for (int j = 0; j < reference.Length; j++)
        {
            Assert.Equal(reference[j], exact[j], 1e-3 * (1 + Math.Abs(reference[j])));
            Assert.Equal(reference[j], jvp[j], 1e-3 * (1 + Math.Abs(reference[j])));
        }

        var small = Copy(set, layout, units);
        var (k2, kept2) = small.ShareInputBasis(0, 0.99);
        Assert.InRange(k2, 2, 6); // the subspace, not the 40 inputs
        Assert.InRange(kept2, 0.99, 1.0);
        Assert.Equal(k2, small.BasisDims[0]);
        Assert.True(small.Bytes < set.Bytes, $"{small.Bytes} !< {set.Bytes}");
        var approx = new float[queries * units];
        small.JacobianScores(theta, x, y, approx);
        for (int j = 0; j < reference.Length; j++)
        {
            Assert.Equal(reference[j], approx[j], 0.05 * (1 + Math.Abs(reference[j])));
        }

        Assert.Throws<InvalidOperationException>(() => small.Set(0, new float[layout.ParameterCount]));
        Assert.Throws<InvalidOperationException>(() => small.ShareInputBasis(0, 0.5));
    }

    [Fact]
    public void Symmetric_eigen_decomposes_a_matrix_back_into_itself_with_orthonormal_vectors()
    {
        // n = 60 takes the LAPACK path when the system OpenBLAS has dsyevd (the managed Jacobi otherwise).
        const int n = 60;
        var m = Gram(n, 4, diagonal: 0);

        var (values, vectors) = Linalg.SymmetricEigen(m, n);
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double rebuilt = 0, dot = 0;
                for (int k = 0; k < n; k++)
                {
                    rebuilt += vectors[i * n + k] * values[k] * vectors[j * n + k];
                    dot += vectors[k * n + i] * vectors[k * n + j];
                }

                Assert.Equal(m[i * n + j], rebuilt, 1e-8 * (1 + Math.Abs(m[i * n + j])));
                Assert.Equal(i == j ? 1.0 : 0.0, dot, 1e-10);
            }
        }
    }

    [Fact]
    public void Cholesky_and_triangular_inverse_of_a_large_matrix_rebuild_it_and_refuse_an_indefinite_one()
    {
        // n = 100 takes the LAPACK path when the system OpenBLAS has dpotrf/dtrtri (the managed loops otherwise).
        const int n = 100;
        var a = Gram(n, 6, diagonal: 1);

        var l = (double[])a.Clone();
        Linalg.Cholesky(l, n);
        var inverse = Linalg.LowerTriangularInverse(l, n);
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double llt = 0, identity = 0;
                for (int k = 0; k < n; k++)
                {
                    llt += l[i * n + k] * l[j * n + k];
                    identity += inverse[i * n + k] * l[k * n + j];
                }

                Assert.Equal(a[i * n + j], llt, 1e-9 * (1 + Math.Abs(a[i * n + j])));
                Assert.Equal(i == j ? 1.0 : 0.0, identity, 1e-9);
                if (j > i)
                {
                    Assert.Equal(0.0, l[i * n + j]);
                }
            }
        }

        var indefinite = (double[])a.Clone();
        indefinite[5 * n + 5] = -1;
        Assert.Throws<InvalidOperationException>(() => Linalg.Cholesky(indefinite, n));
    }

    /// <summary>B Bᵀ + diagonal·I for a seeded Gaussian B [n, n], in double: a symmetric (positive definite) test matrix.</summary>
    private static double[] Gram(int n, ulong seed, double diagonal)
    {
        var b = new float[n * n];
        new Rng(seed).FillNormal(b);
        var m = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = i == j ? diagonal : 0.0;
                for (int k = 0; k < n; k++)
                {
                    sum += (double)b[i * n + k] * b[j * n + k];
                }

                m[i * n + j] = sum;
            }
        }

        return m;
    }

    private static ResponseSet Copy(ResponseSet set, MlpLayout layout, int units)
    {
        var copy = new ResponseSet(layout, units, 3);
        var f = new float[set.FloatsPerUnit];
        for (int u = 0; u < units; u++)
        {
            set.GetFactors(u, f);
            copy.SetFactors(u, f);
        }

        return copy;
    }

    [Fact]
    public void Low_rank_factorisation_recovers_a_rank_deficient_matrix()
    {
        var rng = new Rng(11);
        var a = new float[20 * 3];
        var b = new float[3 * 31];
        rng.FillNormal(a);
        rng.FillNormal(b);
        var m = new float[20 * 31];
        Blas.Gemm(false, false, 20, 31, 3, 1f, a, b, 0f, m);
        var omega = new float[31 * 11];
        rng.FillNormal(omega);
        var u = new float[20 * 3];
        var vt = new float[3 * 31];
        LowRank.Factorize(m, 20, 31, 3, omega, 11, u, vt);
        var back = new float[20 * 31];
        Blas.Gemm(false, false, 20, 31, 3, 1f, u, vt, 0f, back);
        for (int i = 0; i < m.Length; i++)
        {
            Assert.Equal(m[i], back[i], 1e-3 * (1 + Math.Abs(m[i])));
        }
    }

    [Fact]
    public void Cholesky_inverse_times_matrix_is_identity()
    {
        const int n = 7;
        var rng = new Rng(12);
        var g = new double[n * n];
        for (int i = 0; i < g.Length; i++)
        {
            g[i] = rng.NextNormal();
        }

        var a = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                for (int k = 0; k < n; k++)
                {
                    a[i * n + j] += g[i * n + k] * g[j * n + k];
                }
            }

            a[i * n + i] += 0.5;
        }

        var l = (double[])a.Clone();
        Linalg.Cholesky(l, n);
        var inv = Linalg.CholeskyInverse(l, n);
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < n; k++)
                {
                    s += a[i * n + k] * inv[k * n + j];
                }

                Assert.Equal(i == j ? 1.0 : 0.0, s, 1e-9);
            }
        }
    }
}
