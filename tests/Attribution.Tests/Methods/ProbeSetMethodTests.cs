using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Attribution.Probes;
using Attribution.Contracts;
using Attribution.Engine.Models;
using Attribution.Tests.LanguageModels;

namespace Attribution.Tests.Methods;

/// <summary>
/// <see cref="IProbeSetMethod"/>: a forward-only method exports its state as named tensors, and a fresh method object
/// imports it with no training data and scores exactly as the precomputed one (examples and simulated sources), for the
/// MLP path and the model-generic GPT path. What the Scorer serves from a probe set rests on this round trip.
/// </summary>
public sealed class ProbeSetMethodTests
{
    private static readonly Dictionary<string, string> Settings = new() { ["horizon"] = "3", ["eps"] = "0.01", ["eta"] = "0.01", ["batch"] = "0", ["rank"] = "2" };

    [Fact]
    public void Gpt_state_round_trips_through_named_tensors_and_scores_identically()
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var method = (IProbeSetMethod)MethodFactory.Create("forward-only", Settings);
        method.Precompute(problem);
        var state = method.ExportState();

        Assert.Equal(problem.Architecture, state.Architecture);
        Assert.Equal(problem.Count, state.Examples.Count);
        Assert.Empty(state.Sources); // a source scores the sum of its examples: no source units
        Assert.Empty(state.Shared);
        // Named after the model's own tensors: attention and MLP projections with their biases, some at rank 2.
        var names = problem.CreateModel().Tensors.Select(t => t.Name).ToHashSet();
        Assert.All(state.ExampleTensors, t => Assert.Contains(t.Name, names));
        Assert.Contains(state.ExampleTensors, t => t.Rank == 2);
        Assert.Contains(state.ExampleTensors, t => t.Name.EndsWith("bias", StringComparison.Ordinal) && t.Cols == 1);

        var served = (IProbeSetMethod)MethodFactory.Create("forward-only", Settings);
        served.ImportState(ServedModel.Of(problem), state);
        AssertSameScores((ForwardOnlyMethod)method, (ForwardOnlyMethod)served, queries);
        // Export after import gives the same blocks back (nothing is re-factorised).
        var again = served.ExportState();
        for (int u = 0; u < state.Examples.Count; u++)
        {
            Assert.Equal(state.Examples[u], again.Examples[u]);
        }
    }

    [Fact]
    public void The_simulators_gpt_probes_of_any_share_of_units_are_the_methods_exported_blocks()
    {
        // What the Simulator publishes (ModelProbeSimulator, per unit, any subset: a scale-out share or the units not yet
        // on the topic) equals what the offline method exports, so a Scorer importing the probes scores like 'attribute'.
        var (problem, _, _) = GptGradientMethodTests.Build();
        var method = (IProbeSetMethod)MethodFactory.Create("forward-only", Settings);
        method.Precompute(problem);
        var state = method.ExportState();
        var options = ((ForwardOnlyMethod)method).Options;
        var simulator = new ModelProbeSimulator(problem, options, ProbePrecision.Float32);
        Assert.Equal(state.ExampleTensors, simulator.Layout.Tensors);
        Assert.Empty(state.SourceTensors); // sources score the sum of their examples: none is simulated
        Assert.Empty(state.Sources);
        Assert.Equal(simulator.Layout.Tensors, ModelProbeSimulator.LayoutOf(problem, options.Rank, ProbePrecision.Float32).Tensors);
        int[] share = [4, 1];
        var got = new Dictionary<int, float[]>();
        simulator.Simulate(share, (i, floats) => got[share[i]] = (float[])floats.Clone());
        foreach (var u in share)
        {
            Assert.Equal(state.Examples[u], got[u], new FloatTolerance(1e-5f));
        }
    }

    private sealed class FloatTolerance(float relative) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= relative * Math.Max(1f, Math.Max(Math.Abs(x), Math.Abs(y)));

        public int GetHashCode(float obj) => 0;
    }

    [Fact]
    public void Mlp_state_round_trips_through_named_tensors_and_scores_identically()
    {
        var layout = new MlpLayout([6, 5, 3]);
        var theta = KernelTests.RandomTheta(layout, 3);
        var (x, y) = KernelTests.RandomData(layout, 12, 4);
        var problem = new AttributionProblem(layout, theta, x, y, [.. Enumerable.Range(0, 12).Select(i => i % 3)], 3);
        var (qx, qy) = KernelTests.RandomData(layout, 4, 9);
        var queries = new QueryBatch(qx, qy, 6);
        var method = (IProbeSetMethod)MethodFactory.Create("forward-only", Settings);
        method.Precompute(problem);
        var state = method.ExportState();
        Assert.Equal("mlp:6-5-3", state.Architecture);
        Assert.Equal(["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"], state.ExampleTensors.Select(t => t.Name));
        Assert.Equal(2, state.ExampleTensors[0].Rank); // 2·(5+6) < 5·6: low rank
        Assert.Empty(state.SourceTensors); // no source units: a source scores the sum of its examples

        var served = (IProbeSetMethod)MethodFactory.Create("forward-only", Settings);
        served.ImportState(ServedModel.Of(problem), state);
        AssertSameScores((ForwardOnlyMethod)method, (ForwardOnlyMethod)served, queries);
    }

    [Fact]
    public void A_state_that_does_not_fit_the_served_model_is_refused_with_what_differs()
    {
        var (problem, _, _) = GptGradientMethodTests.Build();
        var method = (IProbeSetMethod)MethodFactory.Create("forward-only", Settings);
        method.Precompute(problem);
        var state = method.ExportState();
        var fewer = ServedModel.Of(problem) with { ExampleSources = problem.SourceIds[1..] };
        var e = Assert.Throws<ArgumentException>(() => ((IProbeSetMethod)MethodFactory.Create("forward-only", Settings)).ImportState(fewer, state));
        Assert.Contains($"{problem.Count} example", e.Message, StringComparison.Ordinal);

        var truncated = new ProbeSetState { Architecture = state.Architecture, ExampleTensors = state.ExampleTensors, Examples = [.. state.Examples.Select(b => b[1..])], SourceTensors = state.SourceTensors, Sources = state.Sources };
        e = Assert.Throws<ArgumentException>(() => ((IProbeSetMethod)MethodFactory.Create("forward-only", Settings)).ImportState(ServedModel.Of(problem), truncated));
        Assert.Contains("example unit 0 has", e.Message, StringComparison.Ordinal);
    }

    private static void AssertSameScores(ForwardOnlyMethod expected, ForwardOnlyMethod actual, QueryBatch queries)
    {
        var (e, es) = expected.ScoreAll(queries);
        var (a, @as) = actual.ScoreAll(queries);
        Assert.Contains(e.Scores, v => v != 0f);
        Assert.Equal(e.Scores, a.Scores);
        Assert.Equal(es, @as);
        Assert.Equal(e.SourceScores, a.SourceScores);
    }
}
