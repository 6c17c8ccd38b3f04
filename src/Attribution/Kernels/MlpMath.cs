using System.Diagnostics.CodeAnalysis;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Kernels;

/// <summary>What a per-row output value measures.</summary>
public enum OutputKind
{
    /// <summary>Margin <c>z_y − logsumexp(z_{c≠y})</c> (TRAK's measurement; the product's query measurement).</summary>
    Margin,

    /// <summary>Cross-entropy loss <c>logsumexp(z) − z_y</c> (the training objective).</summary>
    Loss,
}

/// <summary>
/// Activations of one forward pass of a batch through one parameter vector: <c>Inputs[l]</c> is the input of layer l
/// ([rows, in_l], post-ReLU for l ≥ 1, <c>Inputs[0]</c> = x) and <see cref="Logits"/> is [rows, classes].
/// </summary>
public sealed class ForwardCache
{
    internal ForwardCache(float[][] inputs, float[] logits, int rows)
    {
        Inputs = inputs;
        Logits = logits;
        Rows = rows;
    }

    /// <summary>Input of every layer, row-major.</summary>
    public float[][] Inputs { get; }

    /// <summary>Output logits [rows, classes].</summary>
    public float[] Logits { get; }

    /// <summary>Number of rows.</summary>
    public int Rows { get; }
}

/// <summary>
/// Batched ReLU-MLP kernels over the shared flat <see cref="MlpLayout"/>: forward, margin / loss and their logit
/// gradients, backward deltas, weighted and per-example parameter gradients, and forward-mode JVPs. Every matrix
/// product goes through <see cref="Blas.Gemm"/>.
/// </summary>
public static class MlpMath
{
    /// <summary>Forward pass of <paramref name="rows"/> inputs x [rows, d] through θ.</summary>
    public static ForwardCache Forward(MlpLayout layout, ReadOnlySpan<float> theta, ReadOnlySpan<float> x, int rows)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (theta.Length != layout.ParameterCount || x.Length < (long)rows * layout.Widths[0])
        {
            ThrowShapes(layout, theta.Length, x.Length, rows);
        }

        int layers = layout.LayerCount;
        var inputs = new float[layers][];
        inputs[0] = x[..(rows * layout.Widths[0])].ToArray();
        float[] z = [];
        for (int l = 0; l < layers; l++)
        {
            int inW = layout.In(l), outW = layout.Out(l);
            z = new float[rows * outW];
            Blas.Gemm(false, true, rows, outW, inW, 1f, inputs[l], layout.Weight(theta, l), 0f, z);
            AddBiasRows(z, layout.Bias(theta, l), rows, l < layers - 1);
            if (l < layers - 1)
            {
                inputs[l + 1] = z;
            }
        }

        return new ForwardCache(inputs, z, rows);
    }

    /// <summary>
    /// Per-row output values (margin or loss of <paramref name="labels"/>) and their gradients with respect to the logits.
    /// Log-sum-exp subtracts the maximum; accumulation is in double.
    /// </summary>
    public static void Output(OutputKind kind, ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int classes,
        Span<float> values, Span<float> dlogits)
    {
        int rows = labels.Length;
        if (logits.Length < rows * classes || values.Length < rows || dlogits.Length < rows * classes || classes < 2)
        {
            throw new ArgumentException($"Output: {rows} rows of {classes} classes need logits/dlogits of {rows * classes} and values of {rows}.");
        }

        for (int i = 0; i < rows; i++)
        {
            var z = logits.Slice(i * classes, classes);
            var dz = dlogits.Slice(i * classes, classes);
            int y = labels[i];
            if ((uint)y >= (uint)classes)
            {
                throw new ArgumentOutOfRangeException(nameof(labels), $"label {y} at row {i} is outside 0..{classes - 1}.");
            }

            if (kind == OutputKind.Loss)
            {
                double max = double.NegativeInfinity;
                for (int c = 0; c < classes; c++)
                {
                    max = Math.Max(max, z[c]);
                }

                double sum = 0;
                for (int c = 0; c < classes; c++)
                {
                    sum += Math.Exp(z[c] - max);
                }

                double lse = max + Math.Log(sum);
                values[i] = (float)(lse - z[y]);
                for (int c = 0; c < classes; c++)
                {
                    dz[c] = (float)(Math.Exp(z[c] - lse) - (c == y ? 1.0 : 0.0));
                }
            }
            else
            {
                double max = double.NegativeInfinity;
                for (int c = 0; c < classes; c++)
                {
                    if (c != y)
                    {
                        max = Math.Max(max, z[c]);
                    }
                }

                double sum = 0;
                for (int c = 0; c < classes; c++)
                {
                    if (c != y)
                    {
                        sum += Math.Exp(z[c] - max);
                    }
                }

                double lse = max + Math.Log(sum);
                values[i] = (float)(z[y] - lse);
                for (int c = 0; c < classes; c++)
                {
                    dz[c] = c == y ? 1f : (float)-Math.Exp(z[c] - lse);
                }
            }
        }
    }

    /// <summary>
    /// Backward pass: given ∂f/∂logits per row, returns <c>deltas[l] = ∂f/∂z_l</c> ([rows, out_l]) for every layer,
    /// where z_l is the pre-activation output of layer l.
    /// </summary>
    public static float[][] Backward(MlpLayout layout, ReadOnlySpan<float> theta, ForwardCache cache, ReadOnlySpan<float> dlogits)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(cache);
        int rows = cache.Rows, layers = layout.LayerCount;
        var deltas = new float[layers][];
        deltas[layers - 1] = dlogits[..(rows * layout.Out(layers - 1))].ToArray();
        for (int l = layers - 1; l >= 1; l--)
        {
            int inW = layout.In(l), outW = layout.Out(l);
            var d = new float[rows * inW];
            Blas.Gemm(false, false, rows, inW, outW, 1f, deltas[l], layout.Weight(theta, l), 0f, d);
            var a = cache.Inputs[l];
            for (int i = 0; i < d.Length; i++)
            {
                if (a[i] <= 0f)
                {
                    d[i] = 0f;
                }
            }

            deltas[l - 1] = d;
        }

        return deltas;
    }

    /// <summary>
    /// <c>grad = beta·grad + Σ_i w_i ∇f_i</c> over the cached rows (w = 1 when <paramref name="rowWeights"/> is empty).
    /// </summary>
    public static void WeightedGradient(MlpLayout layout, ForwardCache cache, float[][] deltas, ReadOnlySpan<float> rowWeights, float beta, Span<float> grad)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(deltas);
        int rows = cache.Rows;
        if (grad.Length != layout.ParameterCount || (!rowWeights.IsEmpty && rowWeights.Length != rows))
        {
            throw new ArgumentException($"WeightedGradient: gradient has {grad.Length} values (needs {layout.ParameterCount}); {rowWeights.Length} weights for {rows} rows.");
        }

        for (int l = 0; l < layout.LayerCount; l++)
        {
            int inW = layout.In(l), outW = layout.Out(l);
            float[] d = deltas[l];
            if (!rowWeights.IsEmpty)
            {
                d = (float[])d.Clone();
                for (int i = 0; i < rows; i++)
                {
                    System.Numerics.Tensors.TensorPrimitives.Multiply(d.AsSpan(i * outW, outW), rowWeights[i], d.AsSpan(i * outW, outW));
                }
            }

            Blas.Gemm(true, false, outW, inW, rows, 1f, d, cache.Inputs[l], beta, layout.Weight(grad, l));
            var gb = layout.Bias(grad, l);
            if (beta == 0f)
            {
                gb.Clear();
            }
            else if (beta != 1f)
            {
                System.Numerics.Tensors.TensorPrimitives.Multiply(gb, beta, gb);
            }

            for (int i = 0; i < rows; i++)
            {
                System.Numerics.Tensors.TensorPrimitives.Add(gb, d.AsSpan(i * outW, outW), gb);
            }
        }
    }

    /// <summary>Per-example gradients, row-major [rows, p]: row i is ∇f_i in the flat layout.</summary>
    public static void PerExampleGradients(MlpLayout layout, ForwardCache cache, float[][] deltas, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(deltas);
        int rows = cache.Rows, p = layout.ParameterCount;
        if (destination.Length < (long)rows * p)
        {
            throw new ArgumentException($"PerExampleGradients: destination has {destination.Length} values; {rows} rows need {(long)rows * p}.", nameof(destination));
        }

        for (int i = 0; i < rows; i++)
        {
            var g = destination.Slice(i * p, p);
            for (int l = 0; l < layout.LayerCount; l++)
            {
                int inW = layout.In(l), outW = layout.Out(l);
                var d = deltas[l].AsSpan(i * outW, outW);
                var a = cache.Inputs[l].AsSpan(i * inW, inW);
                var w = layout.Weight(g, l);
                for (int o = 0; o < outW; o++)
                {
                    System.Numerics.Tensors.TensorPrimitives.Multiply(a, d[o], w.Slice(o * inW, inW));
                }

                d.CopyTo(layout.Bias(g, l));
            }
        }
    }

    /// <summary>
    /// Forward-mode JVP: the directional derivative of the logits along <paramref name="tangent"/> at θ, [rows, classes].
    /// </summary>
    public static float[] Jvp(MlpLayout layout, ReadOnlySpan<float> theta, ReadOnlySpan<float> tangent, ForwardCache cache)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(cache);
        int rows = cache.Rows;
        float[] t = [];
        for (int l = 0; l < layout.LayerCount; l++)
        {
            int inW = layout.In(l), outW = layout.Out(l);
            var zt = new float[rows * outW];
            if (l > 0)
            {
                Blas.Gemm(false, true, rows, outW, inW, 1f, t, layout.Weight(theta, l), 0f, zt);
            }

            Blas.Gemm(false, true, rows, outW, inW, 1f, cache.Inputs[l], layout.Weight(tangent, l), 1f, zt);
            AddBiasRows(zt, layout.Bias(tangent, l), rows, relu: false);
            if (l < layout.LayerCount - 1)
            {
                var a = cache.Inputs[l + 1];
                for (int i = 0; i < zt.Length; i++)
                {
                    if (a[i] <= 0f)
                    {
                        zt[i] = 0f;
                    }
                }
            }

            t = zt;
        }

        return t;
    }

    /// <summary>Per-row margin or loss at θ.</summary>
    public static float[] Values(OutputKind kind, MlpLayout layout, ReadOnlySpan<float> theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var cache = Forward(layout, theta, x, labels.Length);
        var values = new float[labels.Length];
        Output(kind, cache.Logits, labels, layout.Widths[^1], values, new float[cache.Logits.Length]);
        return values;
    }

    /// <summary>
    /// Gradient of the training objective <c>(1/|rows|) Σ ℓ_i + (weightDecay/2)‖θ‖²</c> over the given example indices,
    /// processed in chunks so memory stays bounded. Returns the objective value.
    /// </summary>
    public static double ObjectiveGradient(MlpLayout layout, ReadOnlySpan<float> theta, float[] inputs, int[] labels,
        ReadOnlySpan<int> indices, float weightDecay, Span<float> grad, int chunk = 512)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        int d = layout.Widths[0], classes = layout.Widths[^1], count = indices.Length;
        grad.Clear();
        double total = 0;
        var part = new float[grad.Length];
        for (int start = 0; start < count; start += chunk)
        {
            int rows = Math.Min(chunk, count - start);
            var x = new float[rows * d];
            var y = new int[rows];
            for (int i = 0; i < rows; i++)
            {
                int idx = indices[start + i];
                inputs.AsSpan(idx * d, d).CopyTo(x.AsSpan(i * d, d));
                y[i] = labels[idx];
            }

            var cache = Forward(layout, theta, x, rows);
            var values = new float[rows];
            var dz = new float[rows * classes];
            Output(OutputKind.Loss, cache.Logits, y, classes, values, dz);
            foreach (var v in values)
            {
                total += v;
            }

            var deltas = Backward(layout, theta, cache, dz);
            WeightedGradient(layout, cache, deltas, [], 0f, part);
            System.Numerics.Tensors.TensorPrimitives.Add(grad, part, grad);
        }

        float inv = count == 0 ? 0f : 1f / count;
        System.Numerics.Tensors.TensorPrimitives.Multiply(grad, inv, grad);
        if (weightDecay != 0f)
        {
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(theta, weightDecay, grad, grad);
        }

        double norm2 = System.Numerics.Tensors.TensorPrimitives.Dot(theta, theta);
        return total * inv + 0.5 * weightDecay * norm2;
    }

    internal static void AddBiasRows(Span<float> z, ReadOnlySpan<float> bias, int rows, bool relu)
    {
        int w = bias.Length;
        for (int i = 0; i < rows; i++)
        {
            var row = z.Slice(i * w, w);
            System.Numerics.Tensors.TensorPrimitives.Add(row, bias, row);
            if (relu)
            {
                System.Numerics.Tensors.TensorPrimitives.Max(row, 0f, row);
            }
        }
    }

    [DoesNotReturn]
    private static void ThrowShapes(MlpLayout layout, int theta, int x, int rows) =>
        throw new ArgumentException($"Forward: θ has {theta} values (layout needs {layout.ParameterCount}); x has {x} values ({rows} rows of {layout.Widths[0]} need {(long)rows * layout.Widths[0]}).");
}
