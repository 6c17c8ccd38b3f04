using Attribution.Attribution;

namespace Attribution.Tests.LanguageModels;

/// <summary>
/// The split of a query into its fixed part and its per-document part (<see cref="IPreparedScoring"/>), which the
/// per-document benchmark times apart: Score is exactly the readout of the prepared queries (one code path), a repeated
/// readout scores every repeat as the original document, and a readout refuses queries another kind of method prepared.
/// </summary>
public sealed class PreparedScoringTests
{
    public static TheoryData<string, string> Methods => new()
    {
        { "forward-only", "horizon=3,eta=0.01,batch=0,rank=2" },
        { "forward-only", "horizon=3,eta=0.01,batch=0,rank=0,compress=3" },
        { "trak", "k=32,damping=1" },
        { "trak", "k=32,damping=1,compress=3" },
        { "trak", "k=16,damping=1,models=2" },
    };

    private static IPreparedScoring Create(string name, string options, AttributionProblem problem)
    {
        var method = MethodFactory.Create(name, options.Split(',').Select(kv => kv.Split('=')).ToDictionary(kv => kv[0], kv => kv[1]));
        method.Precompute(problem);
        return Assert.IsAssignableFrom<IPreparedScoring>(method);
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void Score_is_the_readout_of_the_prepared_queries_and_a_repeated_readout_repeats_every_document(string name, string options)
    {
        var (problem, queries, _) = GptGradientMethodTests.Build(checkpoints: 2);
        var method = Create(name, options, problem);
        var scored = method.Score(queries);
        var prepared = method.Prepare(queries);
        var read = method.Readout.Score(prepared);
        Assert.Equal(scored.Scores, read.Scores);
        Assert.Equal(scored.SourceScores, read.SourceScores);
        Assert.Contains(scored.Scores, s => s != 0f); // a readout of zeros would pass the repeat checks below

        const int factor = 3;
        float scale = scored.Scores.Max(MathF.Abs);
        int n = problem.Count, q = queries.Count;
        var repeated = method.RepeatedReadout(factor);
        Assert.Equal(n * factor, repeated.Documents);
        Assert.Equal(method.Readout.Bytes * factor, repeated.Bytes, (double)method.Readout.Bytes * 0.01);
        var wide = repeated.Score(prepared);
        Assert.Equal(n * factor, wide.ExampleCount);
        for (int r = 0; r < q; r++)
        {
            for (int j = 0; j < factor; j++)
            {
                for (int i = 0; i < n; i++)
                {
                    // Equal up to float rounding (a GEMM over more rows may block the sums differently).
                    float expected = scored.Scores[(r * n) + i], actual = wide.Scores[(r * n * factor) + (j * n) + i];
                    Assert.True(MathF.Abs(actual - expected) <= 1e-5f * scale, $"query {r}, repeat {j}, document {i}: {actual} vs {expected}");
                }
            }
        }

        Assert.Equal(scored.SourceCount, wide.SourceCount);
        for (int i = 0; i < scored.SourceScores.Length; i++)
        {
            float expected = factor * scored.SourceScores[i];
            Assert.True(MathF.Abs(wide.SourceScores[i] - expected) <= 1e-4f * scale * factor * n, $"source {i}: {wide.SourceScores[i]} vs {expected}");
        }
    }

    [Fact]
    public void A_readout_refuses_queries_prepared_by_another_kind_of_method_saying_so()
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var trak = Create("trak", "k=16,damping=1", problem);
        var forwardOnly = Create("forward-only", "horizon=3,eta=0.01,batch=0,rank=2", problem);
        var e = Assert.Throws<ArgumentException>(() => forwardOnly.Readout.Score(trak.Prepare(queries)));
        Assert.Contains("GradientFactors", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => trak.Readout.Score(forwardOnly.Prepare(queries)));
    }

    [Fact]
    public void Document_rows_average_the_weighted_dot_over_blocks()
    {
        // 2 documents, 2 blocks of widths 2 and 1; the second block weighted.
        var readout = new DocumentRowsReadout(
            [new DocumentRowsReadout.Block([1, 2, 3, 4], 2, null), new DocumentRowsReadout.Block([5, 6], 1, [2, 0.5f])],
            2, [1, 0], 2);
        var s = readout.Score(new PreparedQueries(1, new[] { new float[] { 1, -1 }, new float[] { 3 } }));
        // doc 0: ((1 − 2) + 2·15) / 2 = 14.5; doc 1: ((3 − 4) + 0.5·18) / 2 = 4.
        Assert.Equal([14.5f, 4f], s.Scores);
        Assert.Equal([4f, 14.5f], s.SourceScores);
        Assert.Throws<ArgumentException>(() => readout.Score(new PreparedQueries(1, new[] { new float[] { 1, -1 } })));
    }
}
