using Attribution.Engine.Autograd;
using Tensor = Attribution.Engine.Tensors.Tensor;

namespace Attribution.Engine.Models;

/// <summary>
/// A decoder-only transformer with GPT-2's architecture (Hugging Face <c>GPT2LMHeadModel</c>): token + learned position
/// embeddings, <c>Layers</c> pre-LayerNorm blocks of causal multi-head attention (scores scaled by 1/sqrt(head size)) and
/// a GELU (tanh approximation, <c>gelu_new</c>) MLP, a final LayerNorm (epsilon 1e-5 by default), biases on every
/// projection, and an output head tied to the token embedding (or untied).
/// </summary>
/// <remarks>
/// Parameter names are the Hugging Face GPT-2 names (<c>transformer.wte.weight</c>, <c>transformer.h.0.ln_1.weight</c>,
/// <c>transformer.h.0.attn.c_attn.weight</c>, ..., <c>transformer.ln_f.bias</c>; <c>lm_head.weight</c> only when untied).
/// In memory the four projection weights per block are held as [out, in] (<c>nn.Linear</c> orientation), the transpose of
/// the file's <c>Conv1D</c> [in, out]: <see cref="GptCheckpoint"/> reads and writes the Hugging Face layout, so checkpoint
/// files are exactly what <c>transformers</c> (and <c>bench/peers/gpt2_torch.py</c>) open.
/// The model owns one <see cref="Graph"/> and resets it per call, so repeated steps of the same shape reuse every buffer.
/// Token batches are row-major [batch, seqLen]. Not thread-safe.
/// </remarks>
public sealed class Gpt
{
    private readonly Graph _graph = new();
    private readonly List<Parameter> _parameters = [];
    private readonly Block[] _blocks;
    private readonly Parameter _wte, _wpe, _lnFWeight, _lnFBias;
    private readonly Parameter? _lmHead;

    /// <summary>Creates a model with GPT-2-style seeded initialisation: N(0, 0.02) weights (residual projections scaled by
    /// 1/sqrt(2·Layers)), zero biases, unit LayerNorm weights.</summary>
    public Gpt(GptConfig config, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        int c = config.DModel, hidden = config.MlpRatio * c;
        _wte = Add("transformer.wte.weight", config.VocabSize, c);
        _wpe = Add("transformer.wpe.weight", config.Context, c);
        _blocks = new Block[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            string p = $"transformer.h.{l}.";
            _blocks[l] = new Block(
                Add(p + "ln_1.weight", c), Add(p + "ln_1.bias", c),
                Add(p + "attn.c_attn.weight", 3 * c, c), Add(p + "attn.c_attn.bias", 3 * c),
                Add(p + "attn.c_proj.weight", c, c), Add(p + "attn.c_proj.bias", c),
                Add(p + "ln_2.weight", c), Add(p + "ln_2.bias", c),
                Add(p + "mlp.c_fc.weight", hidden, c), Add(p + "mlp.c_fc.bias", hidden),
                Add(p + "mlp.c_proj.weight", c, hidden), Add(p + "mlp.c_proj.bias", c));
        }

        _lnFWeight = Add("transformer.ln_f.weight", c);
        _lnFBias = Add("transformer.ln_f.bias", c);
        _lmHead = config.TiedHead ? null : Add("lm_head.weight", config.VocabSize, c);
        Initialize(seed);
    }

    /// <summary>The model's shape.</summary>
    public GptConfig Config { get; }

    /// <summary>Parameters in a fixed order (embeddings, blocks, final norm, head).</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>Total number of scalars.</summary>
    public long ParameterCount => _parameters.Sum(p => (long)p.Count);

    /// <summary>
    /// When set, every linear layer records per-example factors (<see cref="LinearCapture"/>) on the next
    /// <see cref="LossAndBackward(ReadOnlySpan{int}, ReadOnlySpan{int}, int, int)"/>; rows per example = seqLen.
    /// </summary>
    public bool CapturePerExample { get; set; }

    /// <summary>One capture per linear layer (c_attn, attn.c_proj, c_fc, mlp.c_proj per block; then the head), filled when
    /// <see cref="CapturePerExample"/> is set.</summary>
    public IReadOnlyList<LinearCapture> Captures => _captures ??= BuildCaptures();

    private LinearCapture[]? _captures;
    private int[] _shiftInputs = [], _shiftTargets = [];

    /// <summary>The blocks' weights that hold a <c>Conv1D</c> in the Hugging Face layout (stored here transposed).</summary>
    public IEnumerable<Parameter> ProjectionWeights => _blocks.SelectMany(b => new[] { b.AttnW, b.ProjW, b.FcW, b.MlpProjW });

    /// <summary>Re-initialises all parameters from <paramref name="seed"/> (same seed, same bits).</summary>
    public void Initialize(ulong seed)
    {
        var rng = new Rng(seed);
        float std = 0.02f, projStd = 0.02f / MathF.Sqrt(2f * Math.Max(1, Config.Layers));
        var norms = _blocks.SelectMany(b => new[] { b.Ln1W, b.Ln2W }).Append(_lnFWeight).ToHashSet();
        var residual = _blocks.SelectMany(b => new[] { b.ProjW, b.MlpProjW }).ToHashSet();
        foreach (var p in _parameters)
        {
            p.ZeroGrad();
            if (norms.Contains(p))
            {
                Array.Fill(p.Data, 1f);
            }
            else if (p.Shape.Count == 1)
            {
                Array.Clear(p.Data);
            }
            else
            {
                rng.FillNormal(p.Data, 0f, residual.Contains(p) ? projStd : std);
            }
        }
    }

    /// <summary>Zeroes every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters)
        {
            p.ZeroGrad();
        }
    }

    /// <summary>
    /// Next-token loss on <paramref name="tokens"/> [batch, seqLen]: positions 0..seqLen-2 predict 1..seqLen-1. Returns the
    /// mean negative log-likelihood and accumulates its gradient into every <see cref="Parameter.Grad"/>.
    /// </summary>
    public float LossAndBackward(ReadOnlySpan<int> tokens, int batch, int seqLen)
    {
        var (inputs, targets) = Shift(tokens, batch, seqLen);
        return LossAndBackward(inputs, targets, batch, seqLen - 1);
    }

    /// <summary>
    /// Loss of <paramref name="inputs"/> [batch, seqLen] against <paramref name="targets"/> [batch, seqLen] (target -1 is
    /// ignored, e.g. padding); accumulates gradients into <see cref="Parameter.Grad"/> and returns the mean NLL.
    /// </summary>
    public float LossAndBackward(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int batch, int seqLen)
    {
        _graph.Reset();
        _graph.RecordBackward = true;
        _graph.ClearTangents();
        var loss = _graph.CrossEntropy(Forward(_graph, inputs, batch, seqLen, CapturePerExample), targets, ignoreIndex: -1);
        float value = loss.Item();
        _graph.Backward(loss);
        _graph.Reset();
        return value;
    }

    /// <summary>Mean next-token NLL of <paramref name="tokens"/> [batch, seqLen] without gradients.</summary>
    public float Loss(ReadOnlySpan<int> tokens, int batch, int seqLen)
    {
        var (inputs, targets) = Shift(tokens, batch, seqLen);
        return Loss(inputs, targets, batch, seqLen - 1);
    }

    /// <summary>Mean NLL of <paramref name="inputs"/> against <paramref name="targets"/> (-1 ignored) without gradients.</summary>
    public float Loss(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int batch, int seqLen)
    {
        _graph.Reset();
        _graph.RecordBackward = false;
        _graph.ClearTangents();
        float value = _graph.CrossEntropy(Forward(_graph, inputs, batch, seqLen, false), targets, ignoreIndex: -1).Item();
        _graph.Reset();
        return value;
    }

    /// <summary>
    /// Forward-mode directional derivative of the loss along a parameter direction (one array per parameter, in
    /// <see cref="Parameters"/> order; null entries mean zero): returns (loss, d loss/dθ · v) with no backward pass.
    /// </summary>
    public (float Loss, float Jvp) LossJvp(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int batch, int seqLen,
        IReadOnlyList<float[]?> direction)
    {
        SetDirection(direction);
        _graph.RecordBackward = false;
        var loss = _graph.CrossEntropy(Forward(_graph, inputs, batch, seqLen, false), targets, ignoreIndex: -1);
        var result = (loss.Item(), loss.Tangent![0]);
        _graph.ClearTangents();
        _graph.Reset();
        return result;
    }

    /// <summary>Logits [batch, seqLen, vocab] and, along a parameter direction, their tangents (forward mode).</summary>
    public (float[] Logits, float[] Tangent) LogitsJvp(ReadOnlySpan<int> inputs, int batch, int seqLen, IReadOnlyList<float[]?> direction)
    {
        SetDirection(direction);
        _graph.RecordBackward = false;
        var logits = Forward(_graph, inputs, batch, seqLen, false);
        var result = ((float[])logits.Data.Clone(), (float[])logits.Tangent!.Clone());
        _graph.ClearTangents();
        _graph.Reset();
        return result;
    }

    /// <summary>Logits [batch, seqLen, vocab] for <paramref name="inputs"/> [batch, seqLen] (a fresh array).</summary>
    public float[] Logits(ReadOnlySpan<int> inputs, int batch, int seqLen)
    {
        CheckBatch(inputs.Length, batch, seqLen, "inputs");
        var result = GC.AllocateUninitializedArray<float>(batch * seqLen * Config.VocabSize);
        Logits(inputs, batch, seqLen, result);
        return result;
    }

    /// <summary>
    /// Logits [batch, seqLen, vocab] for <paramref name="inputs"/> [batch, seqLen], written into
    /// <paramref name="destination"/> (exactly batch·seqLen·vocab long): the head's product goes straight there, so a
    /// caller that reuses the destination allocates nothing per call.
    /// </summary>
    public void Logits(ReadOnlySpan<int> inputs, int batch, int seqLen, Span<float> destination)
    {
        CheckBatch(inputs.Length, batch, seqLen, "inputs");
        int rows = batch * seqLen, vocab = Config.VocabSize, c = Config.DModel;
        if (destination.Length != (long)rows * vocab)
        {
            throw new ArgumentException($"Gpt.Logits: destination has {destination.Length} values, batch {batch} x seqLen {seqLen} x vocab {vocab} needs {(long)rows * vocab}.", nameof(destination));
        }

        _graph.Reset();
        _graph.RecordBackward = false;
        _graph.ClearTangents();
        var x = FinalHidden(_graph, inputs, batch, seqLen, false);
        // The head of Forward (graph.Linear without bias) is this one GEMM: the same call, the same bits.
        Blas.Gemm(false, true, rows, vocab, c, 1f, x.Data, (_lmHead ?? _wte).Data, 0f, destination);
        _graph.Reset();
    }

    /// <summary>
    /// Builds the forward pass on a caller's graph (for custom losses, attribution readouts or forward-mode work); returns
    /// logits [batch, seqLen, vocab]. Parameter tangents set on <paramref name="graph"/> flow through.
    /// </summary>
    public Tensor Forward(Graph graph, ReadOnlySpan<int> inputs, int batch, int seqLen, bool capture = false)
    {
        var x = FinalHidden(graph, inputs, batch, seqLen, capture);
        return graph.Linear(x, graph.Param(_lmHead ?? _wte), null, capture ? Captures[^1] : null);
    }

    /// <summary>
    /// The final hidden states [batch, seqLen, C]: the residual stream after the final LayerNorm, the head's input (what
    /// representation-similarity attribution compares). A fresh array; no gradients.
    /// </summary>
    public float[] HiddenStates(ReadOnlySpan<int> inputs, int batch, int seqLen)
    {
        _graph.Reset();
        _graph.RecordBackward = false;
        _graph.ClearTangents();
        var result = (float[])FinalHidden(_graph, inputs, batch, seqLen, false).Data.Clone();
        _graph.Reset();
        return result;
    }

    /// <summary>
    /// One forward pass: logits [batch, seqLen, vocab] and the residual stream after block <paramref name="block"/>
    /// [batch, seqLen, C] (what the next block reads; what STRIDE's steering operators read). Fresh arrays; no gradients.
    /// </summary>
    public (float[] Logits, float[] Hidden) LogitsAndHidden(ReadOnlySpan<int> inputs, int batch, int seqLen, int block)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(block);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(block, Config.Layers);
        _graph.Reset();
        _graph.RecordBackward = false;
        _graph.ClearTangents();
        var x = FinalHidden(_graph, inputs, batch, seqLen, false, block, out var tapped);
        var logits = _graph.Linear(x, _graph.Param(_lmHead ?? _wte), null, null);
        var result = ((float[])logits.Data.Clone(), (float[])tapped!.Data.Clone());
        _graph.Reset();
        return result;
    }

    private Tensor FinalHidden(Graph graph, ReadOnlySpan<int> inputs, int batch, int seqLen, bool capture) =>
        FinalHidden(graph, inputs, batch, seqLen, capture, -1, out _);

    // The final hidden states; when tap ≥ 0 also the residual stream after block tap.
    private Tensor FinalHidden(Graph graph, ReadOnlySpan<int> inputs, int batch, int seqLen, bool capture, int tap, out Tensor? tapped)
    {
        tapped = null;
        ArgumentNullException.ThrowIfNull(graph);
        CheckBatch(inputs.Length, batch, seqLen, "inputs");
        int c = Config.DModel;
        float eps = Config.LayerNormEpsilon;
        var g = graph;
        var tok = Graph.Reshape(g.Embedding(g.Param(_wte), inputs), batch, seqLen, c);
        var pos = g.Slice(g.Param(_wpe), 0, 0, seqLen);
        var x = g.Add(tok, pos);
        var caps = capture ? Captures : null;
        int ci = 0;
        for (int l = 0; l < _blocks.Length; l++)
        {
            x = ApplyBlock(g, x, l, caps, ref ci);
            if (l == tap)
            {
                tapped = x;
            }
        }

        return g.LayerNorm(x, g.Param(_lnFWeight), g.Param(_lnFBias), eps);
    }

    /// <summary>
    /// The frozen tail from a residual stream: <paramref name="residual"/> [batch, seqLen, C] is taken as the stream after
    /// block <paramref name="block"/> (what <see cref="LogitsAndHidden"/> taps), and blocks block+1 … Layers−1, the final
    /// LayerNorm and the head run on it; returns logits [batch, seqLen, vocab]. With a recording graph and a residual that
    /// carries a gradient, backward gives ∂/∂residual (STRIDE's residual-form operators steer this stream); the parameters'
    /// gradients accumulate as in <see cref="Forward"/>.
    /// </summary>
    public Tensor ForwardFrom(Graph graph, Tensor residual, int block)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(residual);
        ArgumentOutOfRangeException.ThrowIfNegative(block);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(block, Config.Layers);
        if (residual.Shape.Count != 3 || residual.Shape[2] != Config.DModel || residual.Shape[1] > Config.Context)
        {
            throw new ArgumentException($"Gpt.ForwardFrom: the residual must be [batch, seqLen ≤ {Config.Context}, {Config.DModel}]; got {residual}.");
        }

        var x = residual;
        int ci = 0;
        for (int l = block + 1; l < _blocks.Length; l++)
        {
            x = ApplyBlock(graph, x, l, null, ref ci);
        }

        x = graph.LayerNorm(x, graph.Param(_lnFWeight), graph.Param(_lnFBias), Config.LayerNormEpsilon);
        return graph.Linear(x, graph.Param(_lmHead ?? _wte), null, null);
    }

    // One pre-LayerNorm block on the residual stream x (captures, when given, advance ci by four).
    private Tensor ApplyBlock(Graph g, Tensor x, int l, IReadOnlyList<LinearCapture>? caps, ref int ci)
    {
        var b = _blocks[l];
        float eps = Config.LayerNormEpsilon;
        var h = g.LayerNorm(x, g.Param(b.Ln1W), g.Param(b.Ln1B), eps);
        var qkv = g.Linear(h, g.Param(b.AttnW), g.Param(b.AttnB), caps?[ci++]);
        var a = g.CausalSelfAttention(qkv, Config.Heads);
        x = g.Add(x, g.Linear(a, g.Param(b.ProjW), g.Param(b.ProjB), caps?[ci++]));
        h = g.LayerNorm(x, g.Param(b.Ln2W), g.Param(b.Ln2B), eps);
        h = g.Gelu(g.Linear(h, g.Param(b.FcW), g.Param(b.FcB), caps?[ci++]));
        return g.Add(x, g.Linear(h, g.Param(b.MlpProjW), g.Param(b.MlpProjB), caps?[ci++]));
    }

    private void SetDirection(IReadOnlyList<float[]?> direction)
    {
        ArgumentNullException.ThrowIfNull(direction);
        if (direction.Count != _parameters.Count)
        {
            throw new ArgumentException($"Gpt: direction has {direction.Count} arrays, the model has {_parameters.Count} parameters.");
        }

        _graph.Reset();
        _graph.ClearTangents();
        for (int i = 0; i < direction.Count; i++)
        {
            // A zero tangent keeps every tensor dual, so the output always carries one.
            _graph.SetTangent(_parameters[i], direction[i] ?? new float[_parameters[i].Count]);
        }
    }

    private (int[] Inputs, int[] Targets) Shift(ReadOnlySpan<int> tokens, int batch, int seqLen)
    {
        CheckBatch(tokens.Length, batch, seqLen, "tokens");
        if (seqLen < 2)
        {
            throw new ArgumentException($"Gpt: next-token loss needs seqLen >= 2, got {seqLen}.");
        }

        int t = seqLen - 1;
        // Reused from call to call (the model is not thread-safe anyway): the graph copies what its backward keeps.
        if (_shiftInputs.Length != batch * t)
        {
            _shiftInputs = new int[batch * t];
            _shiftTargets = new int[batch * t];
        }

        var (inputs, targets) = (_shiftInputs, _shiftTargets);
        for (int b = 0; b < batch; b++)
        {
            tokens.Slice(b * seqLen, t).CopyTo(inputs.AsSpan(b * t, t));
            tokens.Slice((b * seqLen) + 1, t).CopyTo(targets.AsSpan(b * t, t));
        }

        return (inputs, targets);
    }

    private void CheckBatch(int length, int batch, int seqLen, string what)
    {
        if (batch <= 0 || seqLen <= 0 || (long)batch * seqLen != length)
        {
            throw new ArgumentException($"Gpt: {what} has {length} tokens, expected batch {batch} x seqLen {seqLen}.");
        }

        if (seqLen > Config.Context + (what == "tokens" ? 1 : 0))
        {
            throw new ArgumentException($"Gpt: sequence length {seqLen} exceeds the context {Config.Context}.");
        }
    }

    private LinearCapture[] BuildCaptures()
    {
        var list = new List<LinearCapture>();
        foreach (var b in _blocks)
        {
            list.Add(new LinearCapture(b.AttnW, b.AttnB));
            list.Add(new LinearCapture(b.ProjW, b.ProjB));
            list.Add(new LinearCapture(b.FcW, b.FcB));
            list.Add(new LinearCapture(b.MlpProjW, b.MlpProjB));
        }

        list.Add(new LinearCapture(_lmHead ?? _wte, null));
        return [.. list];
    }

    private Parameter Add(string name, params int[] shape)
    {
        var p = new Parameter(name, shape);
        _parameters.Add(p);
        return p;
    }

    private sealed record Block(Parameter Ln1W, Parameter Ln1B, Parameter AttnW, Parameter AttnB, Parameter ProjW,
        Parameter ProjB, Parameter Ln2W, Parameter Ln2B, Parameter FcW, Parameter FcB, Parameter MlpProjW, Parameter MlpProjB);
}
