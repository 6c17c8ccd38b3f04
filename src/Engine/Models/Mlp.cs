using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Attribution.Engine.Training;
using Kernels = Attribution.Engine.Tensors.Kernels;


namespace Attribution.Engine.Models;

/// <summary>
/// A fully connected ReLU classifier over <see cref="MlpLayout"/> (ReLU after every layer except the last), with a
/// hand-written batched forward and backward pass through <see cref="Blas.Gemm"/>. Inputs are row-major [batch, in]
/// floats; labels are class indices. Work buffers are allocated once per largest batch size seen and then reused, so
/// a training step allocates nothing. An instance is therefore not thread-safe: give each thread its own model
/// (<see cref="Clone"/>). Every result is a deterministic function of the parameters and the inputs.
/// </summary>
public sealed class Mlp : IHiddenStateModel
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

    /// <inheritdoc />
    public int HiddenLayerCount => Layout.LayerCount - 1;

    /// <inheritdoc />
    public int HiddenWidth(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, HiddenLayerCount);
        return Layout.Out(layer);
    }

    /// <inheritdoc />
    public int DefaultHiddenLayer => HiddenLayerCount - 1;

    /// <inheritdoc />
    public void LogitsAndHidden(in ModelBatch batch, int layer, Span<float> logits, Span<float> hidden) =>
        LogitsAndHidden(InputsOf(batch), batch.Count, layer, logits, hidden);

    /// <summary>Logits [batch, classes] and hidden layer <paramref name="layer"/>'s output [batch, width] of inputs [batch, in], one forward pass.</summary>
    public void LogitsAndHidden(ReadOnlySpan<float> inputs, int batch, int layer, Span<float> logits, Span<float> hidden)
    {
        int width = HiddenWidth(layer);
        CheckInputs(inputs, batch);
        CheckOut(logits.Length, (long)batch * Classes, nameof(logits));
        CheckOut(hidden.Length, (long)batch * width, nameof(hidden));
        Forward(inputs, batch);
        _h[^1].AsSpan(0, batch * Classes).CopyTo(logits);
        _h[layer].AsSpan(0, batch * width).CopyTo(hidden);
    }

    /// <summary>Per-example values of <paramref name="output"/>; returns their mean (accumulated in double).</summary>
    public float Outputs(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, ModelOutput output, Span<float> values)
    {
        CheckBatch(inputs, labels, batch);
        CheckOut(values.Length, batch, nameof(values));
        Forward(inputs, batch);
        return Outputs(batch, labels, output, values);
    }

    /// <summary>Per-example cross-entropy losses; returns their mean.</summary>
    public float PerExampleLosses(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, Span<float> losses) =>
        Outputs(inputs, labels, batch, ModelOutput.Loss, losses);

    /// <summary>Per-example margins <c>z_y − logsumexp(z_j, j ≠ y)</c>.</summary>
    public void Margins(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, Span<float> margins) =>
        Outputs(inputs, labels, batch, ModelOutput.Margin, margins);

    /// <summary>Mean cross-entropy loss of the batch, forward only.</summary>
    public float Loss(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch)
    {
        CheckBatch(inputs, labels, batch);
        Forward(inputs, batch);
        return Outputs(batch, labels, ModelOutput.Loss, default);
    }

    /// <summary>Number of examples whose arg-max logit equals the label (first maximum wins ties).</summary>
    public int CountCorrect(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch)
    {
        CheckBatch(inputs, labels, batch);
        Forward(inputs, batch);
        int c = Classes, correct = 0;
        for (int i = 0; i < batch; i++)
        {
            correct += ArgMax(_h[^1].AsSpan(i * c, c)) == labels[i] ? 1 : 0;
        }

        return correct;
    }

    /// <summary>Arg-max class per input (first maximum wins ties): the class a served query's answer is.</summary>
    public void Predict(ReadOnlySpan<float> inputs, int batch, Span<int> classes)
    {
        CheckInputs(inputs, batch);
        CheckOut(classes.Length, batch, nameof(classes));
        Forward(inputs, batch);
        int c = Classes;
        for (int i = 0; i < batch; i++)
        {
            classes[i] = ArgMax(_h[^1].AsSpan(i * c, c));
        }
    }

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int j = 1; j < row.Length; j++)
        {
            if (row[j] > row[best])
            {
                best = j;
            }
        }

        return best;
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
        float loss = OutputGradients(batch, labels, ModelOutput.Loss, 1f / batch, default);
        Backward(inputs, batch, default, null);
        return loss;
    }

    /// <summary>
    /// Reverse mode: <c>gradient = Σ_i w_i ∇f_i</c> (flat, MlpLayout order) for <paramref name="output"/>, w = 1 when
    /// <paramref name="weights"/> is empty; per-example values into <paramref name="values"/> when it is not empty.
    /// Parameter gradients are left untouched.
    /// </summary>
    public void OutputGradient(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, ModelOutput output,
        ReadOnlySpan<float> weights, Span<float> gradient, Span<float> values)
    {
        CheckBatch(inputs, labels, batch);
        CheckFlat(gradient.Length, nameof(gradient));
        if (!weights.IsEmpty)
        {
            CheckOut(weights.Length, batch, nameof(weights));
        }

        Forward(inputs, batch);
        OutputGradients(batch, labels, output, 1f, values);
        if (!weights.IsEmpty)
        {
            int c = Classes;
            for (int i = 0; i < batch; i++)
            {
                var d = _d[^1].AsSpan(i * c, c);
                System.Numerics.Tensors.TensorPrimitives.Multiply(d, weights[i], d);
            }
        }

        Backward(inputs, batch, gradient, null);
    }

    /// <summary>
    /// Per-example gradients of <paramref name="output"/> in factored form: for every layer the input activations
    /// A_l [batch, in] and the output gradients G_l [batch, out], so that example i's weight gradient is
    /// <c>G_l[i]ᵀ A_l[i]</c> and its bias gradient <c>G_l[i]</c>. No p-sized vector is formed. Parameter gradients are
    /// left untouched.
    /// </summary>
    public GradientFactors PerExampleGradients(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, ModelOutput output = ModelOutput.Loss)
    {
        CheckBatch(inputs, labels, batch);
        var values = new float[batch];
        var layers = NewFactors(inputs, batch);
        Forward(inputs, batch);
        OutputGradients(batch, labels, output, 1f, values);
        Backward(inputs, batch, default, layers);
        return Factors(layers, batch, values);
    }

    /// <summary>
    /// The same factors as <see cref="PerExampleGradients(ReadOnlySpan{float}, ReadOnlySpan{int}, int, ModelOutput)"/>,
    /// with the output's sensitivities <c>∂f/∂z_l</c> obtained in forward mode only (no backward pass: what a serving
    /// stack without autograd can run): for each example the identity tangents at z_l, masked by the ReLU derivative, are
    /// pushed through the layers above and contracted with <c>∂f/∂logits</c>.
    /// </summary>
    public GradientFactors ForwardModeGradients(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, ModelOutput output)
    {
        CheckBatch(inputs, labels, batch);
        var values = new float[batch];
        var layers = NewFactors(inputs, batch);
        Forward(inputs, batch);
        OutputGradients(batch, labels, output, 1f, values);
        int count = Layout.LayerCount, classes = Classes;
        for (int l = 1; l < count; l++)
        {
            _h[l - 1].AsSpan(0, batch * Layout.In(l)).CopyTo(layers[l].Activations);
        }

        _d[^1].AsSpan(0, batch * classes).CopyTo(layers[^1].Deltas);
        // Two scratch buffers, reused for every example and layer: the tangents [o, width] before and after a layer.
        int widest = 0;
        for (int l = 0; l < count - 1; l++)
        {
            for (int k = l + 1; k < count; k++)
            {
                widest = Math.Max(widest, Layout.Out(l) * Layout.Out(k));
            }
        }

        var t = new float[widest];
        var next = new float[widest];
        for (int l = 0; l < count - 1; l++)
        {
            int o = Layout.Out(l);
            var g = layers[l].Deltas;
            for (int qq = 0; qq < batch; qq++)
            {
                // Tangents of a_{l+1} for the o seeds e_j at z_l are diag(ReLU'(z_l)) as rows [o, o]; pushed through
                // W_{l+1} that is row j = ReLU'(z_l)_j · W_{l+1}[:, j], a masked transpose (no GEMM on the diagonal).
                var act = _h[l].AsSpan(qq * o, o);
                int width = Layout.Out(l + 1);
                var w = _weights[l + 1].Data;
                var cur = t.AsSpan(0, o * width);
                cur.Clear();
                for (int j = 0; j < o; j++)
                {
                    if (act[j] > 0f)
                    {
                        for (int m = 0; m < width; m++)
                        {
                            cur[j * width + m] = w[m * o + j];
                        }
                    }
                }

                for (int k = l + 1; k < count; k++)
                {
                    int ok = Layout.Out(k);
                    if (k > l + 1)
                    {
                        var product = next.AsSpan(0, o * ok);
                        Gemm(false, true, o, ok, width, cur, _weights[k].Data, 0f, product);
                        (t, next) = (next, t);
                        cur = product;
                    }

                    if (k < count - 1)
                    {
                        var mask = _h[k].AsSpan(qq * ok, ok);
                        for (int j = 0; j < o; j++)
                        {
                            MlpKernels.ReluBackward(cur.Slice(j * ok, ok), mask);
                        }
                    }

                    width = ok;
                }

                // cur is [o, classes]: the logits' tangent per seed; contract with ∂f/∂logits.
                var dq = _d[^1].AsSpan(qq * classes, classes);
                for (int j = 0; j < o; j++)
                {
                    g[qq * o + j] = System.Numerics.Tensors.TensorPrimitives.Dot(cur.Slice(j * classes, classes), dq);
                }
            }
        }

        return Factors(layers, batch, values);
    }

    private LinearFactors[] NewFactors(ReadOnlySpan<float> inputs, int batch)
    {
        var layers = new LinearFactors[Layout.LayerCount];
        for (int l = 0; l < layers.Length; l++)
        {
            layers[l] = new LinearFactors(Layout.WeightOffset(l), Layout.BiasOffset(l), Layout.In(l), Layout.Out(l),
                new float[batch * Layout.In(l)], new float[batch * Layout.Out(l)]);
        }

        inputs[..(batch * InputWidth)].CopyTo(layers[0].Activations);
        return layers;
    }

    private GradientFactors Factors(LinearFactors[] layers, int batch, float[] values) =>
        new(Layout.ParameterCount, batch, 1, layers, values, complete: true);

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
    /// Per-example outputs and their directional derivatives along <paramref name="direction"/>, forward only:
    /// e.g. <c>d margin = dz_y − Σ_{j≠y} softmax_{j≠y}(z)_j dz_j</c>.
    /// </summary>
    public void OutputJvp(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int batch, ReadOnlySpan<float> direction,
        Span<float> values, Span<float> tangents, ModelOutput output = ModelOutput.Margin)
    {
        CheckBatch(inputs, labels, batch);
        CheckFlat(direction.Length, nameof(direction));
        CheckOut(values.Length, batch, nameof(values));
        CheckOut(tangents.Length, batch, nameof(tangents));
        ForwardTangent(inputs, batch, direction);
        int c = Classes;
        for (int i = 0; i < batch; i++)
        {
            var (v, t) = MlpKernels.OutputTangent(output, _h[^1].AsSpan(i * c, c), _d[^1].AsSpan(i * c, c), labels[i]);
            values[i] = v;
            tangents[i] = t;
        }
    }

    /// <summary>Parameters of many slots at once for batched training (<see cref="MlpStack"/>).</summary>
    public MlpStack Stack(int slots) => new(Layout, slots);

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

    // The forward pass, then the tangent along direction layer by layer into _d.
    private void ForwardTangent(ReadOnlySpan<float> inputs, int batch, ReadOnlySpan<float> direction)
    {
        Forward(inputs, batch);
        int last = Layout.LayerCount - 1;
        for (int l = 0; l <= last; l++)
        {
            int fin = Layout.In(l), fout = Layout.Out(l);
            ReadOnlySpan<float> h = l == 0 ? inputs : _h[l - 1].AsSpan(0, batch * fin);
            var dz = _d[l].AsSpan(0, batch * fout);
            // dz = h·Vᵀ + dh·Wᵀ + vb, where dh (the incoming tangent) is zero for the input layer.
            Gemm(false, true, batch, fout, fin, h, Layout.Weight(direction, l), 0f, dz);
            if (l > 0)
            {
                Gemm(false, true, batch, fout, fin, _d[l - 1].AsSpan(0, batch * fin), _weights[l].Data, 1f, dz);
            }

            MlpKernels.AddBiasActivate(dz, Layout.Bias(direction, l), batch, relu: false);
            if (l < last)
            {
                MlpKernels.ReluBackward(dz, _h[l].AsSpan(0, batch * fout));
            }
        }
    }

    // Per-example outputs from the logits in _h[^1]; returns their mean.
    private float Outputs(int batch, ReadOnlySpan<int> labels, ModelOutput output, Span<float> values) =>
        Evaluate(batch, labels, output, 1f, values, gradients: false);

    // Writes d(output_i)/d(logits_i) · scale into _d[^1] and returns the mean output.
    private float OutputGradients(int batch, ReadOnlySpan<int> labels, ModelOutput output, float scale, Span<float> values) =>
        Evaluate(batch, labels, output, scale, values, gradients: true);

    private float Evaluate(int batch, ReadOnlySpan<int> labels, ModelOutput output, float scale, Span<float> values, bool gradients)
    {
        int c = Classes;
        double sum = 0;
        for (int i = 0; i < batch; i++)
        {
            float v = MlpKernels.Output(output, _h[^1].AsSpan(i * c, c), labels[i], scale, gradients ? _d[^1].AsSpan(i * c, c) : default);
            if (!values.IsEmpty)
            {
                values[i] = v;
            }

            sum += v;
        }

        return (float)(sum / Math.Max(batch, 1));
    }

    // Backpropagates _d[^1] to every layer: summed into `flat` (or Parameter.Grad when it is empty), or, with
    // perExample set, recorded as factors instead.
    private void Backward(ReadOnlySpan<float> inputs, int batch, Span<float> flat, LinearFactors[]? perExample)
    {
        for (int l = Layout.LayerCount - 1; l >= 0; l--)
        {
            int fin = Layout.In(l), fout = Layout.Out(l);
            var dz = _d[l].AsSpan(0, batch * fout);
            ReadOnlySpan<float> a = l == 0 ? inputs[..(batch * fin)] : _h[l - 1].AsSpan(0, batch * fin);
            if (perExample is null)
            {
                // dW = dzᵀ·a, db = Σ_rows dz.
                var gw = flat.IsEmpty ? _weights[l].Grad : Layout.Weight(flat, l);
                var gb = flat.IsEmpty ? _biases[l].Grad : Layout.Bias(flat, l);
                Gemm(true, false, fout, fin, batch, dz, a, 0f, gw);
                gb.Clear();
                Kernels.AddRows(dz, batch, gb);
            }
            else
            {
                a.CopyTo(perExample[l].Activations);
                dz.CopyTo(perExample[l].Deltas);
            }

            if (l > 0)
            {
                var dh = _d[l - 1].AsSpan(0, batch * fin);
                Gemm(false, false, batch, fin, fout, dz, _weights[l].Data, 0f, dh);
                MlpKernels.ReluBackward(dh, _h[l - 1].AsSpan(0, batch * fin));
            }
        }
    }

    // IModel over ModelBatch: a classifier batch's float inputs and labels.
    string IModel.Architecture => Architecture;

    /// <summary>Canonical architecture string, <c>mlp:</c> and the widths joined by '-'.</summary>
    public string Architecture => "mlp:" + string.Join('-', Layout.Widths);

    int IModel.ParameterCount => Layout.ParameterCount;

    /// <inheritdoc />
    public IReadOnlyList<(string Name, int[] Shape, int Offset)> Tensors => _tensors ??= [.. Layout.Tensors()];

    private (string Name, int[] Shape, int Offset)[]? _tensors;

    IModel IModel.Clone() => Clone();

    void IModel.Outputs(in ModelBatch batch, ModelOutput output, Span<float> values) =>
        Outputs(InputsOf(batch), batch.Labels, batch.Count, output, values);

    float IModel.LossAndBackward(in ModelBatch batch) => LossAndBackward(InputsOf(batch), batch.Labels, batch.Count);

    void IModel.OutputGradient(in ModelBatch batch, ModelOutput output, ReadOnlySpan<float> weights, Span<float> gradient, Span<float> values) =>
        OutputGradient(InputsOf(batch), batch.Labels, batch.Count, output, weights, gradient, values);

    void IModel.OutputJvp(in ModelBatch batch, ModelOutput output, ReadOnlySpan<float> direction, Span<float> values, Span<float> tangents) =>
        OutputJvp(InputsOf(batch), batch.Labels, batch.Count, direction, values, tangents, output);

    GradientFactors IModel.PerExampleGradients(in ModelBatch batch, ModelOutput output) =>
        PerExampleGradients(InputsOf(batch), batch.Labels, batch.Count, output);

    GradientFactors IModel.ForwardModeGradients(in ModelBatch batch, ModelOutput output) =>
        ForwardModeGradients(InputsOf(batch), batch.Labels, batch.Count, output);

    private static float[] InputsOf(in ModelBatch batch) =>
        batch.Inputs ?? throw new ArgumentException("an MLP takes a classification batch (float inputs and labels), not token sequences.", nameof(batch));

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
