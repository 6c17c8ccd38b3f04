using System.Numerics.Tensors;

namespace Attribution.Engine.Autograd;

/// <summary>
/// Per-example gradients of a linear layer <c>y = x Wᵀ + b</c> in factored form: the layer's input rows
/// (<see cref="Activations"/>, [rows, in]) and the gradients of the loss with respect to its output rows
/// (<see cref="OutputGrads"/>, [rows, out]). Example <c>i</c> owns rows <c>[i·R, (i+1)·R)</c> for <c>R</c> rows per example
/// (R = sequence length for a transformer, 1 for an MLP); its weight gradient is <c>Σ_r g_rᵀ x_r</c>, which is never
/// formed unless <see cref="MaterializeWeightGrad"/> is asked for.
/// </summary>
public sealed class LinearCapture
{
    /// <summary>Creates a capture for the layer with these parameters.</summary>
    public LinearCapture(Parameter weight, Parameter? bias)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Shape.Count != 2)
        {
            throw new ArgumentException($"LinearCapture: weight '{weight.Name}' must be [out, in], got rank {weight.Shape.Count}.");
        }

        Weight = weight;
        Bias = bias;
    }

    /// <summary>The layer's weight, [out, in].</summary>
    public Parameter Weight { get; }

    /// <summary>The layer's bias, [out], if any.</summary>
    public Parameter? Bias { get; }

    /// <summary>Output features.</summary>
    public int Out => Weight.Shape[0];

    /// <summary>Input features.</summary>
    public int In => Weight.Shape[1];

    /// <summary>Rows captured by the last forward pass.</summary>
    public int Rows { get; private set; }

    /// <summary>Input rows, [Rows, In] row-major (valid after a forward pass).</summary>
    public float[] Activations { get; private set; } = [];

    /// <summary>Output-gradient rows, [Rows, Out] row-major (valid after the backward pass).</summary>
    public float[] OutputGrads { get; private set; } = [];

    /// <summary>True once the backward pass has filled <see cref="OutputGrads"/> for the current activations.</summary>
    public bool HasGrads { get; private set; }

    internal void CaptureActivations(ReadOnlySpan<float> x, int rows)
    {
        if (Activations.Length != x.Length)
        {
            Activations = new float[x.Length];
        }

        x.CopyTo(Activations);
        Rows = rows;
        HasGrads = false;
    }

    internal void CaptureGrads(ReadOnlySpan<float> dy)
    {
        if (OutputGrads.Length != dy.Length)
        {
            OutputGrads = new float[dy.Length];
        }

        dy.CopyTo(OutputGrads);
        HasGrads = true;
    }

    /// <summary>
    /// Forms example <paramref name="example"/>'s gradient: <c>weightGrad[out, in] = Σ_r g_rᵀ x_r</c> and
    /// <c>biasGrad[out] = Σ_r g_r</c> over its <paramref name="rowsPerExample"/> rows (overwrites the destinations).
    /// </summary>
    public void MaterializeWeightGrad(int example, int rowsPerExample, Span<float> weightGrad, Span<float> biasGrad)
    {
        if (!HasGrads)
        {
            throw new InvalidOperationException($"LinearCapture '{Weight.Name}': no output gradients captured yet (run backward first).");
        }

        if (rowsPerExample <= 0 || Rows % rowsPerExample != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(rowsPerExample), $"LinearCapture '{Weight.Name}': {Rows} rows do not split into examples of {rowsPerExample}.");
        }

        int examples = Rows / rowsPerExample;
        if ((uint)example >= (uint)examples)
        {
            throw new ArgumentOutOfRangeException(nameof(example), $"LinearCapture '{Weight.Name}': example {example} out of range [0, {examples}).");
        }

        if (weightGrad.Length != Out * In || (Bias is not null && biasGrad.Length != Out))
        {
            throw new ArgumentException($"LinearCapture '{Weight.Name}': destinations must hold {Out * In} and {Out} values, got {weightGrad.Length} and {biasGrad.Length}.");
        }

        int r0 = example * rowsPerExample;
        var g = OutputGrads.AsSpan(r0 * Out, rowsPerExample * Out);
        var x = Activations.AsSpan(r0 * In, rowsPerExample * In);
        Blas.Gemm(true, false, Out, In, rowsPerExample, 1f, g, x, 0f, weightGrad);
        if (Bias is not null)
        {
            biasGrad.Clear();
            for (int r = 0; r < rowsPerExample; r++)
            {
                TensorPrimitives.Add(biasGrad, g.Slice(r * Out, Out), biasGrad);
            }
        }
    }
}
