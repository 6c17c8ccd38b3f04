using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Attribution.Stride;
using Attribution.Engine.Models;
using Attribution.Tests.Methods;

namespace Attribution.Tests.Stride;

public sealed class SteeringTests
{
    private static readonly MlpLayout Layout = new([6, 16, 8, 3]);

    private static AttributionProblem Problem(int n, ulong seed)
    {
        var theta = KernelTests.RandomTheta(Layout, seed);
        var (x, y) = KernelTests.RandomData(Layout, n, seed + 100);
        var src = Enumerable.Range(0, n).Select(i => i % 4).ToArray();
        return new AttributionProblem(Layout, theta, x, y, src, 4);
    }

    private static SteeringOperators RandomOperators(int layer, int rank, int subsets, ulong seed)
    {
        var rng = new global::Attribution.Engine.Rng(seed);
        int width = Layout.Out(layer), classes = Layout.Widths[^1];
        var basis = new float[rank * width];
        var matrices = new float[rank * subsets * classes];
        rng.FillNormal(basis, 0f, 0.5f);
        rng.FillNormal(matrices, 0f, 0.5f);
        return new SteeringOperators(layer, width, rank, classes, subsets, ModelOutput.Margin, basis, matrices);
    }

    // Protects the query-time maths: each measurement is the margin of the steered logits o + (B·h)ᵀa_k minus the
    // frozen margin, computed here independently from the model's logits, its hidden layer and MlpKernels.
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Measurements_are_margin_changes_of_the_steered_logits(int layer)
    {
        var problem = Problem(10, 3);
        var model = (Mlp)problem.CreateModel();
        var op = RandomOperators(layer, 3, 5, 7);
        var y = new float[10 * 5];
        op.Measure(model, problem.Training, y);
        int w = op.Width, c = 3;
        var logits = new float[10 * c];
        var hidden = new float[10 * w];
        model.LogitsAndHidden(problem.TrainInputs, 10, layer, logits, hidden);
        for (int i = 0; i < 10; i++)
        {
            var o = logits.AsSpan(i * c, c).ToArray();
            float baseMargin = MlpKernels.Output(ModelOutput.Margin, o, problem.TrainLabels[i], 1f, default);
            for (int k = 0; k < 5; k++)
            {
                var z = (float[])o.Clone();
                for (int j = 0; j < 3; j++)
                {
                    double u = 0;
                    for (int t = 0; t < w; t++)
                    {
                        u += op.Basis[j * w + t] * hidden[i * w + t];
                    }

                    for (int cc = 0; cc < c; cc++)
                    {
                        z[cc] += (float)(u * op.Matrices[j * 5 * c + k * c + cc]);
                    }
                }

                float expected = MlpKernels.Output(ModelOutput.Margin, z, problem.TrainLabels[i], 1f, default) - baseMargin;
                Assert.Equal(expected, y[i * 5 + k], 4);
            }
        }
    }

    // Protects the hand-written gradient of L = fid + β·stab + κ·lin (all three terms on, non-zero operators) against
    // central finite differences of the returned losses, for entries of the basis and of the per-subset matrices.
    [Fact]
    public void Loss_gradients_match_finite_differences()
    {
        var problem = Problem(40, 11);
        var model = (Mlp)problem.CreateModel();
        var design = SubsetDesign.Create(40, 12, 3, 5);
        var options = new SteeringOptions { Rank = 4, Layer = 1, Stability = 0.7f, Linearity = 0.5f, SketchSize = 5, LinearityInputs = 3, ReferenceSize = 6 };
        var op = RandomOperators(1, 4, 12, 13);
        var gb = new float[op.Basis.Length];
        var gm = new float[op.Matrices.Length];
        SteeringTrainer.LossesAndGradients(op, model, problem.Training, design, options, gb, gm, step: 2);
        double Objective()
        {
            var (f, s, l) = SteeringTrainer.LossesAndGradients(op, model, problem.Training, design, options,
                new float[gb.Length], new float[gm.Length], step: 2);
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

        foreach (int i in new[] { 0, 5, 17, 31 })
        {
            Check(op.Basis, gb, i);
        }

        foreach (int i in new[] { 0, 7, 40, 95, 143 })
        {
            Check(op.Matrices, gm, i);
        }
    }

    // Protects what the operators are for: after training, a training example's margin rises more under the operators
    // of the subsets that contain it than under the others (fidelity), and training lowers the objective.
    [Fact]
    public void Trained_operators_help_their_own_members_most()
    {
        var problem = Problem(60, 21);
        var model = (Mlp)problem.CreateModel();
        var design = SubsetDesign.Create(60, 30, 3, 9);
        var options = new SteeringOptions { Rank = 4, Steps = 150, Linearity = 0.1f, SketchSize = 8 };
        var op = SteeringTrainer.Train(model, problem.Training, design, options);
        var y = new float[60 * 30];
        op.Measure(model, problem.Training, y);
        int wins = 0;
        double gap = 0;
        for (int i = 0; i < 60; i++)
        {
            var own = design.SubsetsOf(i).ToArray();
            double inside = own.Average(k => y[i * 30 + k]);
            double outside = Enumerable.Range(0, 30).Where(k => !own.Contains(k)).Average(k => y[i * 30 + k]);
            wins += inside > outside ? 1 : 0;
            gap += inside - outside;
        }

        Assert.True(wins >= 54, $"only {wins} of 60 examples gain more under their own subsets' operators");
        Assert.True(gap / 60 > 0.05, $"mean own-minus-other margin gain {gap / 60:G3}");
        var untrained = new SteeringOperators(op.Layer, op.Width, op.Rank, op.Classes, op.Subsets, op.MeasuredOutput, (float[])op.Basis.Clone(), new float[op.Matrices.Length]);
        var before = SteeringTrainer.LossesAndGradients(untrained, model, problem.Training, design, options, new float[op.Basis.Length], new float[op.Matrices.Length]);
        var after = SteeringTrainer.LossesAndGradients(op, model, problem.Training, design, options, new float[op.Basis.Length], new float[op.Matrices.Length]);
        Assert.True(after.Fidelity < before.Fidelity - 0.1, $"fidelity {before.Fidelity:G4} -> {after.Fidelity:G4}");
    }

    // Protects the method end to end: a training example used as its own query is ranked near the top of its scores,
    // per-source scores are the sums of the example scores, and the options reach the method.
    [Fact]
    public void Stride_ranks_a_training_example_high_for_itself_and_sums_sources()
    {
        var problem = Problem(60, 21);
        var method = (StrideMethod)MethodFactory.Create("stride", new Dictionary<string, string>
        {
            ["k"] = "30", ["d"] = "3", ["rank"] = "4", ["steps"] = "150", ["sketch"] = "8",
        });
        method.Precompute(problem);
        Assert.Equal(30, method.Operators.Subsets);
        Assert.Contains("K = 30, d = 3, rank 4", method.Describe());
        var queries = new QueryBatch(problem.TrainInputs, problem.TrainLabels, 6);
        var scores = method.Score(queries);
        int top = 0;
        for (int i = 0; i < 60; i++)
        {
            var row = scores.Row(i);
            int rank = 0;
            for (int j = 0; j < 60; j++)
            {
                rank += row[j] > row[i] ? 1 : 0;
            }

            top += rank < 6 ? 1 : 0;
        }

        Assert.True(top >= 40, $"only {top} of 60 training examples are in their own top 10%");
        for (int q = 0; q < 3; q++)
        {
            for (int s = 0; s < 4; s++)
            {
                double sum = 0;
                for (int j = s; j < 60; j += 4)
                {
                    sum += scores.Row(q)[j];
                }

                Assert.Equal(sum, scores.SourceScores[q * 4 + s], 4);
            }
        }
    }

    // Protects option handling: a bad value or an unknown key is an error naming it, never ignored.
    [Fact]
    public void Factory_refuses_bad_stride_options()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["combine"] = "max" }));
        Assert.Contains("combine", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["horizon"] = "5" }));
        Assert.Contains("horizon", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["d"] = "20", ["k"] = "10" }));
        Assert.Contains("d = 20", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["fo-horizon"] = "10" }));
        Assert.Contains("fo-horizon", e.Message);
        var combined = (BlendMethod)MethodFactory.Create("stride", new Dictionary<string, string> { ["combine"] = "blend", ["combine-weight"] = "0.5", ["fo-horizon"] = "7" });
        Assert.Contains("weight 0.5", combined.Describe());
        Assert.Contains("K=7", combined.Describe());
        Assert.Equal("stride+forward-only", combined.Name);
        Assert.True(double.IsNaN(((BlendMethod)MethodFactory.Create("stride", new Dictionary<string, string> { ["combine"] = "blend" })).Weight));
        e = Assert.ThrowsAny<ArgumentException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["combine"] = "blend", ["combine-weight"] = "1.5" }));
        Assert.Contains("[0, 1]", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["combine"] = "prior", ["combine-weight"] = "0.5" }));
        Assert.Contains("combine=blend", e.Message);
        // Any forward-only option reaches the partner as fo-<key>; an unknown one is named, never ignored.
        var spectral = (StrideMethod)MethodFactory.Create("stride", new Dictionary<string, string> { ["combine"] = "prior", ["fo-propagation"] = "spectral", ["fo-horizon"] = "100" });
        Assert.Contains("spectral", spectral.Describe(), StringComparison.OrdinalIgnoreCase);
        Assert.Contains("K=100", spectral.Describe());
        e = Assert.ThrowsAny<ArgumentException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["combine"] = "blend", ["fo-bogus"] = "1" }));
        Assert.Contains("bogus", e.Message);
        // Served methods: forward-only without options, stride alone, or the blend at a fixed weight.
        Assert.IsType<StrideMethod>(MethodFactory.CreateServed("stride:k=40,d=4"));
        Assert.Contains("not served", Assert.Throws<MethodOptionException>(() => MethodFactory.CreateServed("stride:combine=prior")).Message);
        Assert.Contains("fixed weight", Assert.Throws<MethodOptionException>(() => MethodFactory.CreateServed("stride:combine=blend")).Message);
        Assert.IsType<ProbeSetBlendMethod>(MethodFactory.CreateServed("stride:k=40,d=4,combine=blend,combine-weight=0.3"));
        Assert.Contains("Simulator:Horizon", Assert.Throws<MethodOptionException>(() => MethodFactory.CreateServed("forward-only:horizon=5")).Message);
        Assert.Contains("not served from probes", Assert.Throws<MethodOptionException>(() => MethodFactory.CreateServed("trak")).Message);
        // An ensemble of STRIDE (models=m) gets one fresh method per member; a combination is not ensembled, nor served.
        var ensemble = Assert.IsType<EnsembleMethod>(MethodFactory.Create("stride", new Dictionary<string, string> { ["models"] = "3", ["k"] = "40", ["d"] = "4" }));
        Assert.Equal(3, ensemble.Models);
        Assert.Contains("blend:a=stride", Assert.Throws<MethodOptionException>(() => MethodFactory.Create("stride", new Dictionary<string, string> { ["models"] = "2", ["combine"] = "blend" })).Message);
        Assert.Contains("models is not served", Assert.Throws<MethodOptionException>(() => MethodFactory.CreateServed("stride:models=2")).Message);
    }

    // Protects the diagnostic's exact measurements: subset k's model is θ* after `steps` plain gradient steps on the mean
    // loss of the subset's members (done here by hand with the model's own LossAndBackward), and the measurement is the
    // query's margin under it minus under θ*; StrideMethod with operators=finetune scores from exactly these.
    [Fact]
    public void Fine_tune_measurements_are_output_changes_after_training_on_the_subset()
    {
        var problem = Problem(12, 5);
        var design = SubsetDesign.Create(12, 6, 2, 11);
        var model = problem.CreateModel();
        var tunes = SubsetFineTunes.Train(model, problem.Training, design, 3, 0.1f);
        var (x, y) = KernelTests.RandomData(Layout, 4, 55);
        var queries = new QueryBatch(x, y, 6);
        var measured = new float[4 * 6];
        tunes.Measure(problem.CreateModel(), queries.Batch, ModelOutput.Margin, measured);
        var baseline = new float[4];
        problem.CreateModel().Outputs(queries.Batch, ModelOutput.Margin, baseline);
        for (int k = 0; k < 6; k++)
        {
            var m = problem.CreateModel();
            var theta = (float[])problem.Theta.Clone();
            var grad = new float[theta.Length];
            var rows = global::Attribution.Attribution.Methods.ForwardOnlySimulator.Rows(problem.Training, design.MembersOf(k));
            for (int s = 0; s < 3; s++)
            {
                m.LossAndBackward(rows);
                m.CopyGradientTo(grad);
                for (int j = 0; j < theta.Length; j++)
                {
                    theta[j] -= 0.1f * grad[j];
                }

                m.LoadFrom(theta);
            }

            var after = new float[4];
            m.Outputs(queries.Batch, ModelOutput.Margin, after);
            for (int q = 0; q < 4; q++)
            {
                Assert.Equal(after[q] - baseline[q], measured[(q * 6) + k], 4);
            }
        }

        Assert.Contains(measured, v => Math.Abs(v) > 1e-4);
        var method = (StrideMethod)MethodFactory.Create("stride", new Dictionary<string, string> { ["k"] = "6", ["d"] = "2", ["design-seed"] = "11", ["operators"] = "finetune", ["finetune-steps"] = "3", ["finetune-lr"] = "0.1" });
        method.Precompute(problem);
        Assert.Equal(measured, method.Measurements(queries));
        Assert.Contains("diagnostic", Assert.Throws<NotSupportedException>(() => method.ExportState()).Message);
    }
}
