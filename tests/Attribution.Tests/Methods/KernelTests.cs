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

    // The queries' margin gradient factors at θ in forward mode (what forward-only's readout contracts a set with).
    private static GradientFactors Readout(MlpLayout layout, float[] theta, float[] x, int[] y)
    {
        var model = new Mlp(layout);
        model.LoadFrom(theta);
        return model.ForwardModeGradients(x, y, y.Length, ModelOutput.Margin);
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

    [Theory]
    [InlineData(1, 0, 1)]
    [InlineData(3, 5, 1)]
    [InlineData(4, 13, 2)]
    public void Stacked_gradients_equal_the_models_weighted_gradient_per_slot(int slots, int batch, int extras)
    {
        var layout = new MlpLayout([6, 5, 4, 3]);
        var stacked = new MlpStack(layout, slots);
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

        var grad = new MlpStack(layout, slots);
        stacked.LossGradient(xb, yb, 0.25f, ex, ey, ew, grad);
        var flat = new float[layout.ParameterCount];
        for (int s = 0; s < slots; s++)
        {
            // Reference: one forward/backward of the batch rows plus the extra rows with per-row weights.
            var x = xb.Concat(ex[s]).ToArray();
            var y = yb.Concat(ey[s]).ToArray();
            var w = Enumerable.Repeat(0.25f, batch).Concat(Enumerable.Repeat(ew[s], extras)).ToArray();
            var model = new Mlp(layout);
            model.LoadFrom(thetas[s]);
            var expected = new float[layout.ParameterCount];
            model.OutputGradient(x, y, y.Length, ModelOutput.Loss, w, expected, default);
            grad.GetSlot(s, flat);
            for (int j = 0; j < flat.Length; j++)
            {
                Assert.Equal(expected[j], flat[j], 1e-5);
            }
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
        var model = new Mlp(layout);
        model.LoadFrom(theta);
        var readout = model.ForwardModeGradients(x, y, y.Length, ModelOutput.Margin);
        foreach (var set in new[] { low, full })
        {
            var own = new float[6 * set.Units];
            set.JacobianScores(Readout(layout, theta, x, y), own);
            var shared = new float[6 * set.Units];
            set.JacobianScores(readout, shared);
            Assert.Equal(own, shared);
        }

        var other = new ResponseSet(new MlpLayout([12, 8, 4]), 2, 0);
        var error = Assert.Throws<ArgumentException>(() => other.JacobianScores(readout, new float[12]));
        Assert.Contains("are not of this set's model", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 3)]
    [InlineData(2, 1)]
    [InlineData(3, 7)]
    public void Jacobian_readout_equals_backward_dot_and_finite_difference_readout(int rank, int queries)
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
        var fd = new float[queries * units];
        Attribution.Methods.ForwardOnlyReadout.FiniteDifference(new Mlp(layout), theta, new Attribution.QueryBatch(x, y, layout.Widths[0]), set, 1e-4f, fd);
        var jac = new float[queries * units];
        set.JacobianScores(Readout(layout, theta, x, y), jac);
        var model = new Mlp(layout);
        model.LoadFrom(theta);
        var per = new float[queries * layout.ParameterCount];
        model.PerExampleGradients(x, y, queries, ModelOutput.Margin).Dense(0, queries, per);
        var ru = new float[layout.ParameterCount];
        for (int u = 0; u < units; u++)
        {
            set.Get(u, ru);
            for (int q = 0; q < queries; q++)
            {
                double dot = System.Numerics.Tensors.TensorPrimitives.Dot(per.AsSpan(q * layout.ParameterCount, layout.ParameterCount), ru);
                Assert.Equal(dot, jac[q * units + u], 1e-4 * (1 + Math.Abs(dot)));
                Assert.Equal(dot, fd[q * units + u], 2e-2 * (1 + Math.Abs(dot)));
            }
        }
    }

    [Fact]
    public void Low_rank_readout_with_vector_width_rows_and_a_partial_query_group_equals_the_backward_dot_whatever_the_batch()
    {
        // Protects the fused low-rank readout (factor rows of 40 and 24 floats: whole 8-float vectors plus tails; 9
        // queries: two groups of four and a lone one): every score is the per-example gradient's dot with the unit's
        // response, and a query scores the same in a batch of 9 as alone.
        var layout = new MlpLayout([40, 24, 6, 4]);
        var theta = RandomTheta(layout, 8);
        const int units = 10, queries = 9;
        var set = new ResponseSet(layout, units, 3);
        var rng = new Rng(21);
        for (int u = 0; u < units; u++)
        {
            var r = new float[layout.ParameterCount];
            rng.FillNormal(r, 0f, 0.3f);
            set.Set(u, r);
        }

        Assert.Equal(new[] { 3, 3, 0 }, set.Ranks);
        var (x, y) = RandomData(layout, queries, 40);
        var batch = new float[queries * units];
        set.JacobianScores(theta, x, y, batch);
        var model = new Mlp(layout);
        model.LoadFrom(theta);
        var per = new float[queries * layout.ParameterCount];
        model.PerExampleGradients(x, y, queries, ModelOutput.Margin).Dense(0, queries, per);
        var ru = new float[layout.ParameterCount];
        var alone = new float[units];
        for (int q = 0; q < queries; q++)
        {
            set.JacobianScores(theta, x.AsSpan(q * 40, 40), y.AsSpan(q, 1), alone);
            for (int u = 0; u < units; u++)
            {
                set.Get(u, ru);
                double dot = System.Numerics.Tensors.TensorPrimitives.Dot(per.AsSpan(q * layout.ParameterCount, layout.ParameterCount), ru);
                Assert.Equal(dot, batch[q * units + u], 1e-4 * (1 + Math.Abs(dot)));
                Assert.Equal(batch[q * units + u], alone[u], 1e-5 * (1 + Math.Abs(dot)));
            }
        }
    }

    [Fact]
    public void Batches_of_one_to_five_score_each_query_as_a_batch_of_32_does_and_as_the_backward_dot()
    {
        // Protects the small-batch low-rank readout (a lone query read four factor rows at a time, rank 6: one group
        // of four rows and two left over; rows of 43 floats: whole vectors plus a tail of 3): every query of a batch
        // of 1-5 scores what it scores in a batch of 32 (up to the BLAS-computed full layer and biases, whose kernels
        // may differ with the batch size) and what the dense per-example gradient's dot with the response gives.
        var layout = new MlpLayout([43, 24, 6, 4]);
        var theta = RandomTheta(layout, 31);
        const int units = 17, queries = 32;
        var set = new ResponseSet(layout, units, 6);
        var rng = new Rng(32);
        for (int u = 0; u < units; u++)
        {
            var r = new float[layout.ParameterCount];
            rng.FillNormal(r, 0f, 0.3f);
            set.Set(u, r);
        }

        Assert.Equal(new[] { 6, 0, 0 }, set.Ranks);
        var (x, y) = RandomData(layout, queries, 33);
        var large = new float[queries * units];
        set.JacobianScores(theta, x, y, large);
        var model = new Mlp(layout);
        model.LoadFrom(theta);
        var per = new float[queries * layout.ParameterCount];
        model.PerExampleGradients(x, y, queries, ModelOutput.Margin).Dense(0, queries, per);
        var ru = new float[layout.ParameterCount];
        for (int q = 0; q < queries; q++)
        {
            for (int u = 0; u < units; u++)
            {
                set.Get(u, ru);
                double dot = System.Numerics.Tensors.TensorPrimitives.Dot(per.AsSpan(q * layout.ParameterCount, layout.ParameterCount), ru);
                Assert.Equal(dot, large[q * units + u], 1e-4 * (1 + Math.Abs(dot)));
            }
        }

        for (int batch = 1; batch <= 5; batch++)
        {
            for (int q0 = 0; q0 + batch <= queries; q0 += batch)
            {
                var small = new float[batch * units];
                set.JacobianScores(theta, x.AsSpan(q0 * 43, batch * 43), y.AsSpan(q0, batch), small);
                for (int j = 0; j < small.Length; j++)
                {
                    float expected = large[q0 * units + j];
                    Assert.Equal(expected, small[j], 1e-6 * (1 + Math.Abs(expected)));
                }
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
        for (int j = 0; j < reference.Length; j++)
        {
            Assert.Equal(reference[j], exact[j], 1e-3 * (1 + Math.Abs(reference[j])));
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
