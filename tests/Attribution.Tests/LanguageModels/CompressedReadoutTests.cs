using Attribution.Attribution;
using Attribution.Attribution.Kernels;
using Attribution.Engine;

namespace Attribution.Tests.LanguageModels;

/// <summary>
/// The fitted compression of the responses (<see cref="ResponseBasis"/>, <c>forward-only:compress=k</c>,
/// <c>trak:compress=k</c>): exact when k reaches the rank, within the Cauchy–Schwarz bound below it, energy monotone in k,
/// and an imported method scores exactly like the offline one.
/// </summary>
public sealed class CompressedReadoutTests
{
    private static Dictionary<string, string> Spec(string key, int k) => new()
    {
        ["horizon"] = "3", ["eta"] = "0.01", ["batch"] = "0", ["rank"] = "2", [key] = k.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    // Rows of rank 5 in 40 dimensions (a 9 × 5 by 5 × 40 product), plus queries.
    private static (float[] Rows, float[] Queries) LowRankRows(int count, int columns, int rank, ulong seed)
    {
        var rng = new Rng(seed);
        var left = new float[count * rank];
        var right = new float[rank * columns];
        rng.FillNormal(left, 0f, 1f);
        rng.FillNormal(right, 0f, 1f);
        var rows = new float[count * columns];
        Blas.Gemm(false, false, count, columns, rank, 1f, left, right, 0f, rows);
        var queries = new float[3 * columns];
        rng.FillNormal(queries, 0f, 1f);
        return (rows, queries);
    }

    private static double[] Dots(ResponseBasis basis, float[] a, int na, float[] b, int nb)
    {
        var ca = new float[na * basis.Rank];
        var cb = new float[nb * basis.Rank];
        basis.Project(a, na, ca);
        basis.Project(b, nb, cb);
        var d = new double[na * nb];
        for (int i = 0; i < na; i++)
        {
            for (int j = 0; j < nb; j++)
            {
                double s = 0;
                for (int r = 0; r < basis.Rank; r++)
                {
                    s += ca[(i * basis.Rank) + r] * cb[(j * basis.Rank) + r];
                }

                d[(i * nb) + j] = s;
            }
        }

        return d;
    }

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * (double)b[i];
        }

        return s;
    }

    [Fact]
    public void A_basis_at_least_as_large_as_the_rank_reads_every_fitted_row_exactly_and_stops_at_the_rank()
    {
        const int n = 9, m = 40;
        var (rows, queries) = LowRankRows(n, m, 5, 3);
        var basis = ResponseBasis.Fit(rows, n, m, 8);
        Assert.Equal(5, basis.Rank); // the floor drops the 4 rounding-level directions instead of amplifying them
        Assert.Equal(1.0, basis.EnergyKept, 6);
        var compressed = Dots(basis, queries, 3, rows, n);
        for (int q = 0; q < 3; q++)
        {
            for (int u = 0; u < n; u++)
            {
                double exact = Dot(queries.AsSpan(q * m, m), rows.AsSpan(u * m, m));
                Assert.True(Math.Abs(compressed[(q * n) + u] - exact) <= 1e-4 * (1 + Math.Abs(exact)), $"q {q} u {u}: {compressed[(q * n) + u]} vs {exact}");
            }
        }
    }

    [Fact]
    public void Below_the_rank_the_error_is_within_the_residual_bound_and_the_energy_grows_with_k()
    {
        const int n = 12, m = 30;
        var (rows, queries) = LowRankRows(n, m, 12, 4);
        double previous = 0;
        for (int k = 1; k <= 12; k++)
        {
            var basis = ResponseBasis.Fit(rows, n, m, k);
            Assert.Equal(k, basis.Rank);
            Assert.True(basis.EnergyKept >= previous - 1e-12, $"energy at k = {k}: {basis.EnergyKept} < {previous}");
            previous = basis.EnergyKept;

            // The spectrum's share equals the share of Σ‖r_u‖² the coefficients hold.
            var coefficients = new float[n * k];
            basis.Project(rows, n, coefficients);
            Assert.Equal(basis.EnergyKept, Dot(coefficients, coefficients) / Dot(rows, rows), 4);

            // The basis itself (B, k x m), read off by projecting the unit vectors: column i of B is the projection of e_i.
            var identity = new float[m * m];
            for (int i = 0; i < m; i++)
            {
                identity[(i * m) + i] = 1f;
            }

            var unitCoefficients = new float[m * k];
            basis.Project(identity, m, unitCoefficients);

            var compressed = Dots(basis, queries, 3, rows, n);
            for (int u = 0; u < n; u++)
            {
                var r = rows.AsSpan(u * m, m);
                var c = coefficients.AsSpan(u * k, k);
                // The residual r - Bᵀc directly (in double), not sqrt(|r|² - |c|²): at k = rank - 1 the dropped energy can
                // be below the float rounding of |r|², and the difference of squares then reads 0 where it is not.
                double residual2 = 0;
                for (int i = 0; i < m; i++)
                {
                    double reconstructed = 0;
                    for (int j = 0; j < k; j++)
                    {
                        reconstructed += (double)unitCoefficients[(i * k) + j] * c[j];
                    }

                    double d = r[i] - reconstructed;
                    residual2 += d * d;
                }

                double residual = Math.Sqrt(residual2);
                for (int q = 0; q < 3; q++)
                {
                    var g = queries.AsSpan(q * m, m);
                    double norms = Math.Sqrt(Dot(g, g)) * Math.Sqrt(Dot(r, r));
                    double bound = (Math.Sqrt(Dot(g, g)) * residual) + (1e-5 * norms);
                    double error = Math.Abs(compressed[(q * n) + u] - Dot(g, r));
                    Assert.True(error <= bound, $"k {k}, q {q}, u {u}: error {error} > bound {bound} (residual {residual})");
                }
            }
        }

        Assert.Equal(1.0, previous, 6);
    }

    [Fact]
    public void Forward_only_compressed_to_the_number_of_documents_scores_exactly_like_the_full_readout()
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var full = MethodFactory.Create("forward-only", Spec("compress", 0));
        full.Precompute(problem);
        var exact = full.Score(queries).Scores;
        var compressed = Assert.IsType<CompressedReadoutMethod>(MethodFactory.Create("forward-only", Spec("compress", problem.Count)));
        compressed.Precompute(problem);
        var s = compressed.Score(queries).Scores;
        float scale = exact.Max(MathF.Abs);
        Assert.True(scale > 0);
        for (int i = 0; i < exact.Length; i++)
        {
            Assert.True(MathF.Abs(s[i] - exact[i]) <= 2e-3f * scale, $"score {i}: {s[i]} vs {exact[i]}");
        }

        // Below the rank it loses energy, never gains it.
        var small = (CompressedReadoutMethod)MethodFactory.Create("forward-only", Spec("compress", 2));
        small.Precompute(problem);
        Assert.Equal(2, small.Basis.Rank);
        Assert.True(small.Basis.EnergyKept < compressed.Basis.EnergyKept);
        Assert.True(compressed.StateBytes > 0);
    }

    [Fact]
    public void A_method_imported_from_the_exported_state_scores_exactly_like_the_one_that_precomputed_it()
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var offline = (CompressedReadoutMethod)MethodFactory.Create("forward-only", Spec("compress", 3));
        offline.Precompute(problem);
        var served = (CompressedReadoutMethod)MethodFactory.Create("forward-only", Spec("compress", 3));
        served.ImportState(ServedModel.Of(problem), offline.ExportState());
        Assert.Equal(offline.Score(queries).Scores, served.Score(queries).Scores);
        Assert.Equal(offline.ScoreSources(queries), served.ScoreSources(queries));
    }

    [Fact]
    public void Trak_with_its_features_compressed_to_the_number_of_documents_scores_like_trak()
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var plain = MethodFactory.Create("trak", new Dictionary<string, string> { ["k"] = "32", ["damping"] = "1" });
        plain.Precompute(problem);
        var exact = plain.Score(queries).Scores;
        var compressed = MethodFactory.Create("trak", new Dictionary<string, string> { ["k"] = "32", ["damping"] = "1", ["compress"] = problem.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        compressed.Precompute(problem);
        var s = compressed.Score(queries).Scores;
        float scale = exact.Max(MathF.Abs);
        for (int i = 0; i < exact.Length; i++)
        {
            Assert.True(MathF.Abs(s[i] - exact[i]) <= 1e-3f * scale, $"score {i}: {s[i]} vs {exact[i]}");
        }

        Assert.Contains("compress=6", compressed.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_basis_larger_than_the_probe_set_is_refused_saying_how_many_documents_there_are()
    {
        // The Scorer builds the method from its settings before it knows the set's size: k > n must fail at the
        // import (a rejected set, not a silently smaller basis), for the offline method alike (one code path).
        var (problem, _, _) = GptGradientMethodTests.Build();
        int n = problem.Count;
        var offline = (CompressedReadoutMethod)MethodFactory.Create("forward-only", Spec("compress", n));
        offline.Precompute(problem);
        var tooLarge = (CompressedReadoutMethod)MethodFactory.Create("forward-only", Spec("compress", n + 1));
        var e = Assert.Throws<ArgumentException>(() => tooLarge.ImportState(ServedModel.Of(problem), offline.ExportState()));
        Assert.Contains($"compress={n + 1} asks for more basis directions than the probe set's {n} documents", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => MethodFactory.Create("forward-only", Spec("compress", n + 1)).Precompute(problem));
    }

    [Fact]
    public void Compress_with_sketch_or_a_negative_size_is_refused()
    {
        var both = Spec("compress", 4);
        both["sketch"] = "64";
        Assert.Throws<MethodOptionException>(() => MethodFactory.Create("forward-only", both));
        Assert.Throws<MethodOptionException>(() => MethodFactory.Create("forward-only", Spec("compress", -1)));
        Assert.Throws<MethodOptionException>(() => MethodFactory.Create("trak", new Dictionary<string, string> { ["compress"] = "-2" }));
    }
}
