using System.Globalization;
using System.Numerics.Tensors;
using Attribution.Engine.Autograd;
using Tensor = Attribution.Engine.Tensors.Tensor;

namespace Attribution.Engine.Models;

/// <summary>
/// The transformer behind <see cref="IModel"/>: an adapter over <see cref="Gpt"/>'s public API (loss and backward,
/// forward-mode loss JVP, per-example linear captures). A batch is <see cref="ModelBatch.Sequences"/>: token ids and
/// next-token targets [count, T], -1 ignored. Per example, <see cref="ModelOutput.Loss"/> is the sequence's summed
/// next-token negative log-likelihood and <see cref="ModelOutput.LogLikelihood"/> its negation; the training step
/// (<see cref="LossAndBackward"/>) is the mean over all target tokens, as the trainer uses it. A margin is not defined
/// for a language model. Per-example gradient factors cover the linear layers (attention, MLP, head); embeddings and
/// LayerNorms are outside them (<see cref="GradientFactors.Complete"/> is false), and with a tied head the head's factor
/// holds only the head's share of the token embedding's gradient. As an <see cref="IHiddenStateModel"/> its hidden layers
/// are the blocks' outputs (the residual stream, width C) and a row is one position (its logits predict the next token).
/// </summary>
public sealed class GptModel : IResidualStreamModel
{
    private readonly (string Name, int[] Shape, int Offset)[] _tensors;
    private readonly Dictionary<Parameter, int> _offsets = [];

    /// <summary>Wraps a model (shared, not copied: the adapter reads and writes its parameters).</summary>
    public GptModel(Gpt gpt)
    {
        ArgumentNullException.ThrowIfNull(gpt);
        Gpt = gpt;
        long offset = 0;
        var tensors = new List<(string, int[], int)>();
        foreach (var p in gpt.Parameters)
        {
            _offsets[p] = checked((int)offset);
            tensors.Add((p.Name, [.. p.Shape], (int)offset));
            offset += p.Count;
        }

        _tensors = [.. tensors];
        ParameterCount = checked((int)offset);
    }

    /// <summary>The wrapped transformer.</summary>
    public Gpt Gpt { get; }

    /// <inheritdoc />
    public string Architecture
    {
        get
        {
            var c = Gpt.Config;
            return string.Create(CultureInfo.InvariantCulture,
                $"gpt:vocab={c.VocabSize},context={c.Context},d={c.DModel},heads={c.Heads},layers={c.Layers},mlp={c.MlpRatio},tied={(c.TiedHead ? 1 : 0)}");
        }
    }

    /// <inheritdoc />
    public int ParameterCount { get; }

    /// <inheritdoc />
    public IReadOnlyList<(string Name, int[] Shape, int Offset)> Tensors => _tensors;

    /// <inheritdoc />
    public IReadOnlyList<Parameter> Parameters => Gpt.Parameters;

    /// <inheritdoc />
    public void LoadFrom(ReadOnlySpan<float> flat)
    {
        CheckFlat(flat.Length, nameof(flat));
        foreach (var p in Gpt.Parameters)
        {
            flat.Slice(_offsets[p], p.Count).CopyTo(p.Data);
        }
    }

    /// <inheritdoc />
    public void CopyTo(Span<float> flat)
    {
        CheckFlat(flat.Length, nameof(flat));
        foreach (var p in Gpt.Parameters)
        {
            p.Data.CopyTo(flat.Slice(_offsets[p], p.Count));
        }
    }

    /// <inheritdoc />
    public void CopyGradientTo(Span<float> flat)
    {
        CheckFlat(flat.Length, nameof(flat));
        foreach (var p in Gpt.Parameters)
        {
            p.Grad.CopyTo(flat.Slice(_offsets[p], p.Count));
        }
    }

    /// <inheritdoc />
    public IModel Clone()
    {
        var copy = new GptModel(new Gpt(Gpt.Config, seed: 0));
        var flat = new float[ParameterCount];
        CopyTo(flat);
        copy.LoadFrom(flat);
        return copy;
    }

    /// <inheritdoc />
    public void Outputs(in ModelBatch batch, ModelOutput output, Span<float> values)
    {
        float sign = Sign(output);
        Check(batch, values.Length);
        for (int i = 0; i < batch.Count; i++)
        {
            var (inputs, targets, tokens) = Example(batch, i);
            values[i] = tokens == 0 ? 0f : sign * tokens * Gpt.Loss(inputs, targets, 1, batch.SequenceLength);
        }
    }

    /// <inheritdoc />
    public float LossAndBackward(in ModelBatch batch)
    {
        Check(batch, batch.Count);
        Gpt.ZeroGrad();
        return Gpt.LossAndBackward(Tokens(batch), batch.Labels, batch.Count, batch.SequenceLength);
    }

    /// <inheritdoc />
    public void OutputGradient(in ModelBatch batch, ModelOutput output, ReadOnlySpan<float> weights, Span<float> gradient, Span<float> values)
    {
        float sign = Sign(output);
        Check(batch, values.IsEmpty ? batch.Count : values.Length);
        CheckFlat(gradient.Length, nameof(gradient));
        if (!weights.IsEmpty && weights.Length < batch.Count)
        {
            throw new ArgumentException($"{weights.Length} weights for {batch.Count} examples.", nameof(weights));
        }

        gradient.Clear();
        // Example by example: the transformer's loss is a token mean, so each example's summed NLL is its mean times
        // its target count.
        for (int i = 0; i < batch.Count; i++)
        {
            var (inputs, targets, tokens) = Example(batch, i);
            float value = 0f;
            if (tokens > 0)
            {
                Gpt.ZeroGrad();
                value = sign * tokens * Gpt.LossAndBackward(inputs, targets, 1, batch.SequenceLength);
                float scale = sign * tokens * (weights.IsEmpty ? 1f : weights[i]);
                foreach (var p in Gpt.Parameters)
                {
                    var g = gradient.Slice(_offsets[p], p.Count);
                    TensorPrimitives.MultiplyAdd(p.Grad, scale, g, g);
                }
            }

            if (!values.IsEmpty)
            {
                values[i] = value;
            }
        }
    }

    /// <inheritdoc />
    public void OutputJvp(in ModelBatch batch, ModelOutput output, ReadOnlySpan<float> direction, Span<float> values, Span<float> tangents)
    {
        float sign = Sign(output);
        Check(batch, Math.Min(values.Length, tangents.Length));
        CheckFlat(direction.Length, nameof(direction));
        var arrays = new float[]?[Gpt.Parameters.Count];
        for (int j = 0; j < arrays.Length; j++)
        {
            var p = Gpt.Parameters[j];
            arrays[j] = direction.Slice(_offsets[p], p.Count).ToArray();
        }

        for (int i = 0; i < batch.Count; i++)
        {
            var (inputs, targets, tokens) = Example(batch, i);
            if (tokens == 0)
            {
                values[i] = tangents[i] = 0f;
                continue;
            }

            var (loss, jvp) = Gpt.LossJvp(inputs, targets, 1, batch.SequenceLength, arrays);
            values[i] = sign * tokens * loss;
            tangents[i] = sign * tokens * jvp;
        }
    }

    /// <inheritdoc />
    public GradientFactors PerExampleGradients(in ModelBatch batch, ModelOutput output)
    {
        float sign = Sign(output);
        Check(batch, batch.Count);
        var values = new float[batch.Count];
        Outputs(batch, output, values);
        int total = 0;
        foreach (var t in batch.Labels)
        {
            total += t == -1 ? 0 : 1;
        }

        bool capture = Gpt.CapturePerExample;
        Gpt.CapturePerExample = true;
        try
        {
            Gpt.ZeroGrad();
            Gpt.LossAndBackward(Tokens(batch), batch.Labels, batch.Count, batch.SequenceLength);
            // The captures hold ∂(token-mean NLL)/∂y; the sum of the examples' outputs is sign · total · that mean, and
            // each example's rows only carry its own output's gradient.
            float scale = sign * total;
            var layers = new List<LinearFactors>();
            foreach (var c in Gpt.Captures)
            {
                var deltas = new float[c.OutputGrads.Length];
                TensorPrimitives.Multiply(c.OutputGrads, scale, deltas);
                layers.Add(new LinearFactors(_offsets[c.Weight], c.Bias is { } b ? _offsets[b] : -1, c.In, c.Out, (float[])c.Activations.Clone(), deltas));
            }

            Gpt.ZeroGrad();
            return new GradientFactors(ParameterCount, batch.Count, batch.SequenceLength, layers, values, complete: false);
        }
        finally
        {
            Gpt.CapturePerExample = capture;
        }
    }

    /// <summary>
    /// Per row, the mean over its positions of the final hidden states (the residual stream after the final LayerNorm,
    /// the head's input): <c>destination</c> is [batch.Count, C]. A row's positions run up to and including the last one
    /// with a target (padding after it is left out; a prompt's positions, whose targets are ignored, are included). A
    /// row with no target at all is all zeros. This is the representation that representation-similarity attribution
    /// compares.
    /// </summary>
    public void MeanHiddenStates(in ModelBatch batch, Span<float> destination)
    {
        Check(batch, batch.Count);
        int c = Gpt.Config.DModel, t = batch.SequenceLength;
        if (destination.Length != (long)batch.Count * c)
        {
            throw new ArgumentException($"destination holds {destination.Length} floats; {batch.Count} rows of width {c} need {(long)batch.Count * c}.", nameof(destination));
        }

        destination.Clear();
        var tokens = Tokens(batch);
        for (int i = 0; i < batch.Count; i++)
        {
            int length = batch.TargetExtent(i);

            if (length == 0)
            {
                continue;
            }

            var hidden = Gpt.HiddenStates(tokens.AsSpan(i * t, length), 1, length);
            var mean = destination.Slice(i * c, c);
            for (int p = 0; p < length; p++)
            {
                TensorPrimitives.Add(mean, hidden.AsSpan(p * c, c), mean);
            }

            TensorPrimitives.Multiply(mean, 1f / length, mean);
        }
    }

    /// <inheritdoc />
    public int HiddenLayerCount => Gpt.Config.Layers;

    /// <inheritdoc />
    public int DefaultHiddenLayer => Math.Max(0, (int)Math.Ceiling(0.6 * Gpt.Config.Layers) - 1);

    /// <inheritdoc />
    public int HiddenWidth(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, HiddenLayerCount);
        return Gpt.Config.DModel;
    }

    /// <inheritdoc />
    public int Classes => Gpt.Config.VocabSize;

    /// <inheritdoc />
    public Tensor LogitsFrom(Graph graph, Tensor hidden, int layer) => Gpt.ForwardFrom(graph, hidden, layer);

    /// <inheritdoc />
    public void LogitsAndHidden(in ModelBatch batch, int layer, Span<float> logits, Span<float> hidden)
    {
        Check(batch, batch.Count);
        long rows = (long)batch.Count * batch.SequenceLength;
        int width = HiddenWidth(layer);
        if (logits.Length != rows * Classes || hidden.Length != rows * width)
        {
            throw new ArgumentException($"{rows} rows need {rows * Classes} logits and {rows * width} hidden values; got {logits.Length} and {hidden.Length}.");
        }

        if (batch.Count == 0)
        {
            return;
        }

        var (l, h) = Gpt.LogitsAndHidden(Tokens(batch), batch.Count, batch.SequenceLength, layer);
        l.CopyTo(logits);
        h.CopyTo(hidden);
    }

    private static float Sign(ModelOutput output) => output switch
    {
        ModelOutput.Loss => 1f,
        ModelOutput.LogLikelihood => -1f,
        _ => throw new NotSupportedException($"a language model has no {output} output; use Loss or LogLikelihood (the sequence's summed next-token log-probability)."),
    };

    private static int[] Tokens(in ModelBatch batch) =>
        batch.Tokens ?? throw new ArgumentException("a transformer takes a sequence batch (token ids and targets), not float inputs.", nameof(batch));

    private static (int[] Inputs, int[] Targets, int Tokens) Example(in ModelBatch batch, int i)
    {
        int t = batch.SequenceLength;
        var inputs = Tokens(batch).AsSpan(i * t, t).ToArray();
        var targets = batch.Labels.AsSpan(i * t, t).ToArray();
        int count = 0;
        foreach (var y in targets)
        {
            count += y == -1 ? 0 : 1;
        }

        return (inputs, targets, count);
    }

    private static void Check(in ModelBatch batch, int outputs)
    {
        Tokens(batch);
        if (outputs < batch.Count)
        {
            throw new ArgumentException($"output spans hold {outputs} values for {batch.Count} examples.");
        }
    }

    private void CheckFlat(int length, string name)
    {
        if (length != ParameterCount)
        {
            throw new ArgumentException($"'{name}' has {length} floats; this transformer ({Architecture}) has {ParameterCount} parameters.", name);
        }
    }
}
