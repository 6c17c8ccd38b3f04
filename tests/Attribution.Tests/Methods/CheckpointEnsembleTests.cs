using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Attribution.Stride;
using Attribution.Engine.Models;

namespace Attribution.Tests.Methods;

/// <summary>
/// <c>checkpoints=J</c> for any ensembled method (<see cref="EnsembleMethod"/> over <see cref="EnsembleMembers.TrainingCheckpoints"/>):
/// STRIDE's operators trained at each spread checkpoint, models × checkpoints, and the combinations that are refused.
/// </summary>
public sealed class CheckpointEnsembleTests
{
    private static readonly MlpLayout Layout = new([6, 16, 8, 3]);

    private static AttributionProblem Problem(int n, ulong seed, IReadOnlyList<float[]>? extra = null, IReadOnlyList<IReadOnlyList<float[]>>? saved = null)
    {
        var theta = KernelTests.RandomTheta(Layout, seed);
        var (x, y) = KernelTests.RandomData(Layout, n, seed + 100);
        var src = Enumerable.Range(0, n).Select(i => i % 4).ToArray();
        var models = extra is null ? null : new[] { theta }.Concat(extra).ToArray();
        return new AttributionProblem(Layout, theta, x, y, src, 4, 0f, models) { TrainingCheckpoints = saved ?? [] };
    }

    private static AttributionProblem At(AttributionProblem problem, float[] theta) =>
        new(Layout, theta, problem.TrainInputs, problem.TrainLabels, problem.SourceIds, problem.SourceCount);

    private static QueryBatch Queries(int q, ulong seed)
    {
        var (x, y) = KernelTests.RandomData(Layout, q, seed);
        return new QueryBatch(x, y, Layout.Widths[0]);
    }

    private static float[] Mean(params float[][] members) =>
        [.. Enumerable.Range(0, members[0].Length).Select(i => members.Sum(m => m[i]) / members.Length)];

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(v => Math.Abs(v));
        Assert.True(scale > 0, "reference scores are all zero");
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * scale, $"entry {i}: expected {expected[i]}, got {actual[i]} (scale {scale:G3})");
        }
    }

    // Protects stride:checkpoints=J: each member trains its operators on the model at its own checkpoint (spread over the
    // run: 2 of 4 are the 2nd and the 4th), measures and recovers there, and the scores (example and source) are the mean.
    [Fact]
    public void Stride_over_training_checkpoints_trains_operators_at_each_spread_checkpoint_and_averages_the_scores()
    {
        var theta = KernelTests.RandomTheta(Layout, 7);
        var saved = new[] { KernelTests.RandomTheta(Layout, 71), KernelTests.RandomTheta(Layout, 72), KernelTests.RandomTheta(Layout, 73), theta };
        var problem = Problem(40, 7, saved: [saved]);
        var spec = new Dictionary<string, string> { ["k"] = "20", ["d"] = "2", ["rank"] = "2", ["steps"] = "30", ["sketch"] = "4" };
        var averaged = Assert.IsType<EnsembleMethod>(MethodFactory.Create("stride", new Dictionary<string, string>(spec) { ["checkpoints"] = "2" }));
        Assert.Equal(EnsembleMembers.TrainingCheckpoints, averaged.Over);
        averaged.Precompute(problem);
        Assert.Contains("2 training checkpoints of one model", averaged.Describe(), StringComparison.Ordinal);
        Assert.All(averaged.Members, m => Assert.IsType<StrideMethod>(m));
        Assert.NotSame(averaged.Members[0], averaged.Members[1]);

        var queries = Queries(5, 74);
        var members = new[] { saved[1], saved[3] }.Select(t =>
        {
            var m = MethodFactory.Create("stride", spec);
            m.Precompute(At(problem, t));
            return m;
        }).ToArray();
        AssertClose(Mean([.. members.Select(m => m.Score(queries).Scores)]), averaged.Score(queries).Scores);
        AssertClose(Mean([.. members.Select(m => m.ScoreSources(queries))]), averaged.ScoreSources(queries));
        // The checkpoints differ, so the average is not one member's scores.
        Assert.NotEqual(members[0].Score(queries).Scores, members[1].Score(queries).Scores);

        var e = Assert.Throws<MethodOptionException>(() => MethodFactory.Create("stride", new Dictionary<string, string>(spec) { ["checkpoints"] = "5" }).Precompute(problem));
        Assert.Contains("checkpoints=5 needs 5 checkpoints saved along training but 4 were given", e.Message, StringComparison.Ordinal);
    }

    // Protects models=m with checkpoints=J: an ensemble of m checkpoint averages, member k at model k's own saved
    // checkpoints (not model 0's); a model without saved checkpoints is an error naming the fix.
    [Fact]
    public void Models_times_checkpoints_average_every_models_own_spread_checkpoints()
    {
        var theta = KernelTests.RandomTheta(Layout, 8);
        var second = KernelTests.RandomTheta(Layout, 81);
        var saved0 = new[] { KernelTests.RandomTheta(Layout, 82), KernelTests.RandomTheta(Layout, 83), theta };
        var saved1 = new[] { KernelTests.RandomTheta(Layout, 84), KernelTests.RandomTheta(Layout, 85), second };
        var problem = Problem(30, 8, extra: [second], saved: [saved0, saved1]);
        var spec = new Dictionary<string, string> { ["models"] = "2", ["checkpoints"] = "2" };
        var ensemble = Assert.IsType<EnsembleMethod>(MethodFactory.Create("grad-dot", spec));
        Assert.Equal(EnsembleMembers.Models, ensemble.Over);
        ensemble.Precompute(problem);
        Assert.All(ensemble.Members, m => Assert.Equal(EnsembleMembers.TrainingCheckpoints, Assert.IsType<EnsembleMethod>(m).Over));
        Assert.Contains("2 training checkpoints of one model", ensemble.Describe(), StringComparison.Ordinal);
        Assert.Contains("averaged over 2 independently trained models", ensemble.Describe(), StringComparison.Ordinal);

        // 2 of 3 spread: the 2nd and the 3rd of each model's run.
        var queries = Queries(4, 86);
        var expected = new[] { saved0[1], saved0[2], saved1[1], saved1[2] }.Select(t =>
        {
            IAttributionMethod m = new TracInMethod(gradDot: true);
            m.Precompute(At(problem, t));
            return m.Score(queries).Scores;
        }).ToArray();
        AssertClose(Mean(expected), ensemble.Score(queries).Scores);

        var oneRun = Problem(30, 8, extra: [second], saved: [saved0]);
        var e = Assert.Throws<MethodOptionException>(() => MethodFactory.Create("grad-dot", spec).Precompute(oneRun));
        Assert.Contains("checkpoints=2 needs 2 checkpoints saved along training but 0 were given (train with --save-every N)", e.Message, StringComparison.Ordinal);
    }

    // Protects checkpoints=J beyond forward-only and STRIDE: TRAK (one model, its own projection at each checkpoint) goes
    // through the same EnsembleMethod path and equals the mean of TRAK precomputed at each spread checkpoint.
    [Fact]
    public void Trak_over_training_checkpoints_is_the_mean_of_trak_at_each_spread_checkpoint()
    {
        var theta = KernelTests.RandomTheta(Layout, 9);
        var saved = new[] { KernelTests.RandomTheta(Layout, 91), KernelTests.RandomTheta(Layout, 92), theta };
        var problem = Problem(30, 9, saved: [saved]);
        var spec = new Dictionary<string, string> { ["k"] = "16", ["projector"] = "sjlt", ["damping"] = "1" };
        var averaged = MethodFactory.Create("trak", new Dictionary<string, string>(spec) { ["checkpoints"] = "2" });
        averaged.Precompute(problem);
        var queries = Queries(4, 93);
        var expected = new[] { saved[1], saved[2] }.Select(t =>
        {
            var m = MethodFactory.Create("trak", spec);
            m.Precompute(At(problem, t));
            return m.Score(queries).Scores;
        }).ToArray();
        AssertClose(Mean(expected), averaged.Score(queries).Scores);
    }

    // Protects the blend's part options: a-checkpoints / b-checkpoints reach the parts (each its own checkpoint average).
    [Fact]
    public void A_blend_passes_checkpoints_to_its_parts()
    {
        var blend = MethodFactory.Create("blend", new Dictionary<string, string>
        {
            ["a"] = "stride", ["a-checkpoints"] = "3", ["a-k"] = "20", ["a-d"] = "2", ["b"] = "grad-dot", ["b-checkpoints"] = "2", ["weight"] = "0.5",
        });
        Assert.Contains("averaged over 3 training checkpoints", blend.Describe(), StringComparison.Ordinal);
        Assert.Contains("averaged over 2 training checkpoints", blend.Describe(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("grad-dot", "checkpoints=0", "must be at least 1")]
    [InlineData("tracin", "checkpoints=2", "already sums over every training checkpoint")]
    [InlineData("trak", "models=2,checkpoints=2", "not both")]
    [InlineData("stride", "checkpoints=2,combine=prior", "a-checkpoints=J")]
    [InlineData("stride", "checkpoints=2,combine=blend", "a-checkpoints=J")]
    [InlineData("blend", "a=stride,b=grad-dot,checkpoints=2", "ensemble a part: a-models=m, a-checkpoints=J")]
    [InlineData("bm25", "checkpoints=2", "not ensembled over trained models or their checkpoints")]
    [InlineData("stride", "checkpoints=x", "must be an integer")]
    public void Checkpoint_combinations_that_cannot_be_honoured_are_refused(string name, string options, string why)
    {
        var opts = options.Split(',').Select(o => o.Split('=')).ToDictionary(kv => kv[0], kv => kv[1]);
        var e = Assert.Throws<MethodOptionException>(() => MethodFactory.Create(name, opts));
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stride_over_checkpoints_is_not_served_and_says_where_it_runs() =>
        Assert.Contains("stride:checkpoints=J runs with ./pipeline attribute or eval",
            Assert.Throws<MethodOptionException>(() => MethodFactory.CreateServed("stride:checkpoints=2")).Message, StringComparison.Ordinal);
}
