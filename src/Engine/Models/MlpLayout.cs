namespace Attribution.Engine.Models;

/// <summary>
/// The flat parameter layout of a fully connected ReLU network, shared by the engine's MLP, checkpoints and the
/// attribution methods (which treat a model as one flat vector θ of <see cref="ParameterCount"/> floats).
/// Layer l has weight <c>W_l</c> of shape [out, in] (PyTorch's <c>nn.Linear</c> convention, so <c>y = x W_lᵀ + b_l</c>)
/// followed by bias <c>b_l</c> of shape [out]. Layers are stored in order: W_0, b_0, W_1, b_1, ...
/// Names are <c>layers.{l}.weight</c> and <c>layers.{l}.bias</c>.
/// </summary>
public sealed class MlpLayout
{
    private readonly int[] _weightOffsets;
    private readonly int[] _biasOffsets;

    /// <summary>Creates the layout for widths such as [784, 128, 64, 10] (input, hidden..., classes).</summary>
    public MlpLayout(IReadOnlyList<int> widths)
    {
        ArgumentNullException.ThrowIfNull(widths);
        if (widths.Count < 2)
        {
            throw new ArgumentException("An MLP needs at least an input and an output width.", nameof(widths));
        }

        foreach (var w in widths)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(w, 1, nameof(widths));
        }

        Widths = widths.ToArray();
        _weightOffsets = new int[LayerCount];
        _biasOffsets = new int[LayerCount];
        long offset = 0;
        for (int l = 0; l < LayerCount; l++)
        {
            _weightOffsets[l] = checked((int)offset);
            offset += (long)Widths[l] * Widths[l + 1];
            _biasOffsets[l] = checked((int)offset);
            offset += Widths[l + 1];
        }

        ParameterCount = checked((int)offset);
    }

    /// <summary>Layer widths, input first.</summary>
    public IReadOnlyList<int> Widths { get; }

    /// <summary>Number of linear layers.</summary>
    public int LayerCount => Widths.Count - 1;

    /// <summary>Total number of parameters p.</summary>
    public int ParameterCount { get; }

    /// <summary>Input width of layer l.</summary>
    public int In(int layer) => Widths[layer];

    /// <summary>Output width of layer l.</summary>
    public int Out(int layer) => Widths[layer + 1];

    /// <summary>Offset of W_l ([out, in], row-major) in the flat vector.</summary>
    public int WeightOffset(int layer) => _weightOffsets[layer];

    /// <summary>Offset of b_l ([out]) in the flat vector.</summary>
    public int BiasOffset(int layer) => _biasOffsets[layer];

    /// <summary>W_l as a span of the flat vector.</summary>
    public Span<float> Weight(Span<float> theta, int layer) => theta.Slice(_weightOffsets[layer], In(layer) * Out(layer));

    /// <summary>b_l as a span of the flat vector.</summary>
    public Span<float> Bias(Span<float> theta, int layer) => theta.Slice(_biasOffsets[layer], Out(layer));

    /// <summary>W_l as a read-only span of the flat vector.</summary>
    public ReadOnlySpan<float> Weight(ReadOnlySpan<float> theta, int layer) => theta.Slice(_weightOffsets[layer], In(layer) * Out(layer));

    /// <summary>b_l as a read-only span of the flat vector.</summary>
    public ReadOnlySpan<float> Bias(ReadOnlySpan<float> theta, int layer) => theta.Slice(_biasOffsets[layer], Out(layer));

    /// <summary>Safetensors / PyTorch names in flat order.</summary>
    public IEnumerable<(string Name, int[] Shape, int Offset)> Tensors()
    {
        for (int l = 0; l < LayerCount; l++)
        {
            yield return ($"layers.{l}.weight", new[] { Out(l), In(l) }, _weightOffsets[l]);
            yield return ($"layers.{l}.bias", new[] { Out(l) }, _biasOffsets[l]);
        }
    }
}
