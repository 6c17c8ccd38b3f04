using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Engine.Models;

namespace Attribution.Tests.LanguageModels;

/// <summary>
/// Forward-only on a tiny GPT through the model-generic path (documents as units, completion log-likelihood as output):
/// the simulated responses, the batched per-layer readout against the model's forward-mode JVP and the
/// two-forward-pass finite difference, and sources against their documents.
/// </summary>
public sealed class GptForwardOnlyTests
{
    private static ForwardOnlyOptions Options(int horizon, float eps, int rank, SourceResponse sources = SourceResponse.Simulated, ForwardReadout readout = ForwardReadout.Jacobian) => new()
    {
        Horizon = horizon,
        Epsilon = eps,
        StepSize = 0.01f,
        BatchSize = 0,
        Rank = rank,
        Sources = sources,
        Readout = readout,
        ReadoutEpsilon = 1e-2f,
    };

    [Fact]
    public void One_simulated_step_is_the_step_size_times_grad_dot()
    {
        // K = 1: θ± = θ* − η(∇L ± ε ∇ℓ_u), so r_u = −η ∇ℓ_u exactly and the readout is η · (−∇f_qᵀ ∇ℓ_u) over the
        // linear layers: Grad-Dot scaled by η.
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var fo = (IAttributionMethod)MethodFactory.Create("forward-only", new Dictionary<string, string> { ["horizon"] = "1", ["eps"] = "0.1", ["eta"] = "0.01", ["batch"] = "0", ["rank"] = "0" });
        fo.Precompute(problem);
        var gd = new TracInMethod(gradDot: true);
        gd.Precompute(problem);
        var a = fo.Score(queries);
        var b = gd.Score(queries);
        double scale = b.Scores.Max(v => Math.Abs(v)) * 0.01;
        Assert.True(scale > 1e-6);
        for (int i = 0; i < a.Scores.Length; i++)
        {
            Assert.Equal(0.01 * b.Scores[i], a.Scores[i], 1e-2 * scale);
        }
    }

    [Fact]
    public void Spectral_propagation_of_one_step_is_the_step_size_times_grad_dot()
    {
        // K = 1 in spectral form: φ(A) g = −η g for every eigenvalue, so the readout is η · Grad-Dot exactly (the operator's
        // Ritz vectors cancel); this pins the spectral path's sign, scale and unit gradients on a GPT.
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var fo = (IAttributionMethod)MethodFactory.Create("forward-only", new Dictionary<string, string> { ["propagation"] = "spectral", ["operator-rank"] = "8", ["horizon"] = "1", ["eta"] = "0.01", ["batch"] = "0", ["rank"] = "0" });
        fo.Precompute(problem);
        var gd = new TracInMethod(gradDot: true);
        gd.Precompute(problem);
        var a = fo.Score(queries);
        var b = gd.Score(queries);
        double scale = b.Scores.Max(v => Math.Abs(v)) * 0.01;
        Assert.True(scale > 1e-6);
        for (int i = 0; i < a.Scores.Length; i++)
        {
            Assert.Equal(0.01 * b.Scores[i], a.Scores[i], 1e-3 * scale);
        }
    }

    [Fact]
    public void Spectral_propagation_agrees_with_the_simulated_trajectory_to_first_order()
    {
        // K = 3 full-batch steps of η = 1e-4 (small against this random-init GPT's curvature, which has large negative
        // eigenvalues the operator clamps by design): the trajectory's response and the operator's φ(A) g agree to first
        // order in ηK·h. A wrong horizon, sign or unit gradient in the spectral path is off by a factor, not 2 %.
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var trajectory = new ForwardOnlyMethod(Options(3, 1e-1f, 0) with { StepSize = 1e-4f });
        trajectory.Precompute(problem);
        var spectral = new ForwardOnlyMethod(Options(3, 1e-1f, 0) with { StepSize = 1e-4f, Propagation = ForwardPropagation.Spectral, OperatorRank = 16 });
        spectral.Precompute(problem);
        Assert.NotNull(spectral.Describe());
        Assert.Contains("propagation=spectral", spectral.Describe(), StringComparison.Ordinal);
        var (a, aSources) = trajectory.ScoreAll(queries);
        var (b, bSources) = spectral.ScoreAll(queries);
        double scale = a.Scores.Max(v => Math.Abs(v));
        Assert.True(scale > 1e-5);
        for (int i = 0; i < a.Scores.Length; i++)
        {
            Assert.Equal(a.Scores[i], b.Scores[i], 0.02 * scale);
        }

        for (int i = 0; i < aSources.Length; i++)
        {
            Assert.Equal(aSources[i], bSources[i], 0.04 * scale);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void Batched_readout_equals_the_models_jvp_along_each_stored_response_and_the_finite_difference(int rank)
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var method = new ForwardOnlyMethod(Options(3, 1e-2f, rank));
        method.Precompute(problem);
        if (rank > 0)
        {
            Assert.Contains(method.ExampleResponses.Ranks, r => r > 0); // a low-rank layer is exercised
        }

        var (scores, sources) = method.ScoreAll(queries);
        var model = problem.CreateModel();
        var r = new float[problem.ParameterCount];
        var values = new float[queries.Count];
        var tangents = new float[queries.Count];
        double scale = 0;
        for (int u = 0; u < problem.Count; u++)
        {
            method.ExampleResponses.Get(u, r);
            model.OutputJvp(queries.Batch, ModelOutput.LogLikelihood, r, values, tangents);
            for (int q = 0; q < queries.Count; q++)
            {
                scale = Math.Max(scale, Math.Abs(tangents[q]));
                Assert.Equal(tangents[q], scores.Scores[q * problem.Count + u], 1e-3 * (1 + Math.Abs(tangents[q])));
            }
        }

        Assert.True(scale > 1e-5, "readouts are not all ~0");
        var fd = new ForwardOnlyMethod(Options(3, 1e-2f, rank, readout: ForwardReadout.FiniteDifference));
        fd.Precompute(problem);
        var (fdScores, fdSources) = fd.ScoreAll(queries);
        for (int i = 0; i < scores.Scores.Length; i++)
        {
            Assert.Equal(scores.Scores[i], fdScores.Scores[i], 0.02 * scale);
        }

        for (int i = 0; i < sources.Length; i++)
        {
            Assert.Equal(sources[i], fdSources[i], 0.04 * scale);
        }
    }

    [Fact]
    public void Sources_are_the_sums_of_their_documents()
    {
        var (problem, queries, _) = GptGradientMethodTests.Build();
        var summed = new ForwardOnlyMethod(Options(3, 1e-2f, 0, SourceResponse.SumOfExamples));
        summed.Precompute(problem);
        var (examples, sources) = summed.ScoreAll(queries);
        var simulated = new ForwardOnlyMethod(Options(3, 1e-2f, 0));
        simulated.Precompute(problem);
        var simulatedSources = simulated.ScoreSources(queries);
        double scale = examples.Scores.Max(v => Math.Abs(v));
        for (int q = 0; q < queries.Count; q++)
        {
            for (int s = 0; s < 3; s++)
            {
                float sum = examples.Scores[q * problem.Count + 2 * s] + examples.Scores[q * problem.Count + 2 * s + 1];
                Assert.Equal(sum, sources[q * 3 + s], 1e-4 * (1 + scale));
                // Simulating the source as one unit agrees to first order in ε.
                Assert.Equal(sum, simulatedSources[q * 3 + s], 0.02 * scale);
            }
        }
    }
}
