namespace Attribution.Engine.Models;

/// <summary>
/// Per-example gradients of an <see cref="Mlp"/> output in factored form. For layer l, example i's weight gradient is
/// the outer product <c>G_l[i]ᵀ A_l[i]</c> ([out, in]) and its bias gradient is <c>G_l[i]</c>, where A_l [batch, in]
/// are the layer's input activations and G_l [batch, out] the gradients at its pre-activation output. Storage is
/// O(batch · Σ widths) rather than O(batch · p).
/// </summary>
public sealed class MlpPerExampleGradients
{
    private readonly float[][] _a;
    private readonly float[][] _g;

    internal MlpPerExampleGradients(MlpLayout layout, int batch)
    {
        Layout = layout;
        Batch = batch;
        _a = new float[layout.LayerCount][];
        _g = new float[layout.LayerCount][];
        for (int l = 0; l < layout.LayerCount; l++)
        {
            _a[l] = new float[batch * layout.In(l)];
            _g[l] = new float[batch * layout.Out(l)];
        }

        Values = new float[batch];
    }

    /// <summary>The model layout.</summary>
    public MlpLayout Layout { get; }

    /// <summary>Number of examples.</summary>
    public int Batch { get; }

    /// <summary>The per-example output values (losses or margins) the gradients are of.</summary>
    public float[] Values { get; }

    /// <summary>A_l: layer l's input activations, [batch, in], row-major.</summary>
    public Span<float> Activations(int layer) => _a[layer];

    /// <summary>G_l: the gradients at layer l's output (before its activation), [batch, out], row-major.</summary>
    public Span<float> OutputGradients(int layer) => _g[layer];

    /// <summary>Writes example <paramref name="example"/>'s full gradient into <paramref name="flat"/> (MlpLayout order).</summary>
    public void Materialize(int example, Span<float> flat)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(example);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(example, Batch);
        if (flat.Length != Layout.ParameterCount)
        {
            throw new ArgumentException($"'flat' has {flat.Length} floats; the layout has {Layout.ParameterCount}.", nameof(flat));
        }

        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int fin = Layout.In(l), fout = Layout.Out(l);
            var a = _a[l].AsSpan(example * fin, fin);
            var g = _g[l].AsSpan(example * fout, fout);
            var w = Layout.Weight(flat, l);
            for (int o = 0; o < fout; o++)
            {
                System.Numerics.Tensors.TensorPrimitives.Multiply(a, g[o], w.Slice(o * fin, fin));
            }

            g.CopyTo(Layout.Bias(flat, l));
        }
    }

    /// <summary>
    /// <c>g_i · v</c> for a flat vector v (MlpLayout order) without materialising g_i: Σ_l G_l[i]ᵀ V_l A_l[i] + G_l[i]·vb_l.
    /// </summary>
    public double Dot(int example, ReadOnlySpan<float> flat)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(example);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(example, Batch);
        if (flat.Length != Layout.ParameterCount)
        {
            throw new ArgumentException($"'flat' has {flat.Length} floats; the layout has {Layout.ParameterCount}.", nameof(flat));
        }

        double sum = 0;
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int fin = Layout.In(l), fout = Layout.Out(l);
            var a = _a[l].AsSpan(example * fin, fin);
            var g = _g[l].AsSpan(example * fout, fout);
            var w = Layout.Weight(flat, l);
            for (int o = 0; o < fout; o++)
            {
                if (g[o] != 0f)
                {
                    sum += g[o] * (double)System.Numerics.Tensors.TensorPrimitives.Dot(w.Slice(o * fin, fin), a);
                }
            }

            sum += System.Numerics.Tensors.TensorPrimitives.Dot(g, Layout.Bias(flat, l));
        }

        return sum;
    }
}
