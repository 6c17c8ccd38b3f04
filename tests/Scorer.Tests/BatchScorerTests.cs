using Attribution.Contracts;

namespace Attribution.Scorer.Tests;

/// <summary>Scoring: features packed row-major, one readout per batch, results with top-k examples and every source.</summary>
public sealed class BatchScorerTests
{
    /// <summary>Example score = feature sum × (example index + 1); source score = first feature − source index.</summary>
    private sealed class LinearScorer : IQueryScorer
    {
        public List<(float[] Inputs, int Count)> Calls { get; } = [];

        public string Version => "run@9";

        public int InputWidth => 2;

        public IReadOnlyList<long> ExampleIds { get; } = [100, 101, 102];

        public IReadOnlyList<long> SourceIds { get; } = [7, 8];

        public ReadOnlyMemory<float> ExampleNorms { get; } = new float[] { 1, 1, 1 };

        public QueryScores Score(float[] inputs, int count)
        {
            Calls.Add((inputs, count));
            var examples = new float[count * 3];
            var sources = new float[count * 2];
            for (int q = 0; q < count; q++)
            {
                float sum = inputs[2 * q] + inputs[(2 * q) + 1];
                for (int e = 0; e < 3; e++)
                {
                    examples[(q * 3) + e] = sum * (e + 1);
                }

                for (int s = 0; s < 2; s++)
                {
                    sources[(q * 2) + s] = inputs[2 * q] - s;
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

        var call = Assert.Single(scorer.Calls);
        Assert.Equal(2, call.Count);
        Assert.Equal([1f, 2f, -5f, -4f], call.Inputs);
        Assert.Equal(1, metrics.Batches);

        var a = batch.Results[0];
        Assert.Equal(("a", "run@9", BatchScorer.MethodName), (a.QueryId, a.ModelVersion, a.Method));
        Assert.Equal([102L, 101L], a.ExampleIds);     // sum 3: scores 3, 6, 9
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
    public void A_query_of_another_width_fails_the_batch_before_the_readout()
    {
        var scorer = new LinearScorer();
        var t0 = DateTimeOffset.UnixEpoch;
        Assert.Throws<ArgumentException>(() => new BatchScorer(2, new ScorerMetrics()).Score(scorer, [new ModelQuery("a", "v", [1f], null, t0)], [t0], t0));
        Assert.Empty(scorer.Calls);
    }
}
