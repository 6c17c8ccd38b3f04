using Attribution.Attribution;
using Attribution.Attribution.Methods;

namespace Attribution.Tests.LanguageModels;

/// <summary>
/// <c>forward-only:normalize=relative</c> (<see cref="RelativeInfluenceMethod"/>): each document's score divided by its
/// stored response's norm, sources as shares of the positive relative influence. Protects the norm read from the probe
/// state (full and low-rank layers, against the dense response), the division, the shares, and that a Scorer importing
/// the state scores the same.
/// </summary>
public sealed class RelativeInfluenceTests
{
    private static Dictionary<string, string> Spec(int rank, string normalize) => new()
    {
        ["horizon"] = "3", ["eta"] = "0.01", ["batch"] = "0", ["rank"] = rank.ToString(System.Globalization.CultureInfo.InvariantCulture), ["normalize"] = normalize,
    };

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void Relative_scores_are_the_raw_readout_divided_by_each_documents_response_norm(int rank)
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        // The options MethodFactory builds from Spec(rank, …), without the normalisation.
        var raw = new ForwardOnlyMethod(new ForwardOnlyOptions { Horizon = 3, StepSize = 0.01f, BatchSize = 0, Rank = rank });
        raw.Precompute(problem);
        var relative = (RelativeInfluenceMethod)MethodFactory.Create("forward-only", Spec(rank, "relative"));
        relative.Precompute(problem);
        var a = raw.Score(queries);
        var b = relative.Score(queries);
        var response = new float[problem.ParameterCount];
        for (int u = 0; u < problem.Count; u++)
        {
            raw.ExampleResponses.Get(u, response);
            double norm = Math.Sqrt(response.Sum(x => (double)x * x));
            Assert.True(norm > 0);
            Assert.Equal(norm, relative.ResponseNorms[u], 1e-4 * norm);
            for (int q = 0; q < queries.Count; q++)
            {
                int i = (q * problem.Count) + u;
                Assert.Equal(a.Scores[i] / norm, b.Scores[i], 1e-4 * Math.Max(1e-6, Math.Abs(a.Scores[i] / norm)));
            }
        }
    }

    [Fact]
    public void Source_scores_are_each_sources_share_of_the_positive_relative_influence()
    {
        // Two queries over four units in sources 0, 1, 1, 2: query 0 has positive mass 1 + 2 + 1 = 4 (unit 3's −5 does not
        // count); query 1 has none, so every share is 0.
        float[] scores = [1, 2, 1, -5, -1, -2, -3, -4];
        var shares = RelativeInfluenceMethod.PositiveShares(scores, 2, [0, 1, 1, 2], 3);
        Assert.Equal([0.25f, 0.75f, 0f, 0f, 0f, 0f], shares);

        var (problem, queries, _) = GptGradientMethodTests.Build();
        var relative = (RelativeInfluenceMethod)MethodFactory.Create("forward-only", Spec(0, "relative"));
        relative.Precompute(problem);
        var (examples, sources) = relative.ScoreAll(queries);
        Assert.Equal(RelativeInfluenceMethod.PositiveShares(examples.Scores, queries.Count, problem.SourceIds, problem.SourceCount), sources);
        for (int q = 0; q < queries.Count; q++)
        {
            Assert.Equal(1.0, sources.Skip(q * problem.SourceCount).Take(problem.SourceCount).Sum(), 1e-5);
        }
    }

    [Fact]
    public void A_method_imported_from_the_exported_state_scores_exactly_like_the_one_that_precomputed_it()
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var offline = (RelativeInfluenceMethod)MethodFactory.Create("forward-only", Spec(2, "relative"));
        offline.Precompute(problem);
        var served = (RelativeInfluenceMethod)MethodFactory.Create("forward-only", Spec(2, "relative"));
        served.ImportState(ServedModel.Of(problem), offline.ExportState());
        Assert.Equal(offline.ScoreAll(queries).Examples.Scores, served.ScoreAll(queries).Examples.Scores);
        Assert.Equal(offline.ScoreSources(queries), served.ScoreSources(queries));
    }
}
