using System.Numerics.Tensors;
using Attribution.Attribution.Kernels;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Per-example gradients of an MLP kept in factored form: for layer l, example i's weight gradient is the outer product
/// <c>δ_l[i] ⊗ a_l[i]</c> and its bias gradient is <c>δ_l[i]</c>. Storing δ and a costs Σ(in + out) floats per example
/// instead of p, and inner products with other factored gradients are two GEMMs per layer.
/// </summary>
public sealed class GradientFactors
{
    private GradientFactors(MlpLayout layout, int rows, float[][] acts, float[][] deltas, float[] values)
    {
        Layout = layout;
        Rows = rows;
        Activations = acts;
        Deltas = deltas;
        Values = values;
    }

    /// <summary>The layout.</summary>
    public MlpLayout Layout { get; }

    /// <summary>Number of examples.</summary>
    public int Rows { get; }

    /// <summary>Layer inputs per layer, [rows, in_l].</summary>
    public float[][] Activations { get; }

    /// <summary>∂f/∂z_l per layer, [rows, out_l].</summary>
    public float[][] Deltas { get; }

    /// <summary>The output values (margin or loss) per example.</summary>
    public float[] Values { get; }

    /// <summary>Bytes held.</summary>
    public long Bytes => (Activations.Sum(a => (long)a.Length) + Deltas.Sum(d => (long)d.Length) + Values.Length) * sizeof(float);

    /// <summary>Factored per-example gradients of <paramref name="kind"/> at θ for every row of x.</summary>
    public static GradientFactors Compute(OutputKind kind, MlpLayout layout, ReadOnlySpan<float> theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels)
    {
        ArgumentNullException.ThrowIfNull(layout);
        int rows = labels.Length, classes = layout.Widths[^1];
        var cache = MlpMath.Forward(layout, theta, x, rows);
        var values = new float[rows];
        var dz = new float[rows * classes];
        MlpMath.Output(kind, cache.Logits, labels, classes, values, dz);
        var deltas = MlpMath.Backward(layout, theta, cache, dz);
        return new GradientFactors(layout, rows, cache.Inputs, deltas, values);
    }

    /// <summary><c>scores[q, i] += alpha · ⟨∇f_q, ∇f_i⟩</c> for queries q of <paramref name="queries"/> and rows i of this.</summary>
    public void AddInnerProducts(GradientFactors queries, float alpha, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(queries);
        int q = queries.Rows, n = Rows;
        if (scores.Length < (long)q * n)
        {
            throw new ArgumentException($"AddInnerProducts: {scores.Length} scores for {q}×{n}.", nameof(scores));
        }

        var aa = new float[q * n];
        var dd = new float[q * n];
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int inW = Layout.In(l), outW = Layout.Out(l);
            Blas.Gemm(false, true, q, n, inW, 1f, queries.Activations[l], Activations[l], 0f, aa);
            Blas.Gemm(false, true, q, n, outW, 1f, queries.Deltas[l], Deltas[l], 0f, dd);
            // ⟨δ_q a_qᵀ, δ_i a_iᵀ⟩ + ⟨δ_q, δ_i⟩ = (δ_q·δ_i)(a_q·a_i + 1).
            TensorPrimitives.Add(aa, 1f, aa);
            TensorPrimitives.Multiply(aa, dd, aa);
            TensorPrimitives.MultiplyAdd(aa, alpha, scores[..(q * n)], scores[..(q * n)]);
        }
    }

    /// <summary><c>destination[i] = ⟨v, ∇f_i⟩</c> for a dense flat vector v.</summary>
    public void DotDense(ReadOnlySpan<float> v, Span<float> destination)
    {
        destination[..Rows].Clear();
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int inW = Layout.In(l), outW = Layout.Out(l);
            var t = new float[Rows * outW];
            Blas.Gemm(false, true, Rows, outW, inW, 1f, Activations[l], Layout.Weight(v, l), 0f, t);
            MlpMath.AddBiasRows(t, Layout.Bias(v, l), Rows, relu: false);
            for (int i = 0; i < Rows; i++)
            {
                destination[i] += TensorPrimitives.Dot(t.AsSpan(i * outW, outW), Deltas[l].AsSpan(i * outW, outW));
            }
        }
    }

    /// <summary>Materialises rows [start, start + count) as dense per-example gradients [count, p].</summary>
    public void Dense(int start, int count, Span<float> destination)
    {
        int p = Layout.ParameterCount;
        for (int i = 0; i < count; i++)
        {
            var g = destination.Slice(i * p, p);
            for (int l = 0; l < Layout.LayerCount; l++)
            {
                int inW = Layout.In(l), outW = Layout.Out(l);
                var a = Activations[l].AsSpan((start + i) * inW, inW);
                var d = Deltas[l].AsSpan((start + i) * outW, outW);
                var w = Layout.Weight(g, l);
                for (int o = 0; o < outW; o++)
                {
                    TensorPrimitives.Multiply(a, d[o], w.Slice(o * inW, inW));
                }

                d.CopyTo(Layout.Bias(g, l));
            }
        }
    }
}
