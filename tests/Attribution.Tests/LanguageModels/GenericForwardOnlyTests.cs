using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Tests.LanguageModels;

/// <summary>
/// The model-generic forward-only path and the MLP's stacked path simulate the same trajectories: on one MLP problem,
/// posed once with its layout (stacked path) and once as a plain model factory (generic path), the scores agree.
/// </summary>
public sealed class GenericForwardOnlyTests
{
    [Fact]
    public void The_generic_path_on_an_mlp_gives_the_stacked_paths_scores()
    {
        var mlp = new Mlp([6, 5, 3], seed: 2);
        var layout = mlp.Layout;
        var theta = mlp.ToFlat();
        var rng = new Rng(4);
        var x = new float[10 * 6];
        rng.FillNormal(x);
        int[] y = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0];
        int[] sources = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
        var q = new float[3 * 6];
        rng.FillNormal(q);
        var queries = new QueryBatch(q, [2, 0, 1], 6);
        var options = new ForwardOnlyOptions { Horizon = 3, Epsilon = 1e-2f, StepSize = 0.05f, BatchSize = 4, Rank = 0, InputBasisEnergy = 0, Propagation = ForwardPropagation.Trajectory };
        var stacked = new ForwardOnlyMethod(options);
        stacked.Precompute(new AttributionProblem(layout, theta, x, y, sources, weightDecay: 1e-3f));
        var generic = new ForwardOnlyMethod(options);
        generic.Precompute(new AttributionProblem(() => new Mlp(layout), theta, ModelBatch.Classification(x, y), sources, weightDecay: 1e-3f));
        Assert.Equal(stacked.Describe(), generic.Describe()); // one method: only the simulator's inner loop differs
        var (a, sa) = stacked.ScoreAll(queries);
        var (b, sb) = generic.ScoreAll(queries);
        double scale = a.Scores.Max(v => Math.Abs(v));
        Assert.True(scale > 1e-4);
        for (int i = 0; i < a.Scores.Length; i++)
        {
            Assert.Equal(a.Scores[i], b.Scores[i], 2e-3 * scale);
        }

        for (int i = 0; i < sa.Length; i++)
        {
            Assert.Equal(sa[i], sb[i], 4e-3 * scale);
        }
    }
}
