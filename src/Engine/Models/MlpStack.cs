using System.Numerics.Tensors;
namespace Attribution.Engine.Models;

/// <summary>
/// Many parameter vectors of one MLP layout held at once ("slots"), stored layer-major: <c>W[l]</c> is
/// [slots, out, in] and <c>B[l]</c> is [slots, out]. Because every slot's first-layer weights are contiguous, the
/// first layer of all slots (92% of the FLOPs of a 784-128-64-10 MLP) is one large GEMM against a shared mini-batch,
/// in both the forward and the backward pass. The remaining layers run per slot with activations stored transposed
/// ([width, columns]) so every product is a plain row-major GEMM. The loss is <see cref="MlpKernels.Output"/>, the
/// model's own; tests hold every slot's gradient to <see cref="Mlp.OutputGradient"/>.
/// </summary>
public sealed class MlpStack
{
    /// <summary>Allocates zeroed parameters for <paramref name="slots"/> slots.</summary>
    public MlpStack(MlpLayout layout, int slots)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfNegative(slots);
        Layout = layout;
        Slots = slots;
        W = new float[layout.LayerCount][];
        B = new float[layout.LayerCount][];
        for (int l = 0; l < layout.LayerCount; l++)
        {
            W[l] = new float[(long)slots * layout.In(l) * layout.Out(l)];
            B[l] = new float[slots * layout.Out(l)];
        }
    }

    /// <summary>The shared layout.</summary>
    public MlpLayout Layout { get; }

    /// <summary>Number of parameter vectors.</summary>
    public int Slots { get; }

    /// <summary>Weights per layer, [slots, out, in].</summary>
    public float[][] W { get; }

    /// <summary>Biases per layer, [slots, out].</summary>
    public float[][] B { get; }

    /// <summary>Copies a flat parameter vector into a slot.</summary>
    public void SetSlot(int slot, ReadOnlySpan<float> flat)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)slot, (uint)Slots, nameof(slot));
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int wc = Layout.In(l) * Layout.Out(l), o = Layout.Out(l);
            Layout.Weight(flat, l).CopyTo(W[l].AsSpan(slot * wc, wc));
            Layout.Bias(flat, l).CopyTo(B[l].AsSpan(slot * o, o));
        }
    }

    /// <summary>Copies a slot out as a flat parameter vector.</summary>
    public void GetSlot(int slot, Span<float> flat)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)slot, (uint)Slots, nameof(slot));
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int wc = Layout.In(l) * Layout.Out(l), o = Layout.Out(l);
            W[l].AsSpan(slot * wc, wc).CopyTo(Layout.Weight(flat, l));
            B[l].AsSpan(slot * o, o).CopyTo(Layout.Bias(flat, l));
        }
    }

    /// <summary>Applies <c>this += alpha·other</c> to every parameter of every slot.</summary>
    public void AddScaled(MlpStack other, float alpha)
    {
        ArgumentNullException.ThrowIfNull(other);
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            TensorPrimitives.MultiplyAdd(other.W[l], alpha, W[l], W[l]);
            TensorPrimitives.MultiplyAdd(other.B[l], alpha, B[l], B[l]);
        }
    }

    /// <summary>
    /// Loss gradient of every slot, written into <paramref name="gradient"/> (same shape):
    /// <c>∇_θ [ sharedWeight·Σ_{i∈batch} ℓ_i(θ_s) + extraWeight[s]·Σ_{j∈extra(s)} ℓ_j(θ_s) ]</c>.
    /// The batch (<paramref name="batchInputs"/> [nb, d]) is shared by all slots; slot s additionally sees its own
    /// extra rows (<paramref name="extraInputs"/>[s], e.g. the up-weighted training example) with its own weight.
    /// </summary>
    public void LossGradient(ReadOnlySpan<float> batchInputs, ReadOnlySpan<int> batchLabels, float sharedWeight,
        IReadOnlyList<float[]> extraInputs, IReadOnlyList<int[]> extraLabels, ReadOnlySpan<float> extraWeight, MlpStack gradient)
    {
        ArgumentNullException.ThrowIfNull(extraInputs);
        ArgumentNullException.ThrowIfNull(extraLabels);
        ArgumentNullException.ThrowIfNull(gradient);
        int nb = batchLabels.Length, d = Layout.Widths[0], layers = Layout.LayerCount, h1 = Layout.Out(0), classes = Layout.Widths[^1];
        if (batchInputs.Length < nb * d || extraInputs.Count != Slots || extraLabels.Count != Slots || extraWeight.Length != Slots
            || gradient.Slots != Slots || gradient.Layout.ParameterCount != Layout.ParameterCount)
        {
            throw new ArgumentException($"LossGradient: {nb} batch rows of width {d}, {extraInputs.Count}/{extraLabels.Count}/{extraWeight.Length} extra sets and a gradient of {gradient.Slots} slots for {Slots} slots.");
        }

        // Layer 0 of every slot for the shared batch in one GEMM: [slots·h1, d] × [nb, d]ᵀ → [slots·h1, nb].
        var z0 = new float[(long)Slots * h1 * nb];
        Blas.Gemm(false, true, Slots * h1, nb, d, 1f, W[0], batchInputs, 0f, z0);
        var delta0All = new float[z0.Length];
        var acts = new float[layers][];
        var deltas = new float[layers][];
        for (int s = 0; s < Slots; s++)
        {
            var xe = extraInputs[s];
            var ye = extraLabels[s];
            int ne = ye.Length, cols = nb + ne;
            if (xe.Length < ne * d)
            {
                throw new ArgumentException($"LossGradient: slot {s} has {ne} extra labels but {xe.Length} extra input values.");
            }

            // Transposed activations: acts[l] is the input of layer l for l ≥ 1, [in_l, cols]; acts[0] is unused.
            var a1 = new float[h1 * cols];
            var w0 = W[0].AsSpan(s * h1 * d, h1 * d);
            var extraZ = ne > 0 ? new float[h1 * ne] : [];
            if (ne > 0)
            {
                Blas.Gemm(false, true, h1, ne, d, 1f, w0, xe, 0f, extraZ);
            }

            var b0 = B[0].AsSpan(s * h1, h1);
            for (int o = 0; o < h1; o++)
            {
                var row = a1.AsSpan(o * cols, cols);
                z0.AsSpan((s * h1 + o) * nb, nb).CopyTo(row);
                extraZ.AsSpan(o * ne, ne).CopyTo(row[nb..]);
                TensorPrimitives.Add(row, b0[o], row);
                if (layers > 1)
                {
                    TensorPrimitives.Max(row, 0f, row);
                }
            }

            float[] current = a1;
            for (int l = 1; l < layers; l++)
            {
                acts[l] = current;
                int inW = Layout.In(l), outW = Layout.Out(l);
                var z = new float[outW * cols];
                Blas.Gemm(false, false, outW, cols, inW, 1f, W[l].AsSpan(s * outW * inW, outW * inW), current, 0f, z);
                var bl = B[l].AsSpan(s * outW, outW);
                for (int o = 0; o < outW; o++)
                {
                    var row = z.AsSpan(o * cols, cols);
                    TensorPrimitives.Add(row, bl[o], row);
                    if (l < layers - 1)
                    {
                        TensorPrimitives.Max(row, 0f, row);
                    }
                }

                current = z;
            }

            // Output gradient (softmax − onehot) per column, weighted.
            var dz = new float[classes * cols];
            var col = new float[classes];
            var dcol = new float[classes];
            for (int c = 0; c < cols; c++)
            {
                for (int k = 0; k < classes; k++)
                {
                    col[k] = current[k * cols + c];
                }

                int label = c < nb ? batchLabels[c] : ye[c - nb];
                MlpKernels.Output(ModelOutput.Loss, col, label, c < nb ? sharedWeight : extraWeight[s], dcol);
                for (int k = 0; k < classes; k++)
                {
                    dz[k * cols + c] = dcol[k];
                }
            }

            deltas[layers - 1] = dz;
            for (int l = layers - 1; l >= 1; l--)
            {
                int inW = Layout.In(l), outW = Layout.Out(l);
                Blas.Gemm(false, true, outW, inW, cols, 1f, deltas[l], acts[l], 0f, gradient.W[l].AsSpan(s * outW * inW, outW * inW));
                RowSums(deltas[l], outW, cols, gradient.B[l].AsSpan(s * outW, outW));
                var dprev = new float[inW * cols];
                Blas.Gemm(true, false, inW, cols, outW, 1f, W[l].AsSpan(s * outW * inW, outW * inW), deltas[l], 0f, dprev);
                var a = acts[l];
                for (int i = 0; i < dprev.Length; i++)
                {
                    if (a[i] <= 0f)
                    {
                        dprev[i] = 0f;
                    }
                }

                deltas[l - 1] = dprev;
            }

            var d0 = deltas[0];
            RowSums(d0, h1, cols, gradient.B[0].AsSpan(s * h1, h1));
            var gw0 = gradient.W[0].AsSpan(s * h1 * d, h1 * d);
            if (ne > 0)
            {
                var de = new float[h1 * ne];
                for (int o = 0; o < h1; o++)
                {
                    d0.AsSpan(o * cols + nb, ne).CopyTo(de.AsSpan(o * ne, ne));
                }

                Blas.Gemm(false, false, h1, d, ne, 1f, de, xe, 0f, gw0);
            }
            else
            {
                gw0.Clear();
            }

            for (int o = 0; o < h1; o++)
            {
                d0.AsSpan(o * cols, nb).CopyTo(delta0All.AsSpan((s * h1 + o) * nb, nb));
            }
        }

        // Layer-0 weight gradient of every slot for the shared batch in one GEMM: [slots·h1, nb] × [nb, d].
        Blas.Gemm(false, false, Slots * h1, d, nb, 1f, delta0All, batchInputs, 1f, gradient.W[0]);
    }

    /// <summary>
    /// Adds the regularisers of a simulated objective to <paramref name="gradient"/> for every slot:
    /// <c>g += decay·θ_s + damping·(θ_s − anchor)</c> (weight decay and a proximal pull toward <paramref name="anchor"/>).
    /// </summary>
    public void AddRegularisers(MlpStack gradient, float decay, float damping, ReadOnlySpan<float> anchor)
    {
        ArgumentNullException.ThrowIfNull(gradient);
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            AddRegularisers(W[l], gradient.W[l], Layout.Weight(anchor, l), decay, damping);
            AddRegularisers(B[l], gradient.B[l], Layout.Bias(anchor, l), decay, damping);
        }
    }

    private void AddRegularisers(float[] theta, float[] grad, ReadOnlySpan<float> anchor, float decay, float damping)
    {
        if (decay + damping != 0f)
        {
            TensorPrimitives.MultiplyAdd(theta, decay + damping, grad, grad);
        }

        if (damping != 0f)
        {
            int size = anchor.Length;
            for (int s = 0; s < Slots; s++)
            {
                var g = grad.AsSpan(s * size, size);
                TensorPrimitives.MultiplyAdd(anchor, -damping, g, g);
            }
        }
    }

    private static void RowSums(ReadOnlySpan<float> m, int rows, int cols, Span<float> destination)
    {
        for (int r = 0; r < rows; r++)
        {
            destination[r] = TensorPrimitives.Sum(m.Slice(r * cols, cols));
        }
    }
}
