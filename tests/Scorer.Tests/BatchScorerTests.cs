using Attribution.Contracts;

namespace Attribution.Scorer.Tests;

/// <summary>Scoring: one readout per batch; results with top-k examples (and their sources), every source (and its name), the output function.</summary>
public sealed class BatchScorerTests
{
    /// <summary>Example score = feature sum × (example index + 1); source score = first feature − source index.</summary>
    private sealed class LinearScorer : IQueryScorer
    {
        public List<int> Calls { get; } = [];

        public string Version => "run@9";

        public string Method => "linear";

        public string OutputFunction => "feature sum";

        public IReadOnlyList<long> ExampleIds { get; } = [100, 101, 102];

        public IReadOnlyList<long>? ExampleSourceIds { get; init; } = [8, 7, 8];

        public IReadOnlyList<long> SourceIds { get; } = [7, 8];

        public IReadOnlyList<string>? SourceNames { get; init; } = ["seven", "eight"];

        public ReadOnlyMemory<float> ExampleNorms { get; } = new float[] { 1, 1, 1 };

        public void Validate(ModelQuery query) => Assert.Fail("BatchScorer scores validated queries; it never validates");

        public QueryScores Score(IReadOnlyList<ModelQuery> queries)
        {
            int count = queries.Count;
            Calls.Add(count);
            var examples = new float[count * 3];
            var sources = new float[count * 2];
            for (int q = 0; q < count; q++)
            {
                var x = queries[q].Features!;
                float sum = x[0] + x[1];
                for (int e = 0; e < 3; e++)
                {
                    examples[(q * 3) + e] = sum * (e + 1);
                }

                for (int s = 0; s < 2; s++)
                {
                    sources[(q * 2) + s] = x[0] - s;
                }
            }

            return new QueryScores(count, examples, sources);
        }

        public (int Example, float Score)[] TopK(QueryScores scores, int q, int k)
        {
            var row = scores.ExampleRow(q).ToArray();
            return [.. Enumerable.Range(0, row.Length).OrderByDescending(i => row[i]).Take(k).Select(i => (i, row[i]))];
        }
    }

    [Fact]
    public void One_readout_scores_the_batch_and_each_result_carries_its_top_k_sources_and_latency()
    {
        var scorer = new LinearScorer();
        var metrics = new ScorerMetrics();
        var t0 = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        ModelQuery[] queries = [new("a", "v", [1f, 2f], null, t0), new("b", "v", new ArraySegment<float>([9f, -5f, -4f], 1, 2), null, t0)];
        var batch = new BatchScorer(topK: 2, metrics).Score(scorer, queries, [t0, t0.AddMilliseconds(-3)], t0.AddMilliseconds(5));

        Assert.Equal(2, Assert.Single(scorer.Calls));
        Assert.Equal(1, metrics.Batches);

        var a = batch.Results[0];
        Assert.Equal(("a", "run@9", "linear", "feature sum"), (a.QueryId, a.ModelVersion, a.Method, a.OutputFunction));
        Assert.Equal([102L, 101L], a.ExampleIds);     // sum 3: scores 3, 6, 9
        Assert.Equal([8L, 7L], a.ExampleSourceIds);  // each top example's own source
        Assert.Equal(["seven", "eight"], a.SourceNames);
        Assert.Equal([9f, 6f], a.Scores);
        Assert.Equal([7L, 8L], a.SourceIds);
        Assert.Equal([1f, 0f], a.SourceScores);
        Assert.Equal(5000, a.LatencyMicros);

        var b = batch.Results[1];
        Assert.Equal([100L, 101L], b.ExampleIds);     // sum -9: the least negative first
        Assert.Equal([-5f, -6f], b.SourceScores);
        Assert.Equal(8000, b.LatencyMicros);
        Assert.Equal([-9f, -18f, -27f], batch.Scores.ExampleRow(1).ToArray());
    }

    [Fact]
    public void A_scorer_that_does_not_know_sources_leaves_those_columns_null()
    {
        var scorer = new LinearScorer { ExampleSourceIds = null, SourceNames = null };
        var t0 = DateTimeOffset.UnixEpoch;
        var result = Assert.Single(new BatchScorer(2, new ScorerMetrics()).Score(scorer, [new ModelQuery("a", "v", [1f, 1f], null, t0)], [t0], t0).Results);
        Assert.Null(result.ExampleSourceIds);
        Assert.Null(result.SourceNames);
        Assert.Equal([102L, 101L], result.ExampleIds);
    }
}
