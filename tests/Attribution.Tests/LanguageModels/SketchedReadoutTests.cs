using Attribution.Attribution;

namespace Attribution.Tests.LanguageModels;

/// <summary>
/// <c>forward-only:sketch=k</c> (<see cref="SketchedReadoutMethod"/>): the readout over k-float SJLT sketches of the
/// responses approximates the full readout (JL: error about ‖∇f_q‖‖r_u‖/√k) and an imported method sketches exactly
/// what the offline one did.
/// </summary>
public sealed class SketchedReadoutTests
{
    private static Dictionary<string, string> Spec(int sketch) => new()
    {
        ["horizon"] = "3", ["eta"] = "0.01", ["batch"] = "0", ["rank"] = "2", ["sketch"] = sketch.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    [Fact]
    public void A_large_sketch_reads_nearly_the_full_readouts_scores_and_a_small_one_less_well()
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var full = MethodFactory.Create("forward-only", Spec(0));
        full.Precompute(problem);
        var exact = full.Score(queries).Scores;
        double Agreement(int k)
        {
            var sketched = MethodFactory.Create("forward-only", Spec(k));
            Assert.IsType<SketchedReadoutMethod>(sketched);
            sketched.Precompute(problem);
            var s = sketched.Score(queries).Scores;
            Assert.Equal(exact.Length, s.Length);
            return Pearson(exact, s);
        }

        double large = Agreement(4096), small = Agreement(8);
        Assert.True(large > 0.98, $"k = 4096: Pearson {large:F4}");
        Assert.True(small < large, $"k = 8: Pearson {small:F4} vs {large:F4}");
    }

    [Fact]
    public void A_method_imported_from_the_exported_state_scores_exactly_like_the_one_that_precomputed_it()
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var offline = (SketchedReadoutMethod)MethodFactory.Create("forward-only", Spec(64));
        offline.Precompute(problem);
        var served = (SketchedReadoutMethod)MethodFactory.Create("forward-only", Spec(64));
        served.ImportState(ServedModel.Of(problem), offline.ExportState());
        Assert.Equal(offline.Score(queries).Scores, served.Score(queries).Scores);
        Assert.Equal(offline.ScoreSources(queries), served.ScoreSources(queries));
        Assert.Equal(queries.Count * problem.SourceCount, served.ScoreSources(queries).Length);
    }

    private static double Pearson(float[] a, float[] b)
    {
        double ma = a.Average(x => (double)x), mb = b.Average(x => (double)x), sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sab += (a[i] - ma) * (b[i] - mb);
            saa += (a[i] - ma) * (a[i] - ma);
            sbb += (b[i] - mb) * (b[i] - mb);
        }

        return sab / Math.Sqrt(saa * sbb);
    }
}
