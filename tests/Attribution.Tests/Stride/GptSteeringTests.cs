using Attribution.Attribution;
using Attribution.Attribution.Stride;
using Attribution.Engine;
using Attribution.Engine.Autograd;
using Attribution.Engine.Models;

namespace Attribution.Tests.Stride;

/// <summary>STRIDE on the transformer: the hidden-state hook, the per-token measurements, the gradients and the method.</summary>
public sealed class GptSteeringTests
{
    private static readonly GptConfig Config = new(VocabSize: 16, Context: 12, DModel: 8, Heads: 2, Layers: 2);

    // n documents of 4..9 framed tokens (document start 15 first), each built from a few document-specific tokens so a
    // document's own completion is predictable from it.
    private static int[][] Documents(int n, ulong seed)
    {
        var rng = new Rng(seed);
        var docs = new int[n][];
        for (int i = 0; i < n; i++)
        {
            int length = 4 + rng.NextInt(6);
            docs[i] = new int[length];
            docs[i][0] = 15;
            for (int t = 1; t < length; t++)
            {
                docs[i][t] = (i * 7 + t * (1 + (i % 3))) % 15;
            }
        }

        return docs;
    }

    private static AttributionProblem Problem(int n, ulong seed)
    {
        var model = new GptModel(new Gpt(Config, seed));
        var theta = new float[model.ParameterCount];
        model.CopyTo(theta);
        return AttributionProblem.ForGpt(Config, theta, Documents(n, seed + 1), [.. Enumerable.Range(0, n).Select(i => i % 3)], 3);
    }

    private static SteeringOperators RandomOperators(int layer, int rank, int subsets, ulong seed)
    {
        var rng = new Rng(seed);
        var basis = new float[rank * Config.DModel];
        var matrices = new float[rank * subsets * Config.VocabSize];
        rng.FillNormal(basis, 0f, 0.5f);
        rng.FillNormal(matrices, 0f, 0.5f);
        return new SteeringOperators(layer, Config.DModel, rank, Config.VocabSize, subsets, ModelOutput.Loss, basis, matrices);
    }

    // Protects the hook: one forward pass returns the same logits as Gpt.Logits, and the last block's tapped residual
    // stream, after the final LayerNorm (unit weight, zero bias at initialisation), is the model's final hidden state.
    [Fact]
    public void Hidden_state_hook_returns_the_logits_and_the_residual_stream_after_a_block()
    {
        var problem = Problem(3, 3);
        var model = (GptModel)problem.CreateModel();
        var batch = problem.Training;
        int rows = batch.Count * batch.SequenceLength, c = Config.DModel;
        var logits = new float[rows * Config.VocabSize];
        var hidden = new float[rows * c];
        model.LogitsAndHidden(batch, 1, logits, hidden);
        var expected = model.Gpt.Logits(batch.Tokens!, batch.Count, batch.SequenceLength);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], logits[i], 4);
        }

        var final = model.Gpt.HiddenStates(batch.Tokens!, batch.Count, batch.SequenceLength);
        for (int r = 0; r < rows; r++)
        {
            var x = hidden.AsSpan(r * c, c);
            double mean = 0, var = 0;
            foreach (float v in x)
            {
                mean += v;
            }

            mean /= c;
            foreach (float v in x)
            {
                var += (v - mean) * (v - mean);
            }

            double sd = Math.Sqrt(var / c + Config.LayerNormEpsilon);
            for (int j = 0; j < c; j++)
            {
                Assert.Equal((x[j] - mean) / sd, final[r * c + j], 3);
            }
        }

        Assert.Equal(1, model.DefaultHiddenLayer); // ceil(0.6 · 2) − 1
        Assert.Throws<ArgumentOutOfRangeException>(() => model.LogitsAndHidden(batch, 2, logits, hidden));
    }

    // Protects the query-time maths on a language model: a query's measurement under operator k is the change of its
    // completion log-likelihood when every completion position's logits are steered, computed here from the model's
    // logits and the hook independently of SteeringRows; prompt positions (target −1) do not count.
    [Fact]
    public void Measurements_are_completion_log_likelihood_changes()
    {
        var problem = Problem(4, 5);
        var model = (GptModel)problem.CreateModel();
        var op = RandomOperators(0, 3, 4, 9);
        var queries = QueryBatch.Completions([new CompletionQuery([15, 2, 3], [4, 5]), new CompletionQuery([15], [7, 8, 9])], Config.Context);
        var y = new float[2 * 4];
        op.Measure(model, queries.Batch, y);
        var batch = queries.Batch;
        int t = batch.SequenceLength, v = Config.VocabSize, w = Config.DModel;
        var logits = new float[batch.Count * t * v];
        var hidden = new float[batch.Count * t * w];
        model.LogitsAndHidden(batch, 0, logits, hidden);
        for (int q = 0; q < 2; q++)
        {
            for (int k = 0; k < 4; k++)
            {
                double expected = 0;
                int scored = 0;
                for (int p = 0; p < t; p++)
                {
                    int target = batch.Labels[q * t + p];
                    if (target == -1)
                    {
                        continue;
                    }

                    scored++;
                    int row = q * t + p;
                    var o = logits.AsSpan(row * v, v).ToArray();
                    var z = (float[])o.Clone();
                    for (int j = 0; j < 3; j++)
                    {
                        double u = 0;
                        for (int e = 0; e < w; e++)
                        {
                            u += op.Basis[j * w + e] * hidden[row * w + e];
                        }

                        for (int cc = 0; cc < v; cc++)
                        {
                            z[cc] += (float)(u * op.Matrices[j * 4 * v + k * v + cc]);
                        }
                    }

                    expected += LogSoftmax(z, target) - LogSoftmax(o, target);
                }

                Assert.Equal(q == 0 ? 2 : 3, scored);
                Assert.Equal(expected, y[q * 4 + k], 3);
            }
        }
    }

    // Protects the hand-written gradient on a language model (rows = target tokens grouped into documents; all three
    // terms on) against central finite differences of the returned losses.
    [Fact]
    public void Loss_gradients_match_finite_differences_on_a_transformer()
    {
        var problem = Problem(12, 11);
        var model = (GptModel)problem.CreateModel();
        var design = SubsetDesign.Create(12, 6, 2, 5);
        var options = new SteeringOptions { Rank = 3, Layer = 0, Stability = 0.7f, Linearity = 0.5f, SketchSize = 3, LinearityInputs = 2, ReferenceSize = 5 };
        var op = RandomOperators(0, 3, 6, 13);
        var gb = new float[op.Basis.Length];
        var gm = new float[op.Matrices.Length];
        SteeringTrainer.LossesAndGradients(op, model, problem.Training, design, options, gb, gm, step: 1);
        double Objective()
        {
            var (f, s, l) = SteeringTrainer.LossesAndGradients(op, model, problem.Training, design, options, new float[gb.Length], new float[gm.Length], step: 1);
            return f + options.Stability * s + options.Linearity * l;
        }

        void Check(float[] parameters, float[] gradient, int index)
        {
            const float h = 1e-2f;
            float keep = parameters[index];
            parameters[index] = keep + h;
            double plus = Objective();
            parameters[index] = keep - h;
            double minus = Objective();
            parameters[index] = keep;
            double fd = (plus - minus) / (2 * h);
            Assert.True(Math.Abs(fd - gradient[index]) <= 0.03 * Math.Abs(fd) + 2e-4, $"entry {index}: finite difference {fd:G5}, analytic {gradient[index]:G5}");
        }

        foreach (int i in new[] { 0, 9, 20 })
        {
            Check(op.Basis, gb, i);
        }

        foreach (int i in new[] { 3, 50, 151, 260 })
        {
            Check(op.Matrices, gm, i);
        }
    }

    // Protects the method end to end on a transformer: a training document asked as its own query (its whole text as the
    // completion) is ranked near the top of its scores; per-source scores are sums; a margin measurement is refused.
    [Fact]
    public void Stride_on_a_transformer_ranks_a_document_high_for_itself()
    {
        const int n = 30;
        var problem = Problem(n, 21);
        var method = (StrideMethod)MethodFactory.Create("stride", new Dictionary<string, string>
        {
            ["k"] = "30", ["d"] = "3", ["rank"] = "4", ["steps"] = "100", ["linearity"] = "0",
        });
        method.Precompute(problem);
        Assert.Equal(1, method.Operators.Layer);
        Assert.Equal(ModelOutput.Loss, method.Operators.MeasuredOutput);
        var docs = Documents(n, 22);
        var queries = QueryBatch.Completions([.. docs.Select(d => new CompletionQuery([d[0]], d[1..]))], Config.Context);
        var scores = method.Score(queries);
        int top = 0;
        for (int i = 0; i < n; i++)
        {
            var row = scores.Row(i).ToArray();
            top += row.Count(v => v > row[i]) < 3 ? 1 : 0;
        }

        Assert.True(top >= 20, $"only {top} of {n} documents are in their own top 10%");
        for (int s = 0; s < 3; s++)
        {
            double sum = 0;
            for (int j = s; j < n; j += 3)
            {
                sum += scores.Row(0)[j];
            }

            Assert.Equal(sum, scores.SourceScores[s], 4);
        }

        var margin = MethodFactory.Create("stride", new Dictionary<string, string> { ["k"] = "10", ["d"] = "2", ["measure"] = "margin" });
        var e = Assert.Throws<ArgumentException>(() => margin.Precompute(problem));
        Assert.Contains("measure=loss", e.Message);
    }

    // Protects serving: the operators and the design travel as a probe-set state (IProbeSetMethod); a fresh method with
    // the same options imports it with no training data and scores exactly as the trained one; a state that does not fit
    // the method's options is refused with what differs, and a combination is not exported.
    [Fact]
    public void Stride_state_round_trips_and_scores_identically()
    {
        var problem = Problem(20, 31);
        var settings = new Dictionary<string, string> { ["k"] = "12", ["d"] = "3", ["rank"] = "3", ["steps"] = "20", ["linearity"] = "0" };
        var method = (StrideMethod)MethodFactory.Create("stride", settings);
        method.Precompute(problem);
        var state = method.ExportState();
        Assert.Equal(20, state.Examples.Count);
        Assert.Equal(["stride.basis", "stride.matrices", "stride.readout"], state.Shared.Select(t => t.Layout.Name));
        Assert.Equal([1f, 1f, 0f], state.Shared[2].Values); // block 1 (the default layer), loss measurement, logit form

        var served = (StrideMethod)MethodFactory.Create("stride", settings);
        served.ImportState(ServedModel.Of(problem), state);
        var queries = QueryBatch.Completions([new CompletionQuery([15, 2, 3], [4, 5]), new CompletionQuery([15], [7, 8, 9])], Config.Context);
        var a = method.Score(queries);
        var b = served.Score(queries);
        Assert.Equal(a.Scores, b.Scores);
        Assert.Equal(a.SourceScores, b.SourceScores);

        var otherDegree = (StrideMethod)MethodFactory.Create("stride", new Dictionary<string, string>(settings) { ["d"] = "2" });
        Assert.Contains("1 x 2", Assert.Throws<ArgumentException>(() => otherDegree.ImportState(ServedModel.Of(problem), state)).Message);
        // The design travels with the state: another design seed serves the shipped design; a broken membership is refused.
        var otherSeed = (StrideMethod)MethodFactory.Create("stride", new Dictionary<string, string>(settings) { ["design-seed"] = "9" });
        otherSeed.ImportState(ServedModel.Of(problem), state);
        Assert.Equal(a.Scores, otherSeed.Score(queries).Scores);
        var broken = new ProbeSetState
        {
            Architecture = state.Architecture, ExampleTensors = state.ExampleTensors, SourceTensors = state.SourceTensors, Sources = state.Sources, Shared = state.Shared,
            Examples = [.. state.Examples.Select((e, i) => i == 1 ? [e[0], e[0], .. e[2..]] : e)],
        };
        Assert.Contains("distinct ids", Assert.Throws<ArgumentException>(() => otherSeed.ImportState(ServedModel.Of(problem), broken)).Message);
        var combined = (StrideMethod)MethodFactory.Create("stride", new Dictionary<string, string>(settings) { ["combine"] = "prior" });
        Assert.Throws<ArgumentException>(() => combined.ImportState(ServedModel.Of(problem), state));
    }

    // Protects the residual form's tail: the frozen tail run from the residual stream that LogitsAndHidden taps after
    // block 0 gives the model's own logits, and operators whose matrices are all zero (a_k = 0, how training starts)
    // measure exactly nothing on any query.
    [Fact]
    public void Residual_tail_from_the_tapped_stream_is_the_base_model()
    {
        var problem = Problem(4, 41);
        var model = (GptModel)problem.CreateModel();
        var batch = problem.Training;
        int rows = batch.Count * batch.SequenceLength, c = Config.DModel, v = Config.VocabSize;
        var logits = new float[rows * v];
        var hidden = new float[rows * c];
        model.LogitsAndHidden(batch, 0, logits, hidden);
        var graph = new Graph(recordBackward: false);
        var tail = model.LogitsFrom(graph, Graph.Wrap(hidden, [batch.Count, batch.SequenceLength, c]), 0).Data;
        for (int i = 0; i < logits.Length; i++)
        {
            Assert.Equal(logits[i], tail[i], 5);
        }

        var rng = new Rng(3);
        var basis = new float[3 * c];
        rng.FillNormal(basis, 0f, 0.5f);
        var zero = new SteeringOperators(0, c, 3, v, 5, ModelOutput.Loss, basis, new float[3 * 5 * c], SteeringForm.Residual);
        var queries = QueryBatch.Completions([new CompletionQuery([15, 2, 3], [4, 5]), new CompletionQuery([15], [7, 8, 9])], Config.Context);
        var y = new float[2 * 5];
        zero.Measure(model, queries.Batch, y);
        Assert.All(y, value => Assert.Equal(0f, value, 5));
    }

    // Protects the residual form's training gradient (the tail's backward to the steered stream, then the operator's
    // hand-written chain rule into a_k and B) against central finite differences of the returned losses, with the
    // operators at block 0 so the tail holds a whole block (attention across positions).
    [Fact]
    public void Residual_form_gradients_match_finite_differences()
    {
        var problem = Problem(12, 43);
        var model = (GptModel)problem.CreateModel();
        var design = SubsetDesign.Create(12, 6, 2, 5);
        var options = new SteeringOptions { Form = SteeringForm.Residual, Rank = 3, Layer = 0, Stability = 0.7f, Linearity = 0, ReferenceSize = 5 };
        var rng = new Rng(47);
        var basis = new float[3 * Config.DModel];
        var matrices = new float[3 * 6 * Config.DModel];
        rng.FillNormal(basis, 0f, 0.5f);
        rng.FillNormal(matrices, 0f, 0.5f);
        var op = new SteeringOperators(0, Config.DModel, 3, Config.VocabSize, 6, ModelOutput.Loss, basis, matrices, SteeringForm.Residual);
        var gb = new float[op.Basis.Length];
        var gm = new float[op.Matrices.Length];
        var (fid, stab, _) = SteeringTrainer.LossesAndGradients(op, model, problem.Training, design, options, gb, gm, step: 1);
        Assert.True(fid > 0 && stab > 0, $"fidelity {fid}, stability {stab}");
        double Objective()
        {
            var (f, s, _) = SteeringTrainer.LossesAndGradients(op, model, problem.Training, design, options, new float[gb.Length], new float[gm.Length], step: 1);
            return f + options.Stability * s;
        }

        void Check(float[] parameters, float[] gradient, int index)
        {
            const float h = 1e-2f;
            float keep = parameters[index];
            parameters[index] = keep + h;
            double plus = Objective();
            parameters[index] = keep - h;
            double minus = Objective();
            parameters[index] = keep;
            double fd = (plus - minus) / (2 * h);
            Assert.True(Math.Abs(fd - gradient[index]) <= 0.03 * Math.Abs(fd) + 2e-4, $"entry {index}: finite difference {fd:G5}, analytic {gradient[index]:G5}");
        }

        foreach (int i in new[] { 0, 9, 20 })
        {
            Check(op.Basis, gb, i);
        }

        foreach (int i in new[] { 3, 50, 100, 140 })
        {
            Check(op.Matrices, gm, i);
        }

        Assert.Contains("linearity=0", Assert.Throws<ArgumentException>(() => (options with { Linearity = 0.1f }).Validate()).Message);
    }

    // Protects the residual form as a served method: trained through the factory (form=residual), it ranks a training
    // document near the top for itself, exports residual-form operators ([r·K, H] matrices, form 1 in the readout) that a
    // fresh form=residual method imports and scores identically, and a logit-form method refuses them saying why.
    [Fact]
    public void Residual_form_ranks_a_document_high_for_itself_and_round_trips()
    {
        const int n = 30;
        var problem = Problem(n, 21);
        var settings = new Dictionary<string, string>
        {
            ["form"] = "residual", ["layer"] = "0", ["k"] = "30", ["d"] = "3", ["rank"] = "4", ["steps"] = "60", ["linearity"] = "0", ["lr"] = "0.03",
        };
        var method = (StrideMethod)MethodFactory.Create("stride", settings);
        method.Precompute(problem);
        Assert.Equal(SteeringForm.Residual, method.Operators.Form);
        var docs = Documents(n, 22);
        var queries = QueryBatch.Completions([.. docs.Select(d => new CompletionQuery([d[0]], d[1..]))], Config.Context);
        var scores = method.Score(queries);
        int top = 0;
        for (int i = 0; i < n; i++)
        {
            var row = scores.Row(i).ToArray();
            top += row.Count(v => v > row[i]) < 3 ? 1 : 0;
        }

        Assert.True(top >= 15, $"only {top} of {n} documents are in their own top 10%");
        var state = method.ExportState();
        Assert.Equal([0f, 1f, 1f], state.Shared[2].Values);
        Assert.Equal((4 * 30, Config.DModel), (state.Shared[1].Layout.Rows, state.Shared[1].Layout.Cols));
        var served = (StrideMethod)MethodFactory.Create("stride", settings);
        served.ImportState(ServedModel.Of(problem), state);
        Assert.Equal(scores.Scores, served.Score(queries).Scores);
        var logit = (StrideMethod)MethodFactory.Create("stride", new Dictionary<string, string>(settings) { ["form"] = "logit" });
        Assert.Contains("form=logit", Assert.Throws<ArgumentException>(() => logit.ImportState(ServedModel.Of(problem), state)).Message);
    }

    private static double LogSoftmax(float[] z, int y)
    {
        double max = z.Max(), sum = 0;
        foreach (float v in z)
        {
            sum += Math.Exp(v - max);
        }

        return z[y] - max - Math.Log(sum);
    }
}
