using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Tests.LanguageModels;

/// <summary>
/// The gradient methods on a tiny GPT with documents as units and the completion log-likelihood as the query output,
/// checked against brute-force per-row gradients from <see cref="IModel.OutputGradient"/> (a separate code path from the
/// factored per-example gradients the methods use). The methods' gradients cover the model's linear layers (attention,
/// MLP, head), so the references are masked to those parameters.
/// </summary>
public sealed class GptGradientMethodTests
{
    internal static readonly GptConfig Config = new(VocabSize: 11, Context: 8, DModel: 8, Heads: 2, Layers: 1, TiedHead: false);
    internal const int Start = 10;

    internal static (AttributionProblem Problem, QueryBatch Queries, List<int[]> Documents) Build(int checkpoints = 1, ulong seed = 5)
    {
        var rng = new Rng(seed);
        var docs = new List<int[]>();
        for (int i = 0; i < 6; i++)
        {
            var doc = new int[3 + rng.NextInt(7)];
            doc[0] = Start;
            for (int t = 1; t < doc.Length; t++)
            {
                doc[t] = rng.NextInt(Start);
            }

            docs.Add(doc);
        }

        var thetas = new List<float[]>();
        for (int c = 0; c < checkpoints; c++)
        {
            var model = new GptModel(new Gpt(Config, seed + (ulong)c));
            var theta = new float[model.ParameterCount];
            model.CopyTo(theta);
            thetas.Add(theta);
        }

        var problem = AttributionProblem.ForGpt(Config, thetas[0], docs, [0, 0, 1, 1, 2, 2], checkpoints: thetas);
        var queries = QueryBatch.Completions([new CompletionQuery([Start, 1, 2], [3, 4]), new CompletionQuery([Start, 5], [6, 7, 8])], Config.Context);
        return (problem, queries, docs);
    }

    // ∇ of each row's output, full p, by one OutputGradient call per row.
    internal static float[][] RowGradients(IModel model, ModelBatch batch, ModelOutput output)
    {
        int t = batch.SequenceLength;
        var rows = new float[batch.Count][];
        for (int i = 0; i < batch.Count; i++)
        {
            var row = ModelBatch.Sequences(batch.Tokens![(i * t)..((i + 1) * t)], batch.Labels[(i * t)..((i + 1) * t)], 1, t);
            rows[i] = new float[model.ParameterCount];
            model.OutputGradient(row, output, default, rows[i], default);
        }

        return rows;
    }

    internal static bool[] LinearMask(IModel model, ModelBatch batch)
    {
        var mask = new bool[model.ParameterCount];
        foreach (var l in model.PerExampleGradients(batch, ModelOutput.Loss).Layers)
        {
            Array.Fill(mask, true, l.WeightOffset, l.In * l.Out);
            if (l.BiasOffset >= 0)
            {
                Array.Fill(mask, true, l.BiasOffset, l.Out);
            }
        }

        return mask;
    }

    internal static double MaskedDot(float[] a, float[] b, bool[] mask)
    {
        double s = 0;
        for (int j = 0; j < a.Length; j++)
        {
            s += mask[j] ? (double)a[j] * b[j] : 0;
        }

        return s;
    }

    [Fact]
    public void Grad_dot_on_a_gpt_is_minus_the_query_loglikelihood_gradient_dot_each_documents_loss_gradient()
    {
        var (problem, queries, _) = Build();
        Assert.True(problem.IsLanguageModel);
        Assert.Equal(ModelOutput.LogLikelihood, queries.Output);
        var method = new TracInMethod(gradDot: true);
        method.Precompute(problem);
        var scores = method.Score(queries);

        var model = problem.CreateModel();
        var mask = LinearMask(model, problem.Training);
        Assert.Contains(false, mask); // embeddings and LayerNorms are outside the factors
        var gq = RowGradients(model, queries.Batch, ModelOutput.LogLikelihood);
        var gb = RowGradients(model, problem.Training, ModelOutput.Loss);
        double scale = 0;
        for (int q = 0; q < queries.Count; q++)
        {
            for (int b = 0; b < problem.Count; b++)
            {
                double expected = -MaskedDot(gq[q], gb[b], mask);
                scale = Math.Max(scale, Math.Abs(expected));
                Assert.Equal(expected, scores.Scores[q * problem.Count + b], 1e-3 * (1 + Math.Abs(expected)));
            }
        }

        Assert.True(scale > 1e-3, "the reference scores are not all ~0");
        // Sources are the sums of their documents.
        for (int q = 0; q < queries.Count; q++)
        {
            for (int s = 0; s < 3; s++)
            {
                Assert.Equal(scores.Scores[q * problem.Count + 2 * s] + scores.Scores[q * problem.Count + 2 * s + 1], scores.SourceScores[q * 3 + s], 1e-4f * (1 + (float)scale));
            }
        }
    }

    [Fact]
    public void TracIn_on_a_gpt_is_the_weighted_sum_of_grad_dot_over_checkpoints()
    {
        var (problem, queries, _) = Build(checkpoints: 2);
        var method = new TracInMethod(checkpointWeights: [0.25f, 2f]);
        method.Precompute(problem);
        var scores = method.Score(queries);
        float[] weights = [0.25f, 2f];
        var expected = new double[queries.Count * problem.Count];
        for (int c = 0; c < 2; c++)
        {
            var model = problem.CreateModel(problem.Checkpoints[c]);
            var mask = LinearMask(model, problem.Training);
            var gq = RowGradients(model, queries.Batch, ModelOutput.LogLikelihood);
            var gb = RowGradients(model, problem.Training, ModelOutput.Loss);
            for (int q = 0; q < queries.Count; q++)
            {
                for (int b = 0; b < problem.Count; b++)
                {
                    expected[q * problem.Count + b] -= weights[c] * MaskedDot(gq[q], gb[b], mask);
                }
            }
        }

        for (int q = 0; q < queries.Count; q++)
        {
            for (int b = 0; b < problem.Count; b++)
            {
                double e = expected[q * problem.Count + b];
                Assert.Equal(e, scores.Scores[q * problem.Count + b], 1e-3 * (1 + Math.Abs(e)));
            }
        }
    }

    [Fact]
    public void Trak_on_a_gpt_attributes_a_training_document_to_itself()
    {
        // With k > n and a small ridge, s(x_j, ·) = φ_j (ΦᵀΦ + λI)⁻¹ Φᵀ is the j-th row of a projector onto Φ's row
        // space (Q = 1 for a language model): ≈ e_j, whatever the random projection.
        var (problem, _, _) = Build();
        var method = new TrakMethod(new TrakOptions { ProjectionDim = 64 });
        method.Precompute(problem);
        var scores = method.Score(new QueryBatch(problem.Training, ModelOutput.LogLikelihood));
        for (int j = 0; j < problem.Count; j++)
        {
            for (int b = 0; b < problem.Count; b++)
            {
                Assert.Equal(j == b ? 1f : 0f, scores.Scores[j * problem.Count + b], 0.02f);
            }
        }
    }

    [Fact]
    public void Influence_functions_on_a_gpt_agree_between_the_exact_and_the_conjugate_gradient_solver()
    {
        var (problem, queries, _) = Build();
        Assert.True(problem.ParameterCount <= 4096, "the exact solver must be affordable");
        // The untrained model's Hessian is indefinite (its largest |eigenvalue| is about 170 by power iteration, summed
        // per-document NLL): a damping above it makes H + λI positive definite for both solvers.
        var exact = new InfluenceFunctionMethod(new InfluenceOptions { Damping = 300, Solver = InfluenceSolver.Exact });
        var cg = new InfluenceFunctionMethod(new InfluenceOptions { Damping = 300, Solver = InfluenceSolver.ConjugateGradient, MaxIterations = 300, Tolerance = 1e-7 });
        exact.Precompute(problem);
        cg.Precompute(problem);
        var a = exact.Score(queries);
        var b = cg.Score(queries);
        Assert.True(cg.LastIterations > 1);
        double norm = a.Scores.Max(v => Math.Abs(v));
        Assert.True(norm > 1e-4, "influence scores are not all ~0");
        for (int i = 0; i < a.Scores.Length; i++)
        {
            Assert.Equal(a.Scores[i], b.Scores[i], 0.02 * norm);
        }
    }

    [Fact]
    public void A_gpt_problem_refuses_float_queries_and_the_mlp_layout_with_a_clear_error()
    {
        var (problem, _, _) = Build();
        var floats = new QueryBatch(new float[4], [0, 1], 2);
        var e = Assert.Throws<ArgumentException>(() => problem.CheckQueries(floats));
        Assert.Contains("token sequences", e.Message);
        Assert.Throws<InvalidOperationException>(() => problem.Layout);
    }

    [Fact]
    public void Document_rows_hold_each_documents_first_window_and_ignore_the_padding()
    {
        var (problem, _, docs) = Build();
        int t = problem.Training.SequenceLength;
        Assert.Equal(Math.Min(Config.Context, docs.Max(d => d.Length) - 1), t);
        for (int i = 0; i < docs.Count; i++)
        {
            int len = Math.Min(docs[i].Length - 1, t);
            for (int pos = 0; pos < t; pos++)
            {
                Assert.Equal(pos < len ? docs[i][pos] : 0, problem.Training.Tokens![i * t + pos]);
                Assert.Equal(pos < len ? docs[i][pos + 1] : -1, problem.Training.Labels[i * t + pos]);
            }
        }
    }
}
