using Attribution.Attribution;
using Attribution.Engine.Models;
using Attribution.Tests.Methods;

namespace Attribution.Tests;

/// <summary>The blend of two methods' standardised scores (stride:combine=blend): maths, calibration, probe-set round trip.</summary>
public sealed class BlendMethodTests
{
    private static readonly MlpLayout Layout = new([6, 16, 8, 3]);

    private static AttributionProblem Problem(int n, ulong seed, CalibrationSet? calibration = null)
    {
        var theta = KernelTests.RandomTheta(Layout, seed);
        var (x, y) = KernelTests.RandomData(Layout, n, seed + 100);
        return new AttributionProblem(Layout, theta, x, y, [.. Enumerable.Range(0, n).Select(i => i % 4)], 4) { Calibration = calibration };
    }

    // Protects the blend's formula: per query, (1 − w)·z(a) + w·z(b) with z = (s − mean) / population sd, computed here
    // by hand; a constant row contributes zeros (not NaN).
    [Fact]
    public void Blend_is_the_convex_combination_of_per_query_standardised_scores()
    {
        var a = new ScoreMatrix([1, 2, 3, 5, 5, 5], 2, 3, null, 0);
        var b = new ScoreMatrix([30, 10, 20, 0, 4, 8], 2, 3, null, 0);
        double s = Math.Sqrt(2.0 / 3);
        double[] za = [-1 / s, 0, 1 / s], zb = [1 / s, -1 / s, 0], zb2 = [-1 / s, 0, 1 / s];
        var blended = BlendMethod.Blend(a, b, 0.25);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal((0.75 * za[i]) + (0.25 * zb[i]), blended[i], 5);
            Assert.Equal(0.25 * zb2[i], blended[3 + i], 5); // the first part's second row is constant
        }

        Assert.Equal(za.Select(v => (float)v), BlendMethod.Blend(a, b, 0).Take(3), new Tolerance(1e-5f));
        Assert.Equal(zb.Select(v => (float)v), BlendMethod.Blend(a, b, 1).Take(3), new Tolerance(1e-5f));
    }

    // Protects the rank scale: each row is replaced by its ranks (ties share the mean rank) before standardising, so a
    // part's extreme score counts as one rank step: here a = [1, 2, 1000] blends as ranks [1, 2, 3], and b's tie
    // [5, 5, 9] as ranks [1.5, 1.5, 3].
    [Fact]
    public void Rank_scale_blends_standardised_ranks_with_ties_sharing_their_mean_rank()
    {
        var a = new ScoreMatrix([1, 2, 1000], 1, 3, null, 0);
        var b = new ScoreMatrix([5, 5, 9], 1, 3, null, 0);
        double s = Math.Sqrt(2.0 / 3), sb = Math.Sqrt(0.5);
        double[] za = [-1 / s, 0, 1 / s], zb = [-0.5 / sb, -0.5 / sb, 1 / sb];
        var blended = BlendMethod.Blend(a, b, 0.4, BlendScale.Rank);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal((0.6 * za[i]) + (0.4 * zb[i]), blended[i], 5);
        }

        // The z scale keeps magnitudes: a's 1000 dominates its row.
        Assert.True(BlendMethod.Blend(a, b, 0, BlendScale.Standardise)[2] > 1.4);
    }

    // Protects the generic blend spec: blend:a=..,b=.. builds any two methods with their prefixed options; two probe-set
    // parts give a servable ProbeSetBlendMethod, TRAK (no probe set) a plain BlendMethod; missing parts, a nested blend,
    // a bad weight and an option the parts do not know are refused.
    [Fact]
    public void Blend_spec_builds_any_two_methods_and_refuses_what_it_cannot_honour()
    {
        var trak = MethodFactory.Create("blend", new Dictionary<string, string> { ["a"] = "trak", ["a-k"] = "64", ["b"] = "forward-only", ["b-horizon"] = "5", ["weight"] = "0.7", ["scale"] = "rank" });
        var plain = Assert.IsType<BlendMethod>(trak);
        Assert.Equal(0.7, plain.Weight, 6);
        Assert.Equal(BlendScale.Rank, plain.Scale);
        Assert.Contains("k=64", trak.Describe());
        Assert.Contains("standardised ranks", trak.Describe());
        var probeSet = MethodFactory.Create("blend", new Dictionary<string, string> { ["a"] = "stride", ["a-k"] = "12", ["b"] = "forward-only" });
        Assert.True(double.IsNaN(Assert.IsType<ProbeSetBlendMethod>(probeSet).Weight));
        Assert.Equal(BlendScale.Rank, ((BlendMethod)MethodFactory.Create("stride", new Dictionary<string, string> { ["combine"] = "blend", ["combine-scale"] = "rank" })).Scale);

        Assert.Contains("a=<method>", Assert.Throws<MethodOptionException>(() => MethodFactory.Create("blend", new Dictionary<string, string> { ["b"] = "trak" })).Message);
        Assert.Contains("cannot be a blend", Assert.Throws<MethodOptionException>(() => MethodFactory.Create("blend", new Dictionary<string, string> { ["a"] = "blend", ["b"] = "trak" })).Message);
        Assert.Contains("share in [0, 1]", Assert.Throws<MethodOptionException>(() => MethodFactory.Create("blend", new Dictionary<string, string> { ["a"] = "trak", ["b"] = "trak", ["weight"] = "2" })).Message);
        Assert.Contains("horizon", Assert.Throws<MethodOptionException>(() => MethodFactory.Create("blend", new Dictionary<string, string> { ["a"] = "trak", ["a-horizon"] = "5", ["b"] = "trak" })).Message);
        Assert.Contains("combine=blend", Assert.Throws<MethodOptionException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["combine-scale"] = "rank" })).Message);
    }

    // Protects the calibration: weight auto takes the grid weight with the best objective on the calibration queries
    // (here the objective peaks at w = 0.3), so it is never worse there than either part alone (w = 0, w = 1); without
    // calibration queries auto is refused, saying how to get them.
    [Fact]
    public void Auto_weight_is_chosen_on_the_calibration_queries_and_never_loses_to_a_part_there()
    {
        var (x, y) = KernelTests.RandomData(Layout, 5, 9);
        var calibrationQueries = new QueryBatch(x, y, 6);
        var first = new FixedScores(7, 1);
        var second = new FixedScores(7, 2);
        var target = BlendMethod.Blend(first.Score(calibrationQueries), second.Score(calibrationQueries), 0.3);
        double Objective(ScoreMatrix m) => -m.Scores.Zip(target, (u, v) => (u - v) * (u - v)).Sum();
        var blend = new BlendMethod(first, second, weight: null);
        blend.Precompute(Problem(7, 1, new CalibrationSet(calibrationQueries, Objective, "test objective")));
        Assert.Equal(0.3, blend.Weight, 12);
        Assert.Equal(11, blend.Calibration.Count);
        double chosen = blend.Calibration.Single(c => c.Weight == blend.Weight).Objective;
        Assert.True(chosen >= blend.Calibration[0].Objective && chosen >= blend.Calibration[^1].Objective);
        Assert.Contains("weight 0.3 chosen on test objective", blend.Describe());
        // Scoring uses the chosen weight.
        Assert.Equal(target, blend.Score(calibrationQueries).Scores);

        var e = Assert.Throws<InvalidOperationException>(() => new BlendMethod(new FixedScores(7, 1), new FixedScores(7, 2), null).Precompute(Problem(7, 1)));
        Assert.Contains("combine-weight", e.Message);
        Assert.Throws<ArgumentException>(() => new BlendMethod(first, second, 1.5));
        Assert.Throws<ArgumentException>(() => new BlendMethod(first, second, null, [0.2, 1]));
    }

    // Protects serving: the blend of STRIDE and forward-only exports both parts' states side by side (prefixed names),
    // and a blend built from the same spec, imported from that state with no training data, scores exactly as the one
    // that precomputed it (examples and sources); a plain STRIDE state is refused as not a blend's.
    [Fact]
    public void Stride_forward_only_blend_round_trips_through_its_probe_set()
    {
        var spec = new Dictionary<string, string> { ["k"] = "12", ["d"] = "3", ["rank"] = "3", ["steps"] = "20", ["combine"] = "blend", ["combine-weight"] = "0.4", ["fo-horizon"] = "5" };
        var problem = Problem(20, 3);
        var method = (ProbeSetBlendMethod)MethodFactory.Create("stride", spec);
        method.Precompute(problem);
        var state = method.ExportState();
        Assert.Contains(state.ExampleTensors, t => t.Name == "0/stride.subsets");
        Assert.Contains(state.ExampleTensors, t => t.Name.StartsWith("1/", StringComparison.Ordinal));
        Assert.Contains(state.Shared, t => t.Layout.Name == "0/stride.basis");
        Assert.Equal(20, state.Examples.Count);

        var (x, y) = KernelTests.RandomData(Layout, 4, 77);
        var queries = new QueryBatch(x, y, 6);
        var expected = method.Score(queries);
        var served = (ProbeSetBlendMethod)MethodFactory.CreateServed("stride:k=12,d=3,rank=3,steps=20,combine=blend,combine-weight=0.4,fo-horizon=5");
        served.ImportState(ServedModel.Of(problem), state);
        var actual = served.Score(queries);
        Assert.Equal(expected.Scores, actual.Scores);
        Assert.Equal(expected.SourceScores, actual.SourceScores);
        for (int s = 0; s < 4; s++)
        {
            Assert.Equal(Enumerable.Range(0, 20).Where(i => i % 4 == s).Sum(i => (double)expected.Row(1)[i]), expected.SourceScores[4 + s], 4);
        }

        var strideAlone = (IProbeSetMethod)MethodFactory.Create("stride", new Dictionary<string, string> { ["k"] = "12", ["d"] = "3", ["rank"] = "3", ["steps"] = "20" });
        strideAlone.Precompute(problem);
        Assert.Contains("not a blend", Assert.Throws<ArgumentException>(() => served.ImportState(ServedModel.Of(problem), strideAlone.ExportState())).Message);
    }

    // Protects a blend whose part is an ensemble (blend:a=stride,a-models=2,b=forward-only): the STRIDE part trains one set
    // of operators per model and averages (what stride:models=2 alone scores), the forward-only part stays one model
    // (θ* = the first), and the blend is their z-blend; given one model, the STRIDE part refuses, naming the count.
    [Fact]
    public void A_blend_part_ensembles_over_its_models_and_the_other_part_keeps_one()
    {
        var (x0, y0) = KernelTests.RandomData(Layout, 20, 103);
        int[] sources = [.. Enumerable.Range(0, 20).Select(i => i % 4)];
        float[] theta0 = KernelTests.RandomTheta(Layout, 3), theta1 = KernelTests.RandomTheta(Layout, 4);
        var two = new AttributionProblem(Layout, theta0, x0, y0, sources, 4, checkpoints: [theta0, theta1]);
        var stride = new Dictionary<string, string> { ["k"] = "12", ["d"] = "3", ["rank"] = "3", ["steps"] = "20" };
        var blend = MethodFactory.Create("blend", new Dictionary<string, string>
        {
            ["a"] = "stride", ["a-k"] = "12", ["a-d"] = "3", ["a-rank"] = "3", ["a-steps"] = "20", ["a-models"] = "2",
            ["b"] = "forward-only", ["b-horizon"] = "5", ["weight"] = "0.4",
        });
        Assert.IsType<BlendMethod>(blend); // an ensemble is not a probe set: eval-only, not served
        Assert.Contains("averaged over 2 independently trained models", blend.Describe());
        blend.Precompute(two);

        var ensemble = MethodFactory.Create("stride", new Dictionary<string, string>(stride) { ["models"] = "2" });
        ensemble.Precompute(two);
        var single = MethodFactory.Create("stride", stride);
        single.Precompute(two);
        var forward = MethodFactory.Create("forward-only", new Dictionary<string, string> { ["horizon"] = "5" });
        forward.Precompute(new AttributionProblem(Layout, theta0, x0, y0, sources, 4));
        var (x, y) = KernelTests.RandomData(Layout, 4, 77);
        var queries = new QueryBatch(x, y, 6);
        var expected = BlendMethod.Blend(ensemble.Score(queries), forward.Score(queries), 0.4);
        Assert.Equal(expected, blend.Score(queries).Scores, new Tolerance(1e-3f));
        // Not one STRIDE model: the second model's operators move the blend.
        var oneModel = BlendMethod.Blend(single.Score(queries), forward.Score(queries), 0.4);
        Assert.True(expected.Zip(oneModel, (u, v) => Math.Abs(u - v)).Max() > 0.05);

        var fresh = MethodFactory.Create("blend", new Dictionary<string, string> { ["a"] = "stride", ["a-k"] = "12", ["a-models"] = "2", ["b"] = "forward-only", ["weight"] = "0.4" });
        Assert.Contains("needs 2 independently trained models but only 1", Assert.Throws<MethodOptionException>(() => fresh.Precompute(Problem(20, 3))).Message);
    }

    private sealed class Tolerance(float eps) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= eps;

        public int GetHashCode(float v) => 0;
    }

    // Deterministic per-(query, example) scores from the query's inputs: a stand-in part with no model maths.
    private sealed class FixedScores(int n, int salt) : IProbeSetMethod
    {
        public string Name => $"fixed{salt}";

        public long StateBytes => 0;

        public string Describe() => Name;

        public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
        {
        }

        public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
        {
            var scores = new float[queries.Count * n];
            for (int q = 0; q < queries.Count; q++)
            {
                for (int i = 0; i < n; i++)
                {
                    scores[(q * n) + i] = MathF.Sin((queries.Inputs[q * queries.InputWidth] * (i + 1) * salt) + i);
                }
            }

            return new ScoreMatrix(scores, queries.Count, n, null, 0);
        }

        public ProbeSetState ExportState() => throw new NotSupportedException();

        public void ImportState(ServedModel model, ProbeSetState state) => throw new NotSupportedException();
    }
}
