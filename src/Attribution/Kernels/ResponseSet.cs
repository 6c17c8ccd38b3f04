using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Kernels;

/// <summary>
/// Parameter responses of many units (training examples, documents or sources) over any model's linear layers (the
/// layers of its <see cref="GradientFactors"/>: the MLP's every layer, a GPT's attention, MLP and head projections),
/// stored per layer either in full (<c>ΔW</c> [units, out, in]) or as rank-r factors of a truncated SVD
/// (<c>Uᵀ</c> [units, r, out], <c>Vt</c> [units, r, in]), biases in full. Parameters outside the linear layers
/// (a GPT's embeddings and LayerNorms) are not stored: a probe is the response restricted to the linear layers, as the
/// gradient methods' per-example gradients are. Query-time readout contracts the model's gradient factors of the
/// queries (one row per example for a classifier, one per position for a language model) with every unit's factors
/// (<see cref="JacobianScores"/>): no backward pass and no model maths of its own. The one response store of every
/// model (forward-only's examples and sources, the Simulator's probes, the Scorer's index).
/// </summary>
public sealed class ResponseSet
{
    private readonly LinearFactors[] _layers;
    private readonly int[] _ranks;
    private readonly float[]?[] _full;
    private readonly float[]?[] _u;
    private readonly float[]?[] _vt;
    private readonly float[]?[] _bias;
    private readonly float[] _omegaCache;
    private readonly int _sketch;
    private readonly float[]?[] _basis;
    private readonly int[] _basisDims;
    private readonly float[]?[] _directionWeights; // per layer [m·out, in]: D_j's weight block, packed for the readout
    private readonly float[]?[] _directionBiases; // per layer [m, out]
    private readonly float[] _coefficients; // [units, m]: c_u

    /// <summary>Storage for <paramref name="units"/> responses of an MLP; <paramref name="rank"/> 0 stores every layer in full.</summary>
    public ResponseSet(MlpLayout layout, int units, int rank, ulong seed = 17)
        : this(layout?.ParameterCount ?? throw new ArgumentNullException(nameof(layout)), LayersOf(layout), units, rank, seed)
    {
    }

    /// <summary>
    /// Storage for <paramref name="units"/> responses of a model with <paramref name="parameterCount"/> parameters whose
    /// linear layers are <paramref name="layers"/> (offsets and shapes; their factor rows are not read).
    /// <paramref name="rank"/> 0 stores every layer in full; a layer is stored low-rank only when
    /// <c>r (out + in) &lt; out · in</c> (<see cref="RanksFor"/>).
    /// </summary>
    public ResponseSet(int parameterCount, IReadOnlyList<LinearFactors> layers, int units, int rank, ulong seed = 17)
        : this(parameterCount, layers, units, RanksFor(layers, rank), seed)
    {
    }

    /// <summary>
    /// Storage with an explicit rank per layer (0 = full), e.g. the ranks a probe set was written at
    /// (<see cref="LayersOf(IReadOnlyList{Contracts.ProbeTensor}, IReadOnlyList{ValueTuple{string, int[], int}})"/>);
    /// the sketch for <see cref="Set"/> is sized for the largest rank.
    /// </summary>
    public ResponseSet(int parameterCount, IReadOnlyList<LinearFactors> layers, int units, IReadOnlyList<int> ranks, ulong seed = 17)
        : this(parameterCount, layers, units, ranks, [], 0, seed)
    {
    }

    /// <summary>
    /// Storage with explicit ranks per layer plus <paramref name="directionCount"/> directions shared by every unit
    /// (<paramref name="directions"/> [m, p], e.g. a spectral operator's Ritz vectors): unit u's response is its
    /// per-layer factors plus <c>Σ_j c_uj D_j</c> (<see cref="DirectionsTensor"/>, the coefficients c_u stored last in
    /// the unit's block). A forward-only response <c>φ(c) g + Σ_j (φ(a_j) − φ(c)) (V_j · g) V_j</c> is stored exactly
    /// this way: the gradient's own factors (rank one per layer for one classifier example) scaled by φ(c), and m
    /// coefficients against the Ritz vectors V kept once.
    /// </summary>
    public ResponseSet(int parameterCount, IReadOnlyList<LinearFactors> layers, int units, IReadOnlyList<int> ranks, ReadOnlySpan<float> directions, int directionCount, ulong seed = 17)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentOutOfRangeException.ThrowIfNegative(directionCount);
        if (directions.Length != (long)directionCount * parameterCount)
        {
            throw new ArgumentException($"{directions.Length} direction values for {directionCount} directions of {parameterCount} parameters; give [{directionCount}, {parameterCount}].", nameof(directions));
        }

        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentOutOfRangeException.ThrowIfNegative(units);
        if (ranks.Count != layers.Count || ranks.Any(r => r < 0))
        {
            throw new ArgumentException($"{ranks.Count} ranks for {layers.Count} layers; give one non-negative rank per layer.", nameof(ranks));
        }

        ParameterCount = parameterCount;
        Units = units;
        _layers = [.. layers];
        int count = _layers.Length, maxIn = 0;
        _ranks = new int[count];
        _full = new float[]?[count];
        _u = new float[]?[count];
        _vt = new float[]?[count];
        _bias = new float[]?[count];
        _basis = new float[]?[count];
        _basisDims = new int[count];
        for (int l = 0; l < count; l++)
        {
            var layer = _layers[l];
            int o = layer.Out, i = layer.In;
            if (layer.WeightOffset < 0 || (long)layer.WeightOffset + (long)o * i > parameterCount || (layer.BiasOffset >= 0 && layer.BiasOffset + o > parameterCount))
            {
                throw new ArgumentException($"layer {l} [{o}, {i}] at offset {layer.WeightOffset} (bias {layer.BiasOffset}) lies outside {parameterCount} parameters.", nameof(layers));
            }

            int r = _ranks[l] = ranks[l];
            if (r > 0)
            {
                _u[l] = new float[(long)units * o * r];
                _vt[l] = new float[(long)units * r * i];
                maxIn = Math.Max(maxIn, i);
            }
            else
            {
                _full[l] = new float[(long)units * o * i];
            }

            _bias[l] = layer.BiasOffset >= 0 ? new float[(long)units * o] : null;
        }

        _sketch = (count == 0 ? 0 : _ranks.Max()) + 8;
        _omegaCache = new float[maxIn * _sketch];
        new Rng(seed).FillNormal(_omegaCache);
        DirectionCount = directionCount;
        _coefficients = new float[(long)units * directionCount];
        _directionWeights = new float[]?[count];
        _directionBiases = new float[]?[count];
        if (directionCount > 0)
        {
            for (int l = 0; l < count; l++)
            {
                var layer = _layers[l];
                int o = layer.Out, i = layer.In;
                var w = _directionWeights[l] = new float[(long)directionCount * o * i];
                for (int j = 0; j < directionCount; j++)
                {
                    directions.Slice(j * parameterCount + layer.WeightOffset, o * i).CopyTo(w.AsSpan(j * o * i, o * i));
                }

                if (layer.BiasOffset >= 0)
                {
                    var b = _directionBiases[l] = new float[directionCount * o];
                    for (int j = 0; j < directionCount; j++)
                    {
                        directions.Slice(j * parameterCount + layer.BiasOffset, o).CopyTo(b.AsSpan(j * o, o));
                    }
                }
            }
        }
    }

    /// <summary>Name of the per-unit tensor [m, 1] holding a unit's coefficients on the shared directions (<see cref="Tensors"/>), and the prefix of the shared tensors of the directions themselves (<see cref="DirectionTensors"/>).</summary>
    public const string DirectionsTensor = "response.directions";

    /// <summary>Number m of directions shared by every unit (0 = none).</summary>
    public int DirectionCount { get; }

    /// <summary>
    /// The shared directions as state tensors named after the model's tensors (<paramref name="modelTensors"/>): per
    /// linear layer <c>response.directions/&lt;weight&gt;</c> [m·out, in] (direction j's weight block in rows
    /// j·out…) and <c>response.directions/&lt;bias&gt;</c> [m, out]. Rows are a layer's input width, so they split into
    /// probe-sized chunks (<see cref="Probes.SharedChunks"/>) as any shared state does. Empty when m = 0.
    /// </summary>
    public IReadOnlyList<StateTensor> DirectionTensors(IReadOnlyList<(string Name, int[] Shape, int Offset)> modelTensors)
    {
        ArgumentNullException.ThrowIfNull(modelTensors);
        var tensors = new List<StateTensor>();
        if (DirectionCount == 0)
        {
            return tensors;
        }

        var names = NamesByOffset(modelTensors);
        int m = DirectionCount;
        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            tensors.Add(new StateTensor(new Contracts.ProbeTensor($"{DirectionsTensor}/{names(layer.WeightOffset)}", m * layer.Out, layer.In, 0), _directionWeights[l]!));
            if (_directionBiases[l] is { } b)
            {
                tensors.Add(new StateTensor(new Contracts.ProbeTensor($"{DirectionsTensor}/{names(layer.BiasOffset)}", m, layer.Out, 0), b));
            }
        }

        return tensors;
    }

    /// <summary>
    /// The flat directions [m, p] (zero outside <paramref name="layers"/>) from <see cref="DirectionTensors"/>; throws
    /// <see cref="ArgumentException"/> naming what is missing, extra or mis-shaped.
    /// </summary>
    public static float[] DirectionsFrom(IReadOnlyList<StateTensor> shared, IReadOnlyList<LinearFactors> layers, int directionCount, int parameterCount,
        IReadOnlyList<(string Name, int[] Shape, int Offset)> modelTensors)
    {
        ArgumentNullException.ThrowIfNull(shared);
        ArgumentNullException.ThrowIfNull(layers);
        var names = NamesByOffset(modelTensors);
        int m = directionCount;
        var byName = new Dictionary<string, StateTensor>(StringComparer.Ordinal);
        foreach (var t in shared)
        {
            byName.TryAdd(t.Layout.Name, t); // a duplicate is left unused: refused below
        }

        var directions = new float[(long)m * parameterCount];
        int used = 0;
        void Take(int offset, int rows, int cols, int blockRows)
        {
            string name = $"{DirectionsTensor}/{names(offset)}";
            if (!byName.TryGetValue(name, out var t) || t.Layout.Rows != rows || t.Layout.Cols != cols || t.Layout.Rank != 0 || t.Values.Length != (long)rows * cols)
            {
                throw new ArgumentException($"the shared directions need '{name}' [{rows}x{cols}] in full; the state has {(byName.TryGetValue(name, out var had) ? $"[{had.Layout.Rows}x{had.Layout.Cols}] rank {had.Layout.Rank}" : "none")}. Re-simulate the probe set with this build.");
            }

            int block = blockRows * cols;
            for (int j = 0; j < m; j++)
            {
                t.Values.AsSpan(j * block, block).CopyTo(directions.AsSpan(j * parameterCount + offset, block));
            }

            used++;
        }

        if (m > 0)
        {
            foreach (var layer in layers)
            {
                Take(layer.WeightOffset, m * layer.Out, layer.In, layer.Out);
                if (layer.BiasOffset >= 0)
                {
                    Take(layer.BiasOffset, m, layer.Out, 1);
                }
            }
        }

        if (used != shared.Count)
        {
            throw new ArgumentException($"a forward-only state carries only its shared directions ({used} tensors '{DirectionsTensor}/…' for {m} directions); it also has {string.Join(", ", shared.Select(t => t.Layout.Name).Where(n => !n.StartsWith(DirectionsTensor + "/", StringComparison.Ordinal)).DefaultIfEmpty("duplicates"))}. Re-simulate the probe set with this build.");
        }

        return directions;
    }

    private static Func<int, string> NamesByOffset(IReadOnlyList<(string Name, int[] Shape, int Offset)> modelTensors)
    {
        ArgumentNullException.ThrowIfNull(modelTensors);
        var names = new Dictionary<int, string>();
        foreach (var (name, _, offset) in modelTensors)
        {
            names.TryAdd(offset, name);
        }

        return offset => names.TryGetValue(offset, out var n) ? n
            : throw new ArgumentException($"no model tensor starts at offset {offset}; the layers are not this model's.", nameof(modelTensors));
    }

    /// <summary>A unit's coefficients on the shared directions (m values).</summary>
    public ReadOnlySpan<float> Coefficients(int unit) => _coefficients.AsSpan(unit * DirectionCount, DirectionCount);

    /// <summary>An MLP's linear layers (every layer: weight and bias offsets and shapes), as its gradient factors name them.</summary>
    public static LinearFactors[] LayersOf(MlpLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        return [.. Enumerable.Range(0, layout.LayerCount).Select(l => new LinearFactors(layout.WeightOffset(l), layout.BiasOffset(l), layout.In(l), layout.Out(l), [], []))];
    }

    /// <summary>The rank each layer is stored at for a requested <paramref name="rank"/>: low rank only where <c>r (out + in) &lt; out · in</c>.</summary>
    public static int[] RanksFor(IReadOnlyList<LinearFactors> layers, int rank)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        return [.. layers.Select(l => rank > 0 && (long)rank * (l.Out + l.In) < (long)l.Out * l.In ? rank : 0)];
    }

    /// <summary>Parameters p of the model.</summary>
    public int ParameterCount { get; }

    /// <summary>Number of units.</summary>
    public int Units { get; }

    /// <summary>Rank per layer (0 = stored in full).</summary>
    public IReadOnlyList<int> Ranks => _ranks;

    /// <summary>The layers (offsets and shapes).</summary>
    public IReadOnlyList<LinearFactors> Layers => _layers;

    /// <summary>Floats stored per unit (in the probe layout: Vᵀ at the layer's input width, whatever the basis).</summary>
    public long FloatsPerUnit
    {
        get
        {
            long total = 0;
            for (int l = 0; l < _layers.Length; l++)
            {
                int o = _layers[l].Out, i = _layers[l].In, r = _ranks[l];
                total += (r > 0 ? (long)r * (o + i) : (long)o * i) + (_bias[l] is null ? 0 : o);
            }

            return total + DirectionCount;
        }
    }

    /// <summary>Bytes held (factors as stored, plus any shared input bases).</summary>
    public long Bytes
    {
        get
        {
            long total = 0;
            for (int l = 0; l < _layers.Length; l++)
            {
                int o = _layers[l].Out, i = _layers[l].In, r = _ranks[l];
                int k = _basis[l] is null ? i : _basisDims[l];
                total += ((r > 0 ? (long)r * (o + k) : (long)o * i) + (_bias[l] is null ? 0 : o)) * Units + (_basis[l] is null ? 0 : (long)k * i);
            }

            total += (long)DirectionCount * (Units + ParameterCount); // coefficients and the directions (held once, per layer)
            return total * sizeof(float);
        }
    }

    /// <summary>Per layer, the dimension of the shared input basis the Vᵀ factors are stored in (0 = none).</summary>
    public IReadOnlyList<int> BasisDims => _basisDims;
    /// <summary>
    /// Re-expresses one low-rank layer's Vᵀ factors of every unit in a basis shared by all units: the top eigenvectors
    /// B [k, in] of Σ_u Vt_uᵀ diag(‖U_u[:, b]‖²) Vt_u, with k the smallest dimension that keeps
    /// <paramref name="energy"/> of the layer's response energy Σ_u ‖ΔW_u‖²_F. Each unit then stores C_u = Vt_u Bᵀ
    /// [r, k] instead of [r, in], and the readout projects a query's layer input once (a Bᵀ) before touching the units:
    /// for the 784-wide input layer of FashionMNIST responses, which live in the span of the training images, this cuts
    /// the dominant per-unit cost and the bytes streamed per query. Irreversible: set units before compressing.
    /// Returns k and the energy kept; when k would exceed 3/4 of the input width (no low-dimensional span) the layer is
    /// left as it is and (in, 1) is returned.
    /// </summary>
    public (int Dimension, double EnergyKept) ShareInputBasis(int layer, double energy)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)layer, (uint)_layers.Length, nameof(layer));
        if (energy is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(energy), energy, "energy must be in (0, 1].");
        }

        int o = _layers[layer].Out, i = _layers[layer].In, r = _ranks[layer];
        if (r == 0 || _basis[layer] is not null)
        {
            throw new InvalidOperationException($"layer {layer} is {(r == 0 ? "stored in full" : "already in a shared basis")}; only low-rank layers can share an input basis.");
        }

        // Weighted Gram of the stacked Vᵀ rows, accumulated in blocks: G = Σ w_row v_rowᵀ v_row.
        var vt = _vt[layer]!;
        var ut = _u[layer]!;
        var gram = new float[i * i];
        const int BlockRows = 2048;
        var scaled = new float[BlockRows * i];
        long rows = (long)Units * r;
        for (long row0 = 0; row0 < rows; row0 += BlockRows)
        {
            int nb = (int)Math.Min(BlockRows, rows - row0);
            for (int j = 0; j < nb; j++)
            {
                long row = row0 + j;
                var u = ut.AsSpan((int)(row * o), o); // Uᵀ row = U[:, b] of unit row / r
                float w = MathF.Sqrt(TensorPrimitives.Dot(u, u));
                TensorPrimitives.Multiply(vt.AsSpan((int)(row * i), i), w, scaled.AsSpan(j * i, i));
            }

            Blas.Gemm(true, false, i, i, nb, 1f, scaled.AsSpan(0, nb * i), scaled.AsSpan(0, nb * i), 1f, gram);
        }

        var (values, vectors) = Linalg.SymmetricEigen([.. gram.Select(v => (double)v)], i);
        var order = Enumerable.Range(0, i).OrderByDescending(j => values[j]).ToArray();
        double total = order.Sum(j => Math.Max(0, values[j]));
        // energy 1 keeps the whole (rotated) input space: exact, whatever the rounding of the float Gram.
        int k = 0;
        double kept = 0;
        while (k < i && (energy >= 1 || total <= 0 || kept / total < energy))
        {
            kept += Math.Max(0, values[order[k]]);
            k++;
        }

        k = Math.Max(k, 1);
        if (energy < 1 && k > 3 * i / 4)
        {
            // Responses without a low-dimensional input span (e.g. random ones): a basis this wide saves too little to
            // pay for projecting the input; the layer stays as it is.
            return (i, 1.0);
        }

        var basis = new float[k * i];
        for (int a = 0; a < k; a++)
        {
            for (int c = 0; c < i; c++)
            {
                basis[a * i + c] = (float)vectors[c * i + order[a]];
            }
        }

        // C = Vt Bᵀ for all units at once: [Units·r, in] × [k, in]ᵀ.
        var coefficients = new float[rows * k];
        Blas.Gemm(false, true, (int)rows, k, i, 1f, vt, basis, 0f, coefficients);
        _vt[layer] = coefficients;
        _basis[layer] = basis;
        _basisDims[layer] = k;
        return (k, total <= 0 ? 1 : kept / total);
    }

    /// <summary>A layer's input for the Vᵀ factors: a itself, or a Bᵀ [q, k] when the layer shares an input basis.</summary>
    private (float[] Input, int Width) FactorInput(int layer, float[] a, int q)
    {
        if (_basis[layer] is not { } b)
        {
            return (a, _layers[layer].In);
        }

        int k = _basisDims[layer];
        var projected = new float[q * k];
        Blas.Gemm(false, true, q, k, _layers[layer].In, 1f, a, b, 0f, projected);
        return (projected, k);
    }

    /// <summary>A unit's Vᵀ [r, in] of a layer, reconstructed from the shared basis when there is one.</summary>
    private void CopyVt(int layer, int unit, Span<float> destination)
    {
        int i = _layers[layer].In, r = _ranks[layer];
        if (_basis[layer] is not { } b)
        {
            _vt[layer].AsSpan(unit * r * i, r * i).CopyTo(destination);
            return;
        }

        int k = _basisDims[layer];
        Blas.Gemm(false, false, r, i, k, 1f, _vt[layer].AsSpan(unit * r * k, r * k), b, 0f, destination);
    }

    private void ThrowIfShared(int layer)
    {
        if (_basis[layer] is not null)
        {
            throw new InvalidOperationException($"layer {layer} shares an input basis; set every unit before ShareInputBasis.");
        }
    }

    /// <summary>Stores a unit's flat response (p floats), factorising the low-rank layers; other parameters are dropped.</summary>
    public void Set(int unit, ReadOnlySpan<float> response)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        if (response.Length != ParameterCount)
        {
            throw new ArgumentException($"response has {response.Length} values; the model has {ParameterCount}.", nameof(response));
        }

        _coefficients.AsSpan(unit * DirectionCount, DirectionCount).Clear(); // a dense response is held by its factors alone
        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            int o = layer.Out, i = layer.In, r = _ranks[l];
            var w = response.Slice(layer.WeightOffset, o * i);
            if (r == 0)
            {
                w.CopyTo(_full[l].AsSpan(unit * o * i, o * i));
            }
            else
            {
                ThrowIfShared(l);
                var u = new float[o * r];
                LowRank.Factorize(w, o, i, r, _omegaCache, _sketch, u, _vt[l].AsSpan(unit * r * i, r * i));
                // Stored transposed, Uᵀ [r, out], so the readout adds contiguous rows.
                Transpose(u, _u[l].AsSpan(unit * o * r, o * r), o, r);
            }

            if (_bias[l] is { } bias)
            {
                response.Slice(layer.BiasOffset, o).CopyTo(bias.AsSpan(unit * o, o));
            }
        }
    }

    // U [out, r] → Uᵀ [r, out] (and back with the shapes swapped).
    private static void Transpose(ReadOnlySpan<float> source, Span<float> destination, int rows, int cols)
    {
        for (int a = 0; a < rows; a++)
        {
            for (int b = 0; b < cols; b++)
            {
                destination[b * rows + a] = source[a * cols + b];
            }
        }
    }

    /// <summary>
    /// The tensors of one unit's factors (<see cref="GetFactors"/>), named after the model's tensors
    /// (<paramref name="modelTensors"/>, <see cref="IModel.Tensors"/>): per linear layer its weight [out, in] at the
    /// layer's rank, then its bias [out] (full) when it has one.
    /// </summary>
    public IReadOnlyList<Contracts.ProbeTensor> Tensors(IReadOnlyList<(string Name, int[] Shape, int Offset)> modelTensors)
    {
        ArgumentNullException.ThrowIfNull(modelTensors);
        var names = new Dictionary<int, string>();
        foreach (var (name, _, offset) in modelTensors)
        {
            names.TryAdd(offset, name);
        }

        string Name(int offset) => names.TryGetValue(offset, out var n) ? n
            : throw new ArgumentException($"no model tensor starts at offset {offset}; the layers are not this model's.", nameof(modelTensors));
        var tensors = new List<Contracts.ProbeTensor>(2 * _layers.Length);
        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            tensors.Add(new Contracts.ProbeTensor(Name(layer.WeightOffset), layer.Out, layer.In, _ranks[l]));
            if (layer.BiasOffset >= 0)
            {
                tensors.Add(new Contracts.ProbeTensor(Name(layer.BiasOffset), layer.Out, 1, 0));
            }
        }

        if (DirectionCount > 0)
        {
            tensors.Add(new Contracts.ProbeTensor(DirectionsTensor, DirectionCount, 1, 0));
        }

        return tensors;
    }

    /// <summary>
    /// The layers a unit tensor list describes (<see cref="Tensors"/>'s inverse), located in the model by name: each
    /// weight [out, in] followed by its bias [out] when the next tensor is a column of <c>out</c> values. Throws
    /// <see cref="ArgumentException"/> when a name is not the model's or a size differs.
    /// </summary>
    public static (LinearFactors[] Layers, int[] Ranks) LayersOf(IReadOnlyList<Contracts.ProbeTensor> tensors, IReadOnlyList<(string Name, int[] Shape, int Offset)> modelTensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(modelTensors);
        var byName = new Dictionary<string, (int Count, int Offset)>(StringComparer.Ordinal);
        foreach (var (name, shape, offset) in modelTensors)
        {
            byName.TryAdd(name, (shape.Aggregate(1, (a, b) => a * b), offset));
        }

        (int Count, int Offset) Find(Contracts.ProbeTensor t) => byName.TryGetValue(t.Name, out var m) && m.Count == (long)t.Rows * t.Cols ? m
            : throw new ArgumentException($"tensor '{t.Name}' [{t.Rows}x{t.Cols}] is not a tensor of this model (names and sizes: {string.Join(", ", byName.Take(6).Select(p => $"{p.Key} {p.Value.Count}"))}…).");
        var layers = new List<LinearFactors>();
        var ranks = new List<int>();
        for (int k = 0; k < tensors.Count; k++)
        {
            var w = tensors[k];
            if (w.Name == DirectionsTensor)
            {
                if (k != tensors.Count - 1 || w.Cols != 1 || w.Rank != 0)
                {
                    throw new ArgumentException($"tensor '{DirectionsTensor}' [{w.Rows}x{w.Cols}] must be the last tensor of a unit, one column in full (the unit's coefficients on the shared directions).");
                }

                break; // the coefficients on the shared directions: DirectionCountOf
            }

            int weight = Find(w).Offset, bias = -1;
            if (k + 1 < tensors.Count && tensors[k + 1] is { Cols: 1, Rank: 0 } b && b.Rows == w.Rows && (w.Cols != 1 || b.Name.EndsWith("bias", StringComparison.Ordinal)))
            {
                bias = Find(b).Offset;
                k++;
            }

            layers.Add(new LinearFactors(weight, bias, w.Cols, w.Rows, [], []));
            ranks.Add(w.Rank);
        }

        return ([.. layers], [.. ranks]);
    }

    /// <summary>The number of shared directions a unit tensor list (<see cref="Tensors"/>) carries coefficients for (0 = none).</summary>
    public static int DirectionCountOf(IReadOnlyList<Contracts.ProbeTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return tensors.Count > 0 && tensors[^1].Name == DirectionsTensor ? tensors[^1].Rows : 0;
    }

    /// <summary>
    /// Stores a unit from already-factorised floats (no SVD), laid out as <see cref="Tensors"/> says: per layer the full
    /// weight [out, in] when its rank is 0, else U [out, r] then Vᵀ [r, in]; then the bias [out] when the layer has one.
    /// This is the layout probes travel in, so a Scorer loads a probe set without re-factorising every response.
    /// </summary>
    public void SetFactors(int unit, ReadOnlySpan<float> factors)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        if (factors.Length != FloatsPerUnit)
        {
            throw new ArgumentException($"factors have {factors.Length} values; ranks [{string.Join(',', _ranks)}] of these layers need {FloatsPerUnit}.", nameof(factors));
        }

        int at = 0;
        for (int l = 0; l < _layers.Length; l++)
        {
            int o = _layers[l].Out, i = _layers[l].In, r = _ranks[l];
            if (r == 0)
            {
                factors.Slice(at, o * i).CopyTo(_full[l].AsSpan(unit * o * i, o * i));
                at += o * i;
            }
            else
            {
                ThrowIfShared(l);
                Transpose(factors.Slice(at, o * r), _u[l].AsSpan(unit * o * r, o * r), o, r);
                factors.Slice(at + o * r, r * i).CopyTo(_vt[l].AsSpan(unit * r * i, r * i));
                at += r * (o + i);
            }

            if (_bias[l] is { } bias)
            {
                factors.Slice(at, o).CopyTo(bias.AsSpan(unit * o, o));
                at += o;
            }
        }

        factors.Slice(at, DirectionCount).CopyTo(_coefficients.AsSpan(unit * DirectionCount, DirectionCount));
    }

    /// <summary>The inverse of <see cref="SetFactors"/>: a unit's stored floats in the probe layout.</summary>
    public void GetFactors(int unit, Span<float> factors)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        if (factors.Length != FloatsPerUnit)
        {
            throw new ArgumentException($"factors hold {factors.Length} values; this set stores {FloatsPerUnit} per unit.", nameof(factors));
        }

        int at = 0;
        for (int l = 0; l < _layers.Length; l++)
        {
            int o = _layers[l].Out, i = _layers[l].In, r = _ranks[l];
            if (r == 0)
            {
                _full[l].AsSpan(unit * o * i, o * i).CopyTo(factors.Slice(at, o * i));
                at += o * i;
            }
            else
            {
                Transpose(_u[l].AsSpan(unit * o * r, o * r), factors.Slice(at, o * r), r, o);
                CopyVt(l, unit, factors.Slice(at + o * r, r * i));
                at += r * (o + i);
            }

            if (_bias[l] is { } bias)
            {
                bias.AsSpan(unit * o, o).CopyTo(factors.Slice(at, o));
                at += o;
            }
        }

        _coefficients.AsSpan(unit * DirectionCount, DirectionCount).CopyTo(factors.Slice(at, DirectionCount));
    }

    /// <summary>
    /// ‖response‖ of a unit from its stored factors, without reconstructing it: for a low-rank layer
    /// ‖U Vᵀ‖² = Σ_ab (UᵀU)_ab (Vᵀ V)_ab, the r × r Gram matrices of U's columns and of Vᵀ's rows multiplied entrywise
    /// and summed (a shared input basis has orthonormal rows, so the coefficients' Gram is Vᵀ's). About (out + in)·r² per
    /// layer instead of the out·in·r of <see cref="Get"/>.
    /// </summary>
    public float Norm(int unit)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        if (DirectionCount > 0)
        {
            // Factors and shared directions are not orthogonal to each other: through the dense response.
            var dense = new float[ParameterCount];
            Get(unit, dense);
            return TensorPrimitives.Norm(dense);
        }

        double sum = 0;
        for (int l = 0; l < _layers.Length; l++)
        {
            int o = _layers[l].Out, i = _layers[l].In, r = _ranks[l];
            if (r == 0)
            {
                var w = _full[l].AsSpan(unit * o * i, o * i);
                sum += TensorPrimitives.Dot(w, w);
            }
            else
            {
                int fi = _basis[l] is null ? i : _basisDims[l];
                var ut = _u[l].AsSpan(unit * r * o, r * o);
                var vt = _vt[l].AsSpan(unit * r * fi, r * fi);
                for (int a = 0; a < r; a++)
                {
                    for (int b = 0; b < r; b++)
                    {
                        sum += (double)TensorPrimitives.Dot(ut.Slice(a * o, o), ut.Slice(b * o, o)) * TensorPrimitives.Dot(vt.Slice(a * fi, fi), vt.Slice(b * fi, fi));
                    }
                }
            }

            if (_bias[l] is { } stored)
            {
                var bias = stored.AsSpan(unit * o, o);
                sum += TensorPrimitives.Dot(bias, bias);
            }
        }

        return (float)Math.Sqrt(sum);
    }

    /// <summary>A unit's stored response as a flat vector (zero outside the linear layers).</summary>
    public void Get(int unit, Span<float> response)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        if (response.Length != ParameterCount)
        {
            throw new ArgumentException($"response has {response.Length} values; the model has {ParameterCount}.", nameof(response));
        }

        response.Clear();
        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            int o = layer.Out, i = layer.In, r = _ranks[l];
            var w = response.Slice(layer.WeightOffset, o * i);
            if (r == 0)
            {
                _full[l].AsSpan(unit * o * i, o * i).CopyTo(w);
            }
            else
            {
                var vt = new float[r * i];
                CopyVt(l, unit, vt);
                // W = U Vt = (Uᵀ)ᵀ Vt.
                Blas.Gemm(true, false, o, i, r, 1f, _u[l].AsSpan(unit * o * r, o * r), vt, 0f, w);
            }

            if (_bias[l] is { } bias)
            {
                bias.AsSpan(unit * o, o).CopyTo(response.Slice(layer.BiasOffset, o));
            }

            for (int j = 0; j < DirectionCount; j++)
            {
                float c = _coefficients[unit * DirectionCount + j];
                TensorPrimitives.MultiplyAdd(_directionWeights[l].AsSpan(j * o * i, o * i), c, w, w);
                if (_directionBiases[l] is { } db)
                {
                    var b = response.Slice(layer.BiasOffset, o);
                    TensorPrimitives.MultiplyAdd(db.AsSpan(j * o, o), c, b, b);
                }
            }
        }
    }

    /// <summary>
    /// Forward-only readout: <c>scores[q, u] = ∂f_q(θ + t·r_u)/∂t</c> at t = 0 for every query q and unit u, the
    /// directional derivative of each query's output along every unit's stored response, summed per layer and over the
    /// query's rows (positions): <c>Σ_l Σ_rows δ_row · (ΔW_{l,u} a_row + Δb_{l,u})</c>, where <c>a</c> is the layer's input
    /// at θ and <c>δ = ∂f/∂z</c> the output's sensitivity to the layer's pre-activation (the model's gradient factors of
    /// the queries, e.g. <see cref="Mlp.ForwardModeGradients"/> in forward mode). One row per query (a classifier):
    /// per unit only its stored factors are touched once, <c>(Uᵀ δ) · (Vt a)</c> fused for low-rank layers
    /// (<see cref="LowRankScores"/>), <c>δ W a</c> in GEMM tiles for full ones, so a query costs about one read of the
    /// set. Several rows per query (a language model's positions): each query's layer gradient <c>G_q = Σ_rows δ aᵀ</c>
    /// is formed once where that is cheaper (every full layer: one GEMM over all units, <c>⟨G_q, ΔW_u⟩</c>), else the
    /// rows are read through the factors (<c>A Vtᵀ</c>, <c>D U</c>, a row-wise product). The factors are computed once
    /// per batch and shared by every set scoring the same queries (a probe set's examples and its sources).
    /// </summary>
    public void JacobianScores(GradientFactors queries, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(queries);
        if (queries.ParameterCount != ParameterCount || queries.Layers.Count != _layers.Length)
        {
            throw new ArgumentException($"JacobianScores: the queries' factors ({queries.Layers.Count} layers, {queries.ParameterCount} parameters) are not of this set's model ({_layers.Length} layers, {ParameterCount} parameters).", nameof(queries));
        }

        int q = queries.Rows, rpe = queries.RowsPerExample, rows = q * rpe;
        if (scores.Length < (long)q * Units)
        {
            throw new ArgumentException($"JacobianScores: scores hold {scores.Length} values; {q} queries × {Units} units need {(long)q * Units}.", nameof(scores));
        }

        scores[..(q * Units)].Clear();
        if (q == 0 || Units == 0 || _layers.Length == 0)
        {
            return;
        }

        // Scratch from the shared pool (no large-object allocation per batch): tiles of at most 256K floats.
        const int TileFloats = 262_144;
        var pool = ArrayPool<float>.Shared;
        var tile = pool.Rent(Math.Max(TileFloats, q * _layers.Max(l => l.Out)));
        try
        {
            for (int l = 0; l < _layers.Length; l++)
            {
                var mine = _layers[l];
                var theirs = queries.Layers[l];
                if (theirs.In != mine.In || theirs.Out != mine.Out || theirs.WeightOffset != mine.WeightOffset || theirs.BiasOffset != mine.BiasOffset)
                {
                    throw new ArgumentException($"JacobianScores: query layer {l} [{theirs.Out}, {theirs.In}] at {theirs.WeightOffset} does not match [{mine.Out}, {mine.In}] at {mine.WeightOffset}.", nameof(queries));
                }

                int o = mine.Out, i = mine.In, r = _ranks[l];
                var a = theirs.Activations;
                var d = theirs.Deltas;
                if (rpe == 1 && r > 0)
                {
                    var (fa, fi) = FactorInput(l, a, q);
                    LowRankScores(_vt[l]!, _u[l]!, r, fi, o, fa, d, q, scores);
                }
                else if (rpe == 1)
                {
                    FullRowScores(l, a, d, q, tile, scores);
                }
                else if (r == 0 || (long)o * i < (long)rpe * (o + i))
                {
                    GradientScores(l, a, d, q, rpe, scores);
                }
                else
                {
                    var (fa, fi) = FactorInput(l, a, rows);
                    PositionScores(l, fa, fi, d, rows, rpe, scores);
                }

                if (_bias[l] is { } bias)
                {
                    BiasScores(bias, o, d, q, rpe, tile, scores);
                }
            }
        }
        finally
        {
            pool.Return(tile);
        }

        if (DirectionCount > 0)
        {
            DirectionScores(queries, scores);
        }
    }

    // The shared directions' part: each query's derivative along every direction, t[q, j] = ⟨∇f_q, D_j⟩ (once per batch,
    // through the layers' packed directions: a [rows, in] × D_lᵀ [in, m·out], each out-chunk dotted with δ_row), then
    // scores += t Cᵀ over all units in one GEMM (m flops per unit and query).
    private void DirectionScores(GradientFactors queries, Span<float> scores)
    {
        int m = DirectionCount, q = queries.Rows, rpe = queries.RowsPerExample, rows = q * rpe;
        var t = new float[q * m];
        const int RowBlock = 128;
        for (int l = 0; l < _layers.Length; l++)
        {
            var theirs = queries.Layers[l];
            int o = _layers[l].Out, i = _layers[l].In;
            var dw = _directionWeights[l]!;
            var product = new float[(long)Math.Min(rows, RowBlock) * m * o];
            for (int row0 = 0; row0 < rows; row0 += RowBlock)
            {
                int nr = Math.Min(RowBlock, rows - row0);
                Blas.Gemm(false, true, nr, m * o, i, 1f, theirs.Activations.AsSpan(row0 * i, nr * i), dw, 0f, product.AsSpan(0, nr * m * o));
                for (int row = 0; row < nr; row++)
                {
                    var delta = theirs.Deltas.AsSpan((row0 + row) * o, o);
                    var dst = t.AsSpan(((row0 + row) / rpe) * m, m);
                    for (int j = 0; j < m; j++)
                    {
                        dst[j] += TensorPrimitives.Dot(product.AsSpan((row * m + j) * o, o), delta);
                    }
                }
            }

            if (_directionBiases[l] is { } db)
            {
                for (int row = 0; row < rows; row++)
                {
                    var delta = theirs.Deltas.AsSpan(row * o, o);
                    var dst = t.AsSpan((row / rpe) * m, m);
                    for (int j = 0; j < m; j++)
                    {
                        dst[j] += TensorPrimitives.Dot(db.AsSpan(j * o, o), delta);
                    }
                }
            }
        }

        Blas.Gemm(false, true, q, Units, m, 1f, t, _coefficients, 1f, scores[..(q * Units)]);
    }

    // A full layer, one row per query: T = a W_uᵀ [q, ub·out] for a block of units in one GEMM, then each unit's out
    // values dotted with δ_q (no [q, out·in] outer products: those were 25 MB per batch of 64 for full sources).
    private void FullRowScores(int l, float[] a, float[] d, int q, float[] tile, Span<float> scores)
    {
        int o = _layers[l].Out, i = _layers[l].In;
        int fullBlock = (int)Math.Clamp(262_144 / ((long)q * o), 1, Units);
        for (int u0 = 0; u0 < Units; u0 += fullBlock)
        {
            int ub = Math.Min(fullBlock, Units - u0);
            var t = tile.AsSpan(0, q * ub * o);
            Blas.Gemm(false, true, q, ub * o, i, 1f, a, _full[l].AsSpan(u0 * o * i, ub * o * i), 0f, t);
            for (int qq = 0; qq < q; qq++)
            {
                var g = d.AsSpan(qq * o, o);
                for (int u = 0; u < ub; u++)
                {
                    scores[qq * Units + u0 + u] += TensorPrimitives.Dot(t.Slice((qq * ub + u) * o, o), g);
                }
            }
        }
    }

    // Several rows per query, through each query's layer gradient G_q = Σ_rows δ aᵀ ([out, in], one GEMM per query,
    // shared by all units): out·in flops per unit (full) or r·out·in (low rank), against rpe·r·(out + in) through the
    // positions; taken for every full layer and for low-rank ones when out·in < rpe·(out + in).
    private void GradientScores(int l, float[] a, float[] d, int q, int rpe, Span<float> scores)
    {
        int o = _layers[l].Out, i = _layers[l].In, r = _ranks[l];
        var g = new float[(long)q * o * i];
        for (int j = 0; j < q; j++)
        {
            Blas.Gemm(true, false, o, i, rpe, 1f, d.AsSpan(j * rpe * o, rpe * o), a.AsSpan(j * rpe * i, rpe * i), 0f, g.AsSpan(j * o * i, o * i));
        }

        if (r == 0)
        {
            // scores[q, u] += ⟨G_q, ΔW_u⟩: one GEMM over all units.
            Blas.Gemm(false, true, q, Units, o * i, 1f, g, _full[l].AsSpan(0, Units * o * i), 1f, scores[..(q * Units)]);
            return;
        }

        // ⟨G_q, U Vt⟩ = Σ_b (Uᵀ G_q)[b] · Vt[b]: T = Uᵀ_units G_q ([units·r, in]) per query, then a dot per unit.
        var vt = new float[r * i];
        int block = (int)Math.Clamp(4_000_000L / Math.Max(1L, (long)r * i), 1, Math.Max(1, Units));
        var t = new float[(long)block * r * i];
        for (int start = 0; start < Units; start += block)
        {
            int count = Math.Min(block, Units - start);
            for (int j = 0; j < q; j++)
            {
                Blas.Gemm(false, false, count * r, i, o, 1f, _u[l].AsSpan(start * r * o, count * r * o), g.AsSpan(j * o * i, o * i), 0f, t.AsSpan(0, count * r * i));
                var dst = scores.Slice(j * Units + start, count);
                for (int u = 0; u < count; u++)
                {
                    ReadOnlySpan<float> v = _vt[l].AsSpan((start + u) * r * i, r * i);
                    if (_basis[l] is not null)
                    {
                        CopyVt(l, start + u, vt);
                        v = vt;
                    }

                    dst[u] += TensorPrimitives.Dot(t.AsSpan(u * r * i, r * i), v);
                }
            }
        }
    }

    // A low-rank layer read through the rows: left[row, (u, b)] = a_row · Vt_u[b], right[row, (u, b)] = δ_row · U_u[:, b],
    // a row-wise product summed into the row's query (a in the shared input basis when the layer has one).
    private void PositionScores(int l, float[] a, int fi, float[] d, int rows, int rpe, Span<float> scores)
    {
        int o = _layers[l].Out, r = _ranks[l];
        int block = (int)Math.Clamp(4_000_000L / Math.Max(1L, (long)rows * r), 1, Math.Max(1, Units));
        var left = new float[(long)rows * block * r];
        var right = new float[left.Length];
        for (int start = 0; start < Units; start += block)
        {
            int count = Math.Min(block, Units - start), cols = count * r;
            Blas.Gemm(false, true, rows, cols, fi, 1f, a, _vt[l].AsSpan(start * r * fi, cols * fi), 0f, left.AsSpan(0, rows * cols));
            Blas.Gemm(false, true, rows, cols, o, 1f, d, _u[l].AsSpan(start * r * o, cols * o), 0f, right.AsSpan(0, rows * cols));
            for (int row = 0; row < rows; row++)
            {
                var dst = scores.Slice((row / rpe) * Units + start, count);
                for (int u = 0; u < count; u++)
                {
                    dst[u] += TensorPrimitives.Dot(left.AsSpan(row * cols + u * r, r), right.AsSpan(row * cols + u * r, r));
                }
            }
        }
    }

    // Bias: Σ_rows δ_row · Δb_u = (Σ_rows δ_row) · Δb_u, one GEMM per tile of units.
    private void BiasScores(float[] bias, int o, float[] d, int q, int rpe, float[] tile, Span<float> scores)
    {
        var dsum = d;
        if (rpe > 1)
        {
            dsum = new float[q * o];
            for (int row = 0; row < q * rpe; row++)
            {
                var s = dsum.AsSpan((row / rpe) * o, o);
                TensorPrimitives.Add(s, d.AsSpan(row * o, o), s);
            }
        }

        int block = (int)Math.Clamp(262_144 / q, 1, Units);
        for (int u0 = 0; u0 < Units; u0 += block)
        {
            int ub = Math.Min(block, Units - u0);
            var t = tile.AsSpan(0, q * ub);
            Blas.Gemm(false, true, q, ub, o, 1f, dsum, bias.AsSpan(u0 * o, ub * o), 0f, t);
            AddTile(scores, t, q, ub, u0);
        }
    }

    /// <summary>
    /// A low-rank layer's part of the scores, <c>scores[q, u] += Σ_b (Vt_u[b] · x_q)(Uᵀ_u[b] · y_q)</c>, in one pass that
    /// reads each unit's factors once per batch: units in blocks that stay in the L2 cache while every group of four
    /// queries is contracted with them (eight dot products per factor row pair, four accumulators each sharing one load
    /// of the row). Nothing is written between the two contractions, so a small batch costs about one stream of the
    /// factors, where two GEMMs with a few columns each packed and re-read them. A query's score does not depend on
    /// which other queries share its batch (the same dot products in the same order whatever the batch).
    /// </summary>
    private void LowRankScores(float[] vt, float[] ut, int r, int fi, int o, float[] x, float[] y, int q, Span<float> scores)
    {
        // About 512 KB of factors per block: resident in L2 while the query groups pass over them.
        int unitFloats = r * (fi + o);
        int block = Math.Max(1, (128 * 1024) / unitFloats);
        for (int u0 = 0; u0 < Units; u0 += block)
        {
            int ub = Math.Min(block, Units - u0);
            for (int q0 = 0; q0 < q; q0 += 4)
            {
                int nq = Math.Min(4, q - q0);
                // Rows of a missing query in the last group repeat the group's last query; their sums are dropped.
                int q1 = q0 + Math.Min(1, nq - 1), q2 = q0 + Math.Min(2, nq - 1), q3 = q0 + Math.Min(3, nq - 1);
                ref float x0 = ref x[q0 * fi];
                ref float x1 = ref x[q1 * fi];
                ref float x2 = ref x[q2 * fi];
                ref float x3 = ref x[q3 * fi];
                ref float y0 = ref y[q0 * o];
                ref float y1 = ref y[q1 * o];
                ref float y2 = ref y[q2 * o];
                ref float y3 = ref y[q3 * o];
                for (int u = u0; u < u0 + ub; u++)
                {
                    if (nq == 1)
                    {
                        // A lone query: four factor rows at a time against it (four independent accumulators, where
                        // one row at a time waited on its own accumulator's latency), no repeated work.
                        float s = 0;
                        int b = 0;
                        for (; b <= r - 4; b += 4)
                        {
                            var (c0, c1, c2, c3) = Dot4Rows(ref vt[(u * r + b) * fi], fi, ref x0, fi);
                            var (d0, d1, d2, d3) = Dot4Rows(ref ut[(u * r + b) * o], o, ref y0, o);
                            s += c0 * d0;
                            s += c1 * d1;
                            s += c2 * d2;
                            s += c3 * d3;
                        }

                        for (; b < r; b++)
                        {
                            s += Dot1(ref vt[(u * r + b) * fi], ref x0, fi) * Dot1(ref ut[(u * r + b) * o], ref y0, o);
                        }

                        scores[q0 * Units + u] += s;
                        continue;
                    }

                    if (nq == 2)
                    {
                        // Two queries: four factor rows at a time against both (eight accumulators), where a group of
                        // four would compute the pair twice.
                        float p0 = 0, p1 = 0;
                        int b = 0;
                        for (; b <= r - 4; b += 4)
                        {
                            var c = Dot4Rows2(ref vt[(u * r + b) * fi], fi, ref x0, ref x1, fi);
                            var d = Dot4Rows2(ref ut[(u * r + b) * o], o, ref y0, ref y1, o);
                            p0 += c.R0Q0 * d.R0Q0;
                            p1 += c.R0Q1 * d.R0Q1;
                            p0 += c.R1Q0 * d.R1Q0;
                            p1 += c.R1Q1 * d.R1Q1;
                            p0 += c.R2Q0 * d.R2Q0;
                            p1 += c.R2Q1 * d.R2Q1;
                            p0 += c.R3Q0 * d.R3Q0;
                            p1 += c.R3Q1 * d.R3Q1;
                        }

                        for (; b < r; b++)
                        {
                            p0 += Dot1(ref vt[(u * r + b) * fi], ref x0, fi) * Dot1(ref ut[(u * r + b) * o], ref y0, o);
                            p1 += Dot1(ref vt[(u * r + b) * fi], ref x1, fi) * Dot1(ref ut[(u * r + b) * o], ref y1, o);
                        }

                        scores[q0 * Units + u] += p0;
                        scores[(q0 + 1) * Units + u] += p1;
                        continue;
                    }

                    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                    for (int b = 0; b < r; b++)
                    {
                        var (c0, c1, c2, c3) = Dot4(ref vt[(u * r + b) * fi], ref x0, ref x1, ref x2, ref x3, fi);
                        var (d0, d1, d2, d3) = Dot4(ref ut[(u * r + b) * o], ref y0, ref y1, ref y2, ref y3, o);
                        s0 += c0 * d0;
                        s1 += c1 * d1;
                        s2 += c2 * d2;
                        s3 += c3 * d3;
                    }

                    scores[q0 * Units + u] += s0;
                    if (nq > 1)
                    {
                        scores[(q0 + 1) * Units + u] += s1;
                    }

                    if (nq > 2)
                    {
                        scores[(q0 + 2) * Units + u] += s2;
                    }

                    if (nq > 3)
                    {
                        scores[(q0 + 3) * Units + u] += s3;
                    }
                }
            }
        }
    }

    /// <summary>
    /// One dot product of <paramref name="length"/> floats, summed exactly as each of <see cref="Dot4"/>'s (one vector
    /// accumulator, then the scalar tail), so a query scores the same alone as in a group.
    /// </summary>
    private static float Dot1(ref float row, ref float m0, int length)
    {
        var a0 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref row, (nuint)i), Vector256.LoadUnsafe(ref m0, (nuint)i), a0);
        }

        float d = Vector256.Sum(a0);
        for (; i < length; i++)
        {
            d += Unsafe.Add(ref row, i) * Unsafe.Add(ref m0, i);
        }

        return d;
    }

    /// <summary>
    /// Four rows (<paramref name="stride"/> floats apart) dotted with one vector <paramref name="m"/>, the vector loaded
    /// once; each dot summed exactly as <see cref="Dot1"/> and <see cref="Dot4"/> sum theirs.
    /// </summary>
    private static (float, float, float, float) Dot4Rows(ref float row0, int stride, ref float m, int length)
    {
        ref float row1 = ref Unsafe.Add(ref row0, stride);
        ref float row2 = ref Unsafe.Add(ref row1, stride);
        ref float row3 = ref Unsafe.Add(ref row2, stride);
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero;
        var a3 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            var v = Vector256.LoadUnsafe(ref m, (nuint)i);
            a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref row0, (nuint)i), v, a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref row1, (nuint)i), v, a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref row2, (nuint)i), v, a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref row3, (nuint)i), v, a3);
        }

        float d0 = Vector256.Sum(a0), d1 = Vector256.Sum(a1), d2 = Vector256.Sum(a2), d3 = Vector256.Sum(a3);
        for (; i < length; i++)
        {
            float v = Unsafe.Add(ref m, i);
            d0 += Unsafe.Add(ref row0, i) * v;
            d1 += Unsafe.Add(ref row1, i) * v;
            d2 += Unsafe.Add(ref row2, i) * v;
            d3 += Unsafe.Add(ref row3, i) * v;
        }

        return (d0, d1, d2, d3);
    }

    /// <summary>The eight dots of four rows with two vectors (<see cref="Dot4Rows2"/>).</summary>
    private readonly record struct Dots4x2(float R0Q0, float R0Q1, float R1Q0, float R1Q1, float R2Q0, float R2Q1, float R3Q0, float R3Q1);

    /// <summary>
    /// Four rows (<paramref name="stride"/> floats apart) dotted with two vectors, each row and vector loaded once per
    /// step; each dot summed exactly as <see cref="Dot1"/> and <see cref="Dot4"/> sum theirs.
    /// </summary>
    private static Dots4x2 Dot4Rows2(ref float row0, int stride, ref float m0, ref float m1, int length)
    {
        ref float row1 = ref Unsafe.Add(ref row0, stride);
        ref float row2 = ref Unsafe.Add(ref row1, stride);
        ref float row3 = ref Unsafe.Add(ref row2, stride);
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        int i = 0;
        for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            var v0 = Vector256.LoadUnsafe(ref m0, (nuint)i);
            var v1 = Vector256.LoadUnsafe(ref m1, (nuint)i);
            var w = Vector256.LoadUnsafe(ref row0, (nuint)i);
            a00 = Vector256.FusedMultiplyAdd(w, v0, a00);
            a01 = Vector256.FusedMultiplyAdd(w, v1, a01);
            w = Vector256.LoadUnsafe(ref row1, (nuint)i);
            a10 = Vector256.FusedMultiplyAdd(w, v0, a10);
            a11 = Vector256.FusedMultiplyAdd(w, v1, a11);
            w = Vector256.LoadUnsafe(ref row2, (nuint)i);
            a20 = Vector256.FusedMultiplyAdd(w, v0, a20);
            a21 = Vector256.FusedMultiplyAdd(w, v1, a21);
            w = Vector256.LoadUnsafe(ref row3, (nuint)i);
            a30 = Vector256.FusedMultiplyAdd(w, v0, a30);
            a31 = Vector256.FusedMultiplyAdd(w, v1, a31);
        }

        float d00 = Vector256.Sum(a00), d01 = Vector256.Sum(a01), d10 = Vector256.Sum(a10), d11 = Vector256.Sum(a11);
        float d20 = Vector256.Sum(a20), d21 = Vector256.Sum(a21), d30 = Vector256.Sum(a30), d31 = Vector256.Sum(a31);
        for (; i < length; i++)
        {
            float v0 = Unsafe.Add(ref m0, i), v1 = Unsafe.Add(ref m1, i);
            float w0 = Unsafe.Add(ref row0, i), w1 = Unsafe.Add(ref row1, i), w2 = Unsafe.Add(ref row2, i), w3 = Unsafe.Add(ref row3, i);
            d00 += w0 * v0;
            d01 += w0 * v1;
            d10 += w1 * v0;
            d11 += w1 * v1;
            d20 += w2 * v0;
            d21 += w2 * v1;
            d30 += w3 * v0;
            d31 += w3 * v1;
        }

        return new Dots4x2(d00, d01, d10, d11, d20, d21, d30, d31);
    }

    /// <summary>Four dot products of one row with four others, all of <paramref name="length"/> floats; the row is loaded once.</summary>
    private static (float, float, float, float) Dot4(ref float row, ref float m0, ref float m1, ref float m2, ref float m3, int length)
    {
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero;
        var a3 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            var v = Vector256.LoadUnsafe(ref row, (nuint)i);
            a0 = Vector256.FusedMultiplyAdd(v, Vector256.LoadUnsafe(ref m0, (nuint)i), a0);
            a1 = Vector256.FusedMultiplyAdd(v, Vector256.LoadUnsafe(ref m1, (nuint)i), a1);
            a2 = Vector256.FusedMultiplyAdd(v, Vector256.LoadUnsafe(ref m2, (nuint)i), a2);
            a3 = Vector256.FusedMultiplyAdd(v, Vector256.LoadUnsafe(ref m3, (nuint)i), a3);
        }

        float d0 = Vector256.Sum(a0), d1 = Vector256.Sum(a1), d2 = Vector256.Sum(a2), d3 = Vector256.Sum(a3);
        for (; i < length; i++)
        {
            float v = Unsafe.Add(ref row, i);
            d0 += v * Unsafe.Add(ref m0, i);
            d1 += v * Unsafe.Add(ref m1, i);
            d2 += v * Unsafe.Add(ref m2, i);
            d3 += v * Unsafe.Add(ref m3, i);
        }

        return (d0, d1, d2, d3);
    }

    private void AddTile(Span<float> scores, ReadOnlySpan<float> tile, int q, int ub, int u0)
    {
        for (int qq = 0; qq < q; qq++)
        {
            var dst = scores.Slice(qq * Units + u0, ub);
            TensorPrimitives.Add(dst, tile.Slice(qq * ub, ub), dst);
        }
    }
}
