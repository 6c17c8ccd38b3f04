using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Attribution.Engine.Training;

namespace Attribution.Engine.Models;

/// <summary>Which scalar per example a gradient or tangent is taken of.</summary>
public enum MlpOutput
{
    /// <summary>Cross-entropy loss <c>logsumexp(z) − z_y</c>.</summary>
    Loss,

    /// <summary>Margin <c>z_y − logsumexp(z_j, j ≠ y)</c> (the attribution output).</summary>
    Margin,
}

/// <summary>
/// A fully connected ReLU classifier over <see cref="MlpLayout"/> (ReLU after every layer except the last), with a
/// hand-written batched forward and backward pass through <see cref="Blas.Gemm"/>. Inputs are row-major [batch, in]
/// floats; labels are class indices. Work buffers are allocated once per largest batch size seen and then reused, so
/// a training step allocates nothing. An instance is therefore not thread-safe: give each thread its own model
/// (<see cref="Clone"/>). Every result is a deterministic function of the parameters and the inputs.
/// </summary>
public sealed class Mlp
{
    private readonly Parameter[] _weights;
    private readonly Parameter[] _biases;
    private readonly Parameter[] _parameters;
    // _h[l] holds the output of layer l (post-ReLU for hidden layers, logits for the last), [capacity, Out(l)].
    private float[][] _h;
    // _d[l] holds the gradient (or tangent) at layer l's output, [capacity, Out(l)].
    private float[][] _d;
    private int _capacity;

    /// <summary>Creates a model with all parameters zero; see <see cref="InitializeDefault"/>.</summary>
    public Mlp(MlpLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        Layout = layout;
        int layers = layout.LayerCount;
        _weights = new Parameter[layers];
        _biases = new Parameter[layers];
        _parameters = new Parameter[2 * layers];
        for (int l = 0; l < layers; l++)
        {
            _weights[l] = new Parameter($"layers.{l}.weight", layout.Out(l), layout.In(l));
            _biases[l] = new Parameter($"layers.{l}.bias", layout.Out(l));
            _parameters[2 * l] = _weights[l];
            _parameters[2 * l + 1] = _biases[l];
        }

        _h = new float[layers][];
        _d = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            _h[l] = [];
            _d[l] = [];
        }
    }

    /// <summary>Creates a model with widths such as [784, 128, 64, 10] and PyTorch's default initialisation from <paramref name="seed"/>.</summary>
    public Mlp(IReadOnlyList<int> widths, ulong seed)
        : this(new MlpLayout(widths))
    {
        InitializeDefault(new Rng(seed));
    }

    /// <summary>The flat layout (shared with checkpoints and attribution).</summary>
    public MlpLayout Layout { get; }

    /// <summary>One parameter per tensor in <see cref="MlpLayout"/> order and names: W_0, b_0, W_1, b_1, ...</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>Number of classes (output width).</summary>
    public int Classes => Layout.Widths[^1];

    /// <summary>Input width.</summary>
    public int InputWidth => Layout.Widths[0];

    /// <summary>When set, every GEMM of every pass is timed and counted into it (for benchmarks).</summary>
    public GemmProfile? Profile { get; set; }

    /// <summary>
    /// PyTorch's <c>nn.Linear</c> default: weights from kaiming-uniform with a = √5, i.e. U(−1/√fan_in, 1/√fan_in),
    /// biases from U(−1/√fan_in, 1/√fan_in); drawn in layout order W_0, b_0, W_1, ... from <paramref name="rng"/>.
    /// </summary>
    public void InitializeDefault(Rng rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            float bound = 1f / MathF.Sqrt(Layout.In(l));
            rng.FillUniform(_weights[l].Data, -bound, bound);
            rng.FillUniform(_biases[l].Data, -bound, bound);
        }
    }

    /// <summary>Copies the parameters into <paramref name="flat"/> in <see cref="MlpLayout"/> order.</summary>
    public void CopyTo(Span<float> flat) => Gather(flat, static p => p.Data);

    /// <summary>Copies the gradients into <paramref name="flat"/> in <see cref="MlpLayout"/> order.</summary>
    public void CopyGradientTo(Span<float> flat) => Gather(flat, static p => p.Grad);

    private void Gather(Span<float> flat, Func<Parameter, float[]> pick)
    {
        CheckFlat(flat.Length, nameof(flat));
        int offset = 0;
        foreach (var p in _parameters)
        {
            pick(p).CopyTo(flat.Slice(offset, p.Count));
            offset += p.Count;
        }
    }

    /// <summary>Sets the parameters from <paramref name="flat"/> (<see cref="MlpLayout"/> order).</summary>
    public void LoadFrom(ReadOnlySpan<float> flat)
    {
        CheckFlat(flat.Length, nameof(flat));
        int offset = 0;
        foreach (var p in _parameters)
        {
            flat.Slice(offset, p.Count).CopyTo(p.Data);
            offset += p.Count;
        }
    }

    /// <summary>The parameters as a new flat vector.</summary>
    public float[] ToFlat()
    {
        var flat = new float[Layout.ParameterCount];
        CopyTo(flat);
        return flat;
    }

    /// <summary>An independent copy with the same parameters (no shared buffers).</summary>
    public Mlp Clone()
    {
        var copy = new Mlp(Layout);
        copy.LoadFrom(ToFlat());
        return copy;
    }

    /// <summary>Logits [batch, classes] for inputs [batch, in].</summary>
    public void Logits(ReadOnlySpan<float> inputs, int batch, Span<float> logits)
    {
        CheckInputs(inputs, batch);
        CheckOut(logits.Length, (long)batch * Classes, nameof(logits));
        Forward(inputs, batch);
        _h[^1].AsSpan(0, batch * Classes).CopyTo(logits);
    }

    /// <summary>Per-example cross-entropy losses; returns their mean (accumulated in double).</summary>
    public float PerExampleLosses(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, Span<float> losses)
    {
        CheckBatch(inputs, labels, batch);
        CheckOut(losses.Length, batch, nameof(losses));
        Forward(inputs, batch);
        return Outputs(batch, labels, MlpOutput.Loss, losses);
    }

    /// <summary>Per-example margins <c>z_y − logsumexp(z_j, j ≠ y)</c>.</summary>
    public void Margins(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, Span<float> margins)
    {
        CheckBatch(inputs, labels, batch);
        CheckOut(margins.Length, batch, nameof(margins));
        Forward(inputs, batch);
        Outputs(batch, labels, MlpOutput.Margin, margins);
    }

    /// <summary>Mean cross-entropy loss of the batch, forward only.</summary>
    public float Loss(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch)
    {
        CheckBatch(inputs, labels, batch);
        Forward(inputs, batch);
        return Outputs(batch, labels, MlpOutput.Loss, default);
    }

    /// <summary>Number of examples whose arg-max logit equals the label (first maximum wins ties).</summary>
    public int CountCorrect(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch)
    {
        CheckBatch(inputs, labels, batch);
        Forward(inputs, batch);
        int c = Classes, correct = 0;
        var logits = _h[^1];
        for (int i = 0; i < batch; i++)
        {
            var row = logits.AsSpan(i * c, c);
            int best = 0;
            for (int j = 1; j < c; j++)
            {
                if (row[j] > row[best])
                {
                    best = j;
                }
            }

            correct += best == labels[i] ? 1 : 0;
        }

        return correct;
    }

    /// <summary>
    /// Forward and backward for the mean cross-entropy loss of the batch. <b>Overwrites</b> every
    /// <see cref="Parameter.Grad"/> with the gradient (no accumulation, so no <c>ZeroGrad</c> is needed) and returns the
    /// loss. Allocates nothing once the workspace has grown to this batch size.
    /// </summary>
    public float LossAndBackward(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch)
    {
        CheckBatch(inputs, labels, batch);
        Forward(inputs, batch);
        float loss = OutputGradients(batch, labels, MlpOutput.Loss, 1f / batch, default);
        Backward(inputs, batch, perExample: null);
        return loss;
    }

    /// <summary>
    /// Per-example gradients of <paramref name="output"/> in factored form: for every layer the input activations
    /// A_l [batch, in] and the output gradients G_l [batch, out], so that example i's weight gradient is
    /// <c>G_l[i]ᵀ A_l[i]</c> and its bias gradient <c>G_l[i]</c>. No p-sized vector is formed; see
    /// <see cref="MlpPerExampleGradients.Materialize"/>. Parameter gradients are left untouched.
    /// </summary>
    public MlpPerExampleGradients PerExampleGradients(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, MlpOutput output = MlpOutput.Loss)
    {
        CheckBatch(inputs, labels, batch);
        var result = new MlpPerExampleGradients(Layout, batch);
        Forward(inputs, batch);
        OutputGradients(batch, labels, output, 1f, result.Values);
        Backward(inputs, batch, result);
        return result;
    }

    /// <summary>
    /// Example <paramref name="example"/>'s full gradient of <paramref name="output"/> as a flat vector (MlpLayout
    /// order). Convenience over <see cref="PerExampleGradients"/> for a single example.
    /// </summary>
    public void MaterializePerExampleGradient(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, int example, Span<float> flat, MlpOutput output = MlpOutput.Loss)
        => PerExampleGradients(inputs, labels, batch, output).Materialize(example, flat);

    /// <summary>
    /// Forward-mode JVP: logits [batch, classes] and their directional derivative <c>(∂logits/∂θ)·v</c> for the flat
    /// direction <paramref name="direction"/> (MlpLayout order), with forward computation only (two GEMMs per layer).
    /// </summary>
    public void Jvp(ReadOnlySpan<float> inputs, int batch, ReadOnlySpan<float> direction, Span<float> logits, Span<float> tangent)
    {
        CheckInputs(inputs, batch);
        CheckFlat(direction.Length, nameof(direction));
        long n = (long)batch * Classes;
        CheckOut(logits.Length, n, nameof(logits));
        CheckOut(tangent.Length, n, nameof(tangent));
        ForwardTangent(inputs, batch, direction);
        _h[^1].AsSpan(0, (int)n).CopyTo(logits);
        _d[^1].AsSpan(0, (int)n).CopyTo(tangent);
    }

    /// <summary>
    /// Per-example outputs (margins or losses) and their directional derivatives along <paramref name="direction"/>,
    /// forward only: <c>d margin = dz_y − Σ_{j≠y} softmax_{j≠y}(z)_j dz_j</c>.
    /// </summary>
    public void OutputJvp(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, ReadOnlySpan<float> direction,
        Span<float> values, Span<float> tangents, MlpOutput output = MlpOutput.Margin)
    {
        CheckBatch(inputs, labels, batch);
        CheckFlat(direction.Length, nameof(direction));
        CheckOut(values.Length, batch, nameof(values));
        CheckOut(tangents.Length, batch, nameof(tangents));
        ForwardTangent(inputs, batch, direction);
        int c = Classes;
        for (int i = 0; i < batch; i++)
        {
            var z = _h[^1].AsSpan(i * c, c);
            var dz = _d[^1].AsSpan(i * c, c);
            int y = labels[i];
            float lse = MlpKernels.LogSumExp(z, output == MlpOutput.Margin ? y : -1);
            double dot = 0;
            for (int j = 0; j < c; j++)
            {
                if (output == MlpOutput.Loss || j != y)
                {
                    dot += Math.Exp(z[j] - lse) * dz[j];
                }
            }

            values[i] = output == MlpOutput.Margin ? z[y] - lse : lse - z[y];
            tangents[i] = (float)(output == MlpOutput.Margin ? dz[y] - dot : dot - dz[y]);
        }
    }

    private void Forward(ReadOnlySpan<float> inputs, int batch)
    {
        Ensure(batch);
        ReadOnlySpan<float> h = inputs;
        int last = Layout.LayerCount - 1;
        for (int l = 0; l <= last; l++)
        {
            int fin = Layout.In(l), fout = Layout.Out(l);
            var z = _h[l].AsSpan(0, batch * fout);
            Gemm(false, true, batch, fout, fin, h, _weights[l].Data, 0f, z);
            MlpKernels.AddBiasActivate(z, _biases[l].Data, batch, relu: l < last);
            h = z;
        }
    }

    private void ForwardTangent(ReadOnlySpan<float> inputs, int batch, ReadOnlySpan<float> direction)
    {
        Ensure(batch);
        ReadOnlySpan<float> h = inputs;
        int last = Layout.LayerCount - 1;
        for (int l = 0; l <= last; l++)
        {
            int fin = Layout.In(l), fout = Layout.Out(l);
            var z = _h[l].AsSpan(0, batch * fout);
            var dz = _d[l].AsSpan(0, batch * fout);
            // dz = h·Vᵀ + dh·Wᵀ + vb, where dh (the incoming tangent) is zero for the input layer.
            Gemm(false, true, batch, fout, fin, h, Layout.Weight(direction, l), 0f, dz);
            if (l > 0)
            {
                Gemm(false, true, batch, fout, fin, _d[l - 1].AsSpan(0, batch * fin), _weights[l].Data, 1f, dz);
            }

            MlpKernels.AddBiasActivate(dz, Layout.Bias(direction, l), batch, relu: false);
            Gemm(false, true, batch, fout, fin, h, _weights[l].Data, 0f, z);
            MlpKernels.AddBiasActivate(z, _biases[l].Data, batch, relu: l < last);
            if (l < last)
            {
                MlpKernels.ReluBackward(dz, z);
            }

            h = z;
        }
    }

    // Per-example outputs from the logits in _h[^1]; returns their mean.
    private float Outputs(int batch, ReadOnlySpan<int> labels, MlpOutput output, Span<float> values)
    {
        int c = Classes;
        double sum = 0;
        for (int i = 0; i < batch; i++)
        {
            var z = _h[^1].AsSpan(i * c, c);
            int y = labels[i];
            float v = output == MlpOutput.Margin ? z[y] - MlpKernels.LogSumExp(z, y) : MlpKernels.LogSumExp(z) - z[y];
            if (!values.IsEmpty)
            {
                values[i] = v;
            }

            sum += v;
        }

        return (float)(sum / Math.Max(batch, 1));
    }

    // Writes d(output_i)/d(logits_i) · scale into _d[^1] and returns the mean output.
    private float OutputGradients(int batch, ReadOnlySpan<int> labels, MlpOutput output, float scale, Span<float> values)
    {
        int c = Classes;
        double sum = 0;
        for (int i = 0; i < batch; i++)
        {
            var z = _h[^1].AsSpan(i * c, c);
            var d = _d[^1].AsSpan(i * c, c);
            int y = labels[i];
            float v;
            if (output == MlpOutput.Loss)
            {
                float lse = MlpKernels.LogSumExp(z);
                v = lse - z[y];
                for (int j = 0; j < c; j++)
                {
                    d[j] = MathF.Exp(z[j] - lse) * scale;
                }

                d[y] -= scale;
            }
            else
            {
                float lse = MlpKernels.LogSumExp(z, y);
                v = z[y] - lse;
                for (int j = 0; j < c; j++)
                {
                    d[j] = -MathF.Exp(z[j] - lse) * scale;
                }

                d[y] = scale;
            }

            if (!values.IsEmpty)
            {
                values[i] = v;
            }

            sum += v;
        }

        return (float)(sum / Math.Max(batch, 1));
    }

    // Backpropagates _d[^1] to every layer; with perExample set, records the factors instead of summing into Grad.
    private void Backward(ReadOnlySpan<float> inputs, int batch, MlpPerExampleGradients? perExample)
    {
        for (int l = Layout.LayerCount - 1; l >= 0; l--)
        {
            int fin = Layout.In(l), fout = Layout.Out(l);
            var dz = _d[l].AsSpan(0, batch * fout);
            ReadOnlySpan<float> a = l == 0 ? inputs[..(batch * fin)] : _h[l - 1].AsSpan(0, batch * fin);
            if (perExample is null)
            {
                // dW = dzᵀ·a, db = Σ_rows dz.
                Gemm(true, false, fout, fin, batch, dz, a, 0f, _weights[l].Grad);
                Array.Clear(_biases[l].Grad);
                MlpKernels.AddRows(dz, batch, _biases[l].Grad);
            }
            else
            {
                a.CopyTo(perExample.Activations(l));
                dz.CopyTo(perExample.OutputGradients(l));
            }

            if (l > 0)
            {
                var dh = _d[l - 1].AsSpan(0, batch * fin);
                Gemm(false, false, batch, fin, fout, dz, _weights[l].Data, 0f, dh);
                MlpKernels.ReluBackward(dh, _h[l - 1].AsSpan(0, batch * fin));
            }
        }
    }

    private void Gemm(bool transA, bool transB, int m, int n, int k, ReadOnlySpan<float> a, ReadOnlySpan<float> b, float beta, Span<float> c)
    {
        var profile = Profile;
        if (profile is null)
        {
            Blas.Gemm(transA, transB, m, n, k, 1f, a, b, beta, c);
            return;
        }

        long start = Stopwatch.GetTimestamp();
        Blas.Gemm(transA, transB, m, n, k, 1f, a, b, beta, c);
        profile.Record(m, n, k, Stopwatch.GetTimestamp() - start);
    }

    private void Ensure(int batch)
    {
        if (batch <= _capacity)
        {
            return;
        }

        for (int l = 0; l < Layout.LayerCount; l++)
        {
            _h[l] = new float[batch * Layout.Out(l)];
            _d[l] = new float[batch * Layout.Out(l)];
        }

        _capacity = batch;
    }

    private void CheckInputs(ReadOnlySpan<float> inputs, int batch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        if (inputs.Length < (long)batch * InputWidth)
        {
            ThrowShort(nameof(inputs), inputs.Length, (long)batch * InputWidth);
        }
    }

    private void CheckBatch(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch)
    {
        CheckInputs(inputs, batch);
        if (labels.Length < batch)
        {
            ThrowShort(nameof(labels), labels.Length, batch);
        }

        for (int i = 0; i < batch; i++)
        {
            if ((uint)labels[i] >= (uint)Classes)
            {
                ThrowLabel(i, labels[i], Classes);
            }
        }
    }

    private void CheckFlat(int length, string name)
    {
        if (length != Layout.ParameterCount)
        {
            throw new ArgumentException($"'{name}' has {length} floats but this MLP ({string.Join('-', Layout.Widths)}) has {Layout.ParameterCount} parameters.", name);
        }
    }

    private static void CheckOut(int length, long needed, string name)
    {
        if (length < needed)
        {
            ThrowShort(name, length, needed);
        }
    }

    [DoesNotReturn]
    private static void ThrowShort(string name, long actual, long needed) =>
        throw new ArgumentException($"'{name}' has {actual} elements but the batch needs {needed}.", name);

    [DoesNotReturn]
    private static void ThrowLabel(int index, int label, int classes) =>
        throw new ArgumentOutOfRangeException("labels", label, $"Label {label} of example {index} is outside [0, {classes}).");
}
