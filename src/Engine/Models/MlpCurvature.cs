using System.Numerics.Tensors;

namespace Attribution.Engine.Models;

/// <summary>
/// The loss of one MLP on one shared batch at one parameter vector θ, prepared once (activations, ReLU masks, softmax
/// probabilities and back-propagated output errors of the batch), so that the exact Hessian-vector products of many
/// directions at once (every slot of an <see cref="MlpStack"/>) cost one R-operator pass each (Pearlmutter 1994:
/// forward tangents, then the backward pass differentiated along them). Per direction the dominant first layer costs
/// two GEMM-sized products with the batch, done for all slots together: the cost of one slot's gradient in
/// <see cref="MlpStack.LossGradient"/>. The loss is <see cref="MlpKernels.Output"/> with <see cref="ModelOutput.Loss"/>
/// (softmax cross-entropy) weighted by <c>weight</c> per batch row; hidden layers are ReLU (second derivative zero).
/// Tensors of one slot are stored row-major [rows, width], slots one after the other.
/// </summary>
public sealed class MlpCurvature
{
    private readonly MlpLayout _layout;
    private readonly float[][] _w; // θ's weights per layer, [out, in]
    private readonly float[][] _b;
    private readonly float[] _x; // [nb, d]
    private readonly int _nb;
    private readonly float[][] _acts; // _acts[l] = input of layer l ([nb, in_l]); _acts[0] = x
    private readonly float[] _probs; // softmax [nb, classes]
    private readonly float[][] _errors; // ∂(weighted batch loss)/∂z_l, [nb, out_l]
    private readonly float _weight;

    /// <summary>Prepares the batch (<paramref name="inputs"/> [rows, d], <paramref name="labels"/>) at <paramref name="theta"/>.</summary>
    public MlpCurvature(MlpLayout layout, ReadOnlySpan<float> theta, float[] inputs, int[] labels, float weight)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        int d = layout.Widths[0], layers = layout.LayerCount;
        if (theta.Length != layout.ParameterCount || inputs.Length < labels.Length * d)
        {
            throw new ArgumentException($"MlpCurvature: θ has {theta.Length} values ({layout.ParameterCount} expected); {labels.Length} rows need {labels.Length * d} input values, got {inputs.Length}.");
        }

        _layout = layout;
        _weight = weight;
        _nb = labels.Length;
        _x = inputs;
        _w = new float[layers][];
        _b = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            _w[l] = layout.Weight(theta, l).ToArray();
            _b[l] = layout.Bias(theta, l).ToArray();
        }

        _acts = new float[layers][];
        _errors = new float[layers][];
        var z = Forward(inputs, _nb, _acts);
        int classes = layout.Widths[^1];
        _probs = new float[_nb * classes];
        var dz = new float[_nb * classes];
        for (int n = 0; n < _nb; n++)
        {
            MlpKernels.Output(ModelOutput.Loss, z.AsSpan(n * classes, classes), labels[n], weight, dz.AsSpan(n * classes, classes));
            Softmax(z.AsSpan(n * classes, classes), _probs.AsSpan(n * classes, classes));
        }

        Backward(dz, _nb, _acts, _errors);
    }

    /// <summary>Rows in the batch.</summary>
    public int BatchSize => _nb;

    /// <summary>
    /// <c>product[s] = H·direction[s]</c> for every slot, H the Hessian of the weighted batch loss at θ (no regulariser).
    /// </summary>
    public void Multiply(MlpStack direction, MlpStack product)
    {
        ArgumentNullException.ThrowIfNull(direction);
        ArgumentNullException.ThrowIfNull(product);
        if (direction.Slots != product.Slots || direction.Layout.ParameterCount != _layout.ParameterCount || product.Layout.ParameterCount != _layout.ParameterCount)
        {
            throw new ArgumentException($"Multiply: {direction.Slots} directions into {product.Slots} products, for parameters of {string.Join('-', _layout.Widths)}.");
        }

        int slots = direction.Slots, nb = _nb, layers = _layout.LayerCount, d = _layout.Widths[0], h1 = _layout.Out(0);
        if (slots == 0)
        {
            return;
        }

        // Work buffers (one set per thread, reused: a block of 100 slots needs ~25 MB per call, 50 calls per block).
        // Buffer 0: layer-0 products in [slots·h1, nb] order; 1 + l: the tangent ż_l (ȧ_l once masked), rows
        // (slot, n); 1 + layers: ė at the output; 2 + layers and 3 + layers: ė of the hidden layers, alternating.
        var t0 = Scratch(0, (long)slots * h1 * nb);
        Blas.Gemm(false, true, slots * h1, nb, d, 1f, direction.W[0], _x, 0f, t0); // [slots·h1, nb]
        var zdot = Scratch(1, (long)slots * nb * h1);
        for (int s = 0; s < slots; s++)
        {
            Transpose(t0.Slice(s * h1 * nb, h1 * nb), h1, nb, zdot.Slice(s * nb * h1, nb * h1));
        }

        AddBiasAndMask(zdot, slots, h1, direction.B[0], layers > 1 ? _acts[1] : null);
        var tangents = new float[layers][]; // tangents[l] = ȧ of layer l's input for l ≥ 1 (a scratch buffer)
        for (int l = 1; l < layers; l++)
        {
            tangents[l] = _scratch![l];
            int inW = _layout.In(l), outW = _layout.Out(l);
            var next = Scratch(1 + l, (long)slots * nb * outW);
            Blas.Gemm(false, true, slots * nb, outW, inW, 1f, zdot, _w[l], 0f, next); // W_l ȧ
            for (int s = 0; s < slots; s++)
            {
                // + V_l a_{l−1} (the base activations, shared)
                Blas.Gemm(false, true, nb, outW, inW, 1f, _acts[l], direction.W[l].AsSpan(s * outW * inW, outW * inW), 1f, next.Slice(s * nb * outW, nb * outW));
            }

            AddBiasAndMask(next, slots, outW, direction.B[l], l < layers - 1 ? _acts[l + 1] : null);
            zdot = next;
        }

        // Output: ė = weight · (diag(p) − p pᵀ) ż per row.
        int classes = _layout.Widths[^1];
        var edot = Scratch(1 + layers, zdot.Length);
        for (int s = 0; s < slots; s++)
        {
            for (int n = 0; n < nb; n++)
            {
                var p = _probs.AsSpan(n * classes, classes);
                var zr = zdot.Slice((s * nb + n) * classes, classes);
                var er = edot.Slice((s * nb + n) * classes, classes);
                float dot = TensorPrimitives.Dot(p, zr);
                TensorPrimitives.Multiply(p, zr, er);
                TensorPrimitives.MultiplyAdd(p, -dot, er, er);
                TensorPrimitives.Multiply(er, _weight, er);
            }
        }

        // Backward, differentiated: ∂(H v)/∂W_l = ė_l a_{l−1}ᵀ + e_l ȧ_{l−1}ᵀ; ė_{l−1} = mask ⊙ (W_lᵀ ė_l + V_lᵀ e_l).
        for (int l = layers - 1; l >= 1; l--)
        {
            int inW = _layout.In(l), outW = _layout.Out(l);
            var a = _acts[l];
            var adot = tangents[l].AsSpan(0, slots * nb * inW);
            for (int s = 0; s < slots; s++)
            {
                var gw = product.W[l].AsSpan(s * outW * inW, outW * inW);
                var es = edot.Slice(s * nb * outW, nb * outW);
                Blas.Gemm(true, false, outW, inW, nb, 1f, es, a, 0f, gw);
                Blas.Gemm(true, false, outW, inW, nb, 1f, _errors[l], adot.Slice(s * nb * inW, nb * inW), 1f, gw);
                ColumnSums(es, nb, outW, product.B[l].AsSpan(s * outW, outW));
            }

            var prev = Scratch(2 + layers + (l % 2), (long)slots * nb * inW);
            Blas.Gemm(false, false, slots * nb, inW, outW, 1f, edot, _w[l], 0f, prev);
            for (int s = 0; s < slots; s++)
            {
                Blas.Gemm(false, false, nb, inW, outW, 1f, _errors[l], direction.W[l].AsSpan(s * outW * inW, outW * inW), 1f, prev.Slice(s * nb * inW, nb * inW));
            }

            Mask(prev, slots, inW, a);
            edot = prev;
        }

        // First layer (ȧ of the input is 0): ∂(H v)/∂W_0 = ė_0 xᵀ for every slot in one GEMM.
        var e0 = Scratch(0, (long)slots * h1 * nb);
        for (int s = 0; s < slots; s++)
        {
            var es = edot.Slice(s * nb * h1, nb * h1);
            Transpose(es, nb, h1, e0.Slice(s * h1 * nb, h1 * nb));
            ColumnSums(es, nb, h1, product.B[0].AsSpan(s * h1, h1));
        }

        Blas.Gemm(false, false, slots * h1, d, nb, 1f, e0, _x, 0f, product.W[0]);
    }

    [ThreadStatic]
    private static float[][]? _scratch;

    // This thread's work buffer number index, at least length floats (grown, never shrunk).
    private static Span<float> Scratch(int index, long length)
    {
        var scratch = _scratch ??= new float[8][];
        if (index >= scratch.Length)
        {
            Array.Resize(ref scratch, index + 1);
            _scratch = scratch;
        }

        if (scratch[index] is null || scratch[index].Length < length)
        {
            scratch[index] = GC.AllocateUninitializedArray<float>(checked((int)length));
        }

        return scratch[index].AsSpan(0, (int)length);
    }

    /// <summary>
    /// Adds <c>weight·∇ℓ_j(θ)</c>, the loss gradient of row j of <paramref name="inputs"/>, to slot j of
    /// <paramref name="gradient"/> for every row.
    /// </summary>
    public void AddRowGradients(float[] inputs, int[] labels, float weight, MlpStack gradient)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(gradient);
        int rows = labels.Length, d = _layout.Widths[0], layers = _layout.LayerCount, classes = _layout.Widths[^1];
        if (inputs.Length < rows * d || rows != gradient.Slots)
        {
            throw new ArgumentException($"AddRowGradients: {rows} rows of width {d} ({inputs.Length} values) for {gradient.Slots} slots (one row per slot).");
        }

        var acts = new float[layers][];
        var errors = new float[layers][];
        var z = Forward(inputs, rows, acts);
        var dz = new float[rows * classes];
        for (int n = 0; n < rows; n++)
        {
            MlpKernels.Output(ModelOutput.Loss, z.AsSpan(n * classes, classes), labels[n], weight, dz.AsSpan(n * classes, classes));
        }

        Backward(dz, rows, acts, errors);
        for (int n = 0; n < rows; n++)
        {
            int s = n;
            for (int l = 0; l < layers; l++)
            {
                int inW = _layout.In(l), outW = _layout.Out(l);
                var a = acts[l].AsSpan(n * inW, inW);
                var e = errors[l].AsSpan(n * outW, outW);
                var gw = gradient.W[l].AsSpan(s * outW * inW, outW * inW);
                for (int o = 0; o < outW; o++)
                {
                    if (e[o] != 0f)
                    {
                        var row = gw.Slice(o * inW, inW);
                        TensorPrimitives.MultiplyAdd(a, e[o], row, row);
                    }
                }

                var gb = gradient.B[l].AsSpan(s * outW, outW);
                TensorPrimitives.Add(gb, e, gb);
            }
        }
    }

    // Forward pass at θ of rows [rows, d]: fills acts[l] (input of layer l, acts[0] = inputs) and returns the logits.
    private float[] Forward(float[] inputs, int rows, float[][] acts)
    {
        int layers = _layout.LayerCount;
        float[] current = inputs;
        for (int l = 0; l < layers; l++)
        {
            acts[l] = current;
            int inW = _layout.In(l), outW = _layout.Out(l);
            var z = new float[rows * outW];
            Blas.Gemm(false, true, rows, outW, inW, 1f, current, _w[l], 0f, z);
            for (int n = 0; n < rows; n++)
            {
                var row = z.AsSpan(n * outW, outW);
                TensorPrimitives.Add(row, _b[l], row);
                if (l < layers - 1)
                {
                    TensorPrimitives.Max(row, 0f, row);
                }
            }

            current = z;
        }

        return current;
    }

    // Back-propagates output errors dz [rows, classes] to every layer's pre-activation errors.
    private void Backward(float[] dz, int rows, float[][] acts, float[][] errors)
    {
        int layers = _layout.LayerCount;
        errors[layers - 1] = dz;
        for (int l = layers - 1; l >= 1; l--)
        {
            int inW = _layout.In(l), outW = _layout.Out(l);
            var prev = new float[rows * inW];
            Blas.Gemm(false, false, rows, inW, outW, 1f, errors[l], _w[l], 0f, prev);
            var a = acts[l];
            for (int i = 0; i < prev.Length; i++)
            {
                if (a[i] <= 0f)
                {
                    prev[i] = 0f;
                }
            }

            errors[l - 1] = prev;
        }
    }

    // Adds each slot's bias tangent to its rows and, for a hidden layer, zeroes entries whose base activation is 0.
    private void AddBiasAndMask(Span<float> t, int slots, int width, float[] bias, float[]? activation)
    {
        for (int s = 0; s < slots; s++)
        {
            var bs = bias.AsSpan(s * width, width);
            for (int n = 0; n < _nb; n++)
            {
                var row = t.Slice((s * _nb + n) * width, width);
                TensorPrimitives.Add(row, bs, row);
            }
        }

        if (activation is not null)
        {
            Mask(t, slots, width, activation);
        }
    }

    // t[s, n, i] = 0 where the base activation a[n, i] is 0 (ReLU off).
    private void Mask(Span<float> t, int slots, int width, float[] activation)
    {
        int block = _nb * width;
        for (int s = 0; s < slots; s++)
        {
            var ts = t.Slice(s * block, block);
            for (int i = 0; i < block; i++)
            {
                if (activation[i] <= 0f)
                {
                    ts[i] = 0f;
                }
            }
        }
    }

    private static void Softmax(ReadOnlySpan<float> z, Span<float> p)
    {
        float max = TensorPrimitives.Max(z);
        double sum = 0;
        for (int j = 0; j < z.Length; j++)
        {
            sum += Math.Exp(z[j] - max);
        }

        for (int j = 0; j < z.Length; j++)
        {
            p[j] = (float)(Math.Exp(z[j] - max) / sum);
        }
    }

    private static void Transpose(ReadOnlySpan<float> source, int rows, int cols, Span<float> destination)
    {
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                destination[c * rows + r] = source[r * cols + c];
            }
        }
    }

    private static void ColumnSums(ReadOnlySpan<float> m, int rows, int cols, Span<float> destination)
    {
        destination.Clear();
        for (int r = 0; r < rows; r++)
        {
            TensorPrimitives.Add(destination, m.Slice(r * cols, cols), destination);
        }
    }
}
