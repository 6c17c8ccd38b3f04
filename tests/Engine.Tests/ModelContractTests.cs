using Attribution.Engine.Models;

namespace Attribution.Engine.Tests;

/// <summary>
/// The <see cref="IModel"/> contract, checked through the interface only, for every model: reverse-mode gradients
/// against central finite differences of the outputs, forward-mode JVPs against gradient dot products, per-example
/// factors against the weighted gradient, and the flat layout round trip. A new architecture adds one case here.
/// </summary>
public class ModelContractTests
{
    public static TheoryData<string, ModelOutput> Cases => new()
    {
        { "mlp", ModelOutput.Loss },
        { "mlp", ModelOutput.Margin },
        { "mlp", ModelOutput.LogLikelihood },
        { "gpt", ModelOutput.Loss },
        { "gpt", ModelOutput.LogLikelihood },
    };

    internal static (IModel Model, ModelBatch Batch) Create(string kind)
    {
        var rng = new Rng(5);
        switch (kind)
        {
            case "mlp":
            {
                var mlp = new Mlp([7, 6, 5, 4], seed: 3);
                var x = new float[5 * 7];
                rng.FillNormal(x);
                return (mlp, ModelBatch.Classification(x, [0, 3, 1, 2, 3]));
            }

            case "gpt":
            {
                // Untied head, so every linear layer's factors are the whole gradient of the parameters they cover.
                var gpt = new Gpt(new GptConfig(VocabSize: 11, Context: 6, DModel: 8, Heads: 2, Layers: 2, TiedHead: false), seed: 6);
                const int count = 3, t = 5;
                var tokens = Enumerable.Range(0, count * t).Select(_ => rng.NextInt(11)).ToArray();
                var targets = Enumerable.Range(0, count * t).Select(_ => rng.NextInt(11)).ToArray();
                targets[7] = -1; // an ignored position (padding)
                return (new GptModel(gpt), ModelBatch.Sequences(tokens, targets, count, t));
            }

            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown model kind");
        }
    }

    private static double Sum(IModel model, in ModelBatch batch, ModelOutput output, float[] theta, float[] weights)
    {
        model.LoadFrom(theta);
        var values = new float[batch.Count];
        model.Outputs(batch, output, values);
        double s = 0;
        for (int i = 0; i < values.Length; i++)
        {
            s += (double)weights[i] * values[i];
        }

        return s;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Weighted_output_gradient_matches_central_finite_differences(string kind, ModelOutput output)
    {
        var (model, batch) = Create(kind);
        int p = model.ParameterCount;
        var theta = new float[p];
        model.CopyTo(theta);
        var weights = Enumerable.Range(0, batch.Count).Select(i => 0.5f + 0.25f * i).ToArray();
        var grad = new float[p];
        model.OutputGradient(batch, output, weights, grad, default);
        // The transformer's LayerNorms see inputs of scale 0.02 at initialisation: a smaller step keeps the difference
        // in their near-linear range.
        float h = kind == "gpt" ? 1e-3f : 1e-2f;
        var rng = new Rng(1);
        for (int trial = 0; trial < 40; trial++)
        {
            int j = rng.NextInt(p);
            var plus = (float[])theta.Clone();
            var minus = (float[])theta.Clone();
            plus[j] += h;
            minus[j] -= h;
            double fd = (Sum(model, batch, output, plus, weights) - Sum(model, batch, output, minus, weights)) / (2 * h);
            Assert.True(Math.Abs(fd - grad[j]) <= 5e-3 * (1 + Math.Abs(fd)), $"{kind} {output}: parameter {j}: finite difference {fd} vs gradient {grad[j]}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Jvp_equals_the_gradient_dotted_with_the_direction_per_example(string kind, ModelOutput output)
    {
        var (model, batch) = Create(kind);
        int p = model.ParameterCount;
        var direction = new float[p];
        new Rng(2).FillNormal(direction, 0f, 0.1f);
        var values = new float[batch.Count];
        var tangents = new float[batch.Count];
        model.OutputJvp(batch, output, direction, values, tangents);
        var expectedValues = new float[batch.Count];
        model.Outputs(batch, output, expectedValues);
        var factors = model.PerExampleGradients(batch, output);
        var dots = new float[batch.Count];
        factors.DotDense(direction, dots);
        for (int i = 0; i < batch.Count; i++)
        {
            Assert.Equal(expectedValues[i], values[i], 1e-4 * (1 + Math.Abs(expectedValues[i])));
            Assert.Equal(expectedValues[i], factors.Values[i], 1e-4 * (1 + Math.Abs(expectedValues[i])));
            if (factors.Complete)
            {
                Assert.Equal(dots[i], tangents[i], 1e-3 * (1 + Math.Abs(dots[i])));
            }
        }

        // One-hot weights: the reverse-mode gradient of example i dotted with v is its tangent, for every model.
        var grad = new float[p];
        for (int i = 0; i < batch.Count; i++)
        {
            var onehot = new float[batch.Count];
            onehot[i] = 1f;
            model.OutputGradient(batch, output, onehot, grad, default);
            double dot = System.Numerics.Tensors.TensorPrimitives.Dot(grad, direction);
            Assert.Equal(dot, tangents[i], 1e-3 * (1 + Math.Abs(dot)));
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Per_example_factors_sum_to_the_weighted_gradient_on_the_layers_they_cover(string kind, ModelOutput output)
    {
        var (model, batch) = Create(kind);
        int p = model.ParameterCount;
        var weights = Enumerable.Range(0, batch.Count).Select(i => 1f - 0.3f * i).ToArray();
        var grad = new float[p];
        model.OutputGradient(batch, output, weights, grad, default);
        var factors = model.PerExampleGradients(batch, output);
        var dense = new float[batch.Count * p];
        factors.Dense(0, batch.Count, dense);
        var covered = new bool[p];
        foreach (var l in factors.Layers)
        {
            Array.Fill(covered, true, l.WeightOffset, l.In * l.Out);
            if (l.BiasOffset >= 0)
            {
                Array.Fill(covered, true, l.BiasOffset, l.Out);
            }
        }

        Assert.Equal(factors.Complete, covered.All(c => c));
        for (int j = 0; j < p; j++)
        {
            if (!covered[j])
            {
                continue;
            }

            double s = 0;
            for (int i = 0; i < batch.Count; i++)
            {
                s += weights[i] * dense[i * p + j];
            }

            Assert.Equal(s, grad[j], 1e-4 * (1 + Math.Abs(s)));
        }
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("gpt")]
    public void Flat_parameters_round_trip_through_the_named_tensors_and_a_clone(string kind)
    {
        var (model, batch) = Create(kind);
        int p = model.ParameterCount;
        Assert.Equal(p, model.Tensors.Sum(t => t.Shape.Aggregate(1, (a, b) => a * b)));
        Assert.Equal(model.Tensors.Select(t => t.Name), model.Parameters.Select(q => q.Name));
        var theta = new float[p];
        new Rng(4).FillNormal(theta, 0f, 0.2f);
        model.LoadFrom(theta);
        var back = new float[p];
        model.CopyTo(back);
        Assert.Equal(theta, back);
        var clone = model.Clone();
        Assert.Equal(model.Architecture, clone.Architecture);
        var a = new float[batch.Count];
        var b = new float[batch.Count];
        model.Outputs(batch, ModelOutput.Loss, a);
        clone.Outputs(batch, ModelOutput.Loss, b);
        Assert.Equal(a, b);
    }

    [Fact]
    public void A_transformer_refuses_a_margin_and_float_inputs_with_a_clear_error()
    {
        var (model, batch) = Create("gpt");
        var e = Assert.Throws<NotSupportedException>(() => model.Outputs(batch, ModelOutput.Margin, new float[batch.Count]));
        Assert.Contains("LogLikelihood", e.Message, StringComparison.Ordinal);
        var a = Assert.Throws<ArgumentException>(() => model.Outputs(ModelBatch.Classification(new float[4], [0]), ModelOutput.Loss, new float[1]));
        Assert.Contains("sequence batch", a.Message, StringComparison.Ordinal);
        Assert.StartsWith("gpt:vocab=11,context=6,d=8,heads=2,layers=2", model.Architecture, StringComparison.Ordinal);
    }

    [Fact]
    public void A_transformers_training_step_is_the_token_mean_of_its_per_example_losses()
    {
        var (model, batch) = Create("gpt");
        var values = new float[batch.Count];
        model.Outputs(batch, ModelOutput.Loss, values);
        int tokens = batch.Labels.Count(y => y != -1);
        float mean = model.LossAndBackward(batch);
        Assert.Equal(values.Sum() / tokens, mean, 1e-5);
        var grad = new float[model.ParameterCount];
        model.CopyGradientTo(grad);
        var summed = new float[model.ParameterCount];
        model.OutputGradient(batch, ModelOutput.Loss, default, summed, default);
        System.Numerics.Tensors.TensorPrimitives.Multiply(summed, 1f / tokens, summed);
        MlpTests.AssertClose(summed, grad, 1e-4, "token-mean gradient");
    }

    [Theory]
    [InlineData(ModelOutput.Margin)]
    [InlineData(ModelOutput.Loss)]
    public void Mlp_forward_mode_factors_equal_the_backward_pass_factors(ModelOutput output)
    {
        var mlp = new Mlp([9, 8, 6, 5, 4], seed: 7);
        var x = new float[6 * 9];
        new Rng(8).FillNormal(x);
        int[] y = [0, 1, 2, 3, 0, 1];
        var reverse = mlp.PerExampleGradients(x, y, 6, output);
        var forward = mlp.ForwardModeGradients(x, y, 6, output);
        Assert.Equal(reverse.Values, forward.Values);
        for (int l = 0; l < reverse.Layers.Count; l++)
        {
            Assert.Equal(reverse.Layers[l].Activations, forward.Layers[l].Activations);
            MlpTests.AssertClose(reverse.Layers[l].Deltas, forward.Layers[l].Deltas, 1e-5, $"layer {l} deltas");
        }
    }
}
