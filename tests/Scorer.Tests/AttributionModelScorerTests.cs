using Attribution.Attribution.Probes;
using Attribution.Contracts;

namespace Attribution.Scorer.Tests;

/// <summary>The image classifier's forward-only scorer names each top example's source, from the map its source scores sum over.</summary>
public sealed class AttributionModelScorerTests
{
    private static AttributionModel Model(int[] exampleSources, long[] sourceIds)
    {
        var format = new ProbeFormat([4, 3, 2], 0, ProbePrecision.Float32);
        var rng = new Random(7);
        var floats = Enumerable.Range(0, exampleSources.Length)
            .Select(_ => Enumerable.Range(0, format.FloatsPerUnit).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()).ToArray();
        var theta = Enumerable.Range(0, format.Layout.ParameterCount).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        return new AttributionModel("run", 3, theta, format, [.. Enumerable.Range(0, exampleSources.Length).Select(i => 100L + i)], floats, sourceIds, exampleSources);
    }

    [Fact]
    public void Each_example_carries_the_source_its_source_score_is_summed_into_and_results_name_the_top_examples_sources()
    {
        // Before stop 21 the MLP scorer published ExampleSourceIds null (the GPT and STRIDE scorers filled it).
        var scorer = new AttributionModelScorer(Model([1, 0, 1, 2], [70, 80, 90]));
        Assert.Equal([80L, 70L, 80L, 90L], scorer.ExampleSourceIds);

        var t0 = DateTimeOffset.UnixEpoch;
        var query = new ModelQuery("q", "run@3", [0.5f, -1f, 2f, 0.25f], null, t0);
        var batch = new BatchScorer(topK: 4, new ScorerMetrics()).Score(scorer, [query], [t0], t0);
        var result = Assert.Single(batch.Results);
        Assert.Equal(4, result.ExampleIds.Count);
        Assert.Equal(result.ExampleIds.Select(id => scorer.ExampleSourceIds![(int)(id - 100)]), result.ExampleSourceIds!);
        // The published source scores are the sums of the examples' scores over this same map.
        var examples = batch.Scores.ExampleRow(0).ToArray();
        var sources = batch.Scores.SourceRow(0).ToArray();
        Assert.Equal(examples[0] + examples[2], sources[1], 1e-5f);
        Assert.Equal(examples[1], sources[0], 1e-5f);
        Assert.Equal(examples[3], sources[2], 1e-5f);
    }

    [Fact]
    public void The_shared_source_map_refuses_an_index_outside_the_sources_naming_it()
    {
        Assert.Equal([80L, 70L], ExampleSourceMap.Ids([1, 0], [70, 80], "map"));
        Assert.Empty(ExampleSourceMap.Ids([], [70], "map"));
        var e = Assert.Throws<ArgumentException>(() => ExampleSourceMap.Ids([0, 2], [70, 80], "documentSources"));
        Assert.Equal("documentSources", e.ParamName);
        Assert.Contains("example 1's source index 2 is outside 0..1", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ExampleSourceMap.Ids([-1], [70], "map"));
    }
}
