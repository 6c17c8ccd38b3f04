using System.Numerics.Tensors;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Kernels;

/// <summary>
/// Parameter responses of many units over any model's linear layers (the layers of its <see cref="GradientFactors"/>:
/// for a GPT the attention, MLP and head projections), stored per layer either in full (<c>ΔW</c> [units, out, in]) or
/// as rank-r factors of a truncated SVD (<c>Uᵀ</c> [units, r, out], <c>Vt</c> [units, r, in]), biases in full. The
/// response's other parameters (embeddings, LayerNorms) are not stored: a probe is the response restricted to the
/// linear layers, as the gradient methods' per-example gradients are. The model-agnostic counterpart of
/// <see cref="ResponseSet"/> (whose flat MLP layout has one row per example); here a query contributes R rows (its
/// positions) per layer and the readout sums over them.
/// </summary>
public sealed class LayerResponses
{
    private readonly LinearFactors[] _layers;
    private readonly int[] _ranks;
    private readonly float[]?[] _full;
    private readonly float[]?[] _ut;
    private readonly float[]?[] _vt;
    private readonly float[]?[] _bias;
    private readonly float[] _omega;
    private readonly int _sketch;

    /// <summary>
    /// Allocates storage for <paramref name="units"/> responses of a model with <paramref name="parameterCount"/>
    /// parameters whose linear layers are <paramref name="layers"/> (offsets and shapes; their factor rows are not
    /// read). <paramref name="rank"/> 0 stores every layer in full; a layer is stored low-rank only when
    /// <c>r (out + in) &lt; out · in</c>.
    /// </summary>
    public LayerResponses(int parameterCount, IReadOnlyList<LinearFactors> layers, int units, int rank, ulong seed = 17)
        : this(parameterCount, layers, units, RanksFor(layers, rank), seed)
    {
    }

    /// <summary>
    /// Storage with an explicit rank per layer (0 = full), e.g. the ranks a probe set was written at
    /// (<see cref="LayersOf"/>); the sketch for <see cref="Set"/> is sized for the largest rank.
    /// </summary>
    public LayerResponses(int parameterCount, IReadOnlyList<LinearFactors> layers, int units, IReadOnlyList<int> ranks, ulong seed = 17)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentOutOfRangeException.ThrowIfNegative(units);
        if (ranks.Count != layers.Count || ranks.Any(r => r < 0))
        {
            throw new ArgumentException($"{ranks.Count} ranks for {layers.Count} layers; give one non-negative rank per layer.", nameof(ranks));
        }

        int rank = ranks.Count == 0 ? 0 : ranks.Max();
        ParameterCount = parameterCount;
        Units = units;
        _layers = [.. layers];
        int count = _layers.Length, maxIn = 1;
        _ranks = new int[count];
        _full = new float[]?[count];
        _ut = new float[]?[count];
        _vt = new float[]?[count];
        _bias = new float[]?[count];
        for (int l = 0; l < count; l++)
        {
            var layer = _layers[l];
            int o = layer.Out, i = layer.In;
            if (layer.WeightOffset < 0 || (long)layer.WeightOffset + (long)o * i > parameterCount || (layer.BiasOffset >= 0 && layer.BiasOffset + o > parameterCount))
            {
                throw new ArgumentException($"layer {l} [{o}, {i}] at offset {layer.WeightOffset} (bias {layer.BiasOffset}) lies outside {parameterCount} parameters.", nameof(layers));
            }

            int lr = ranks[l];
            _ranks[l] = lr;
            if (lr > 0)
            {
                _ut[l] = new float[(long)units * lr * o];
                _vt[l] = new float[(long)units * lr * i];
                maxIn = Math.Max(maxIn, i);
            }
            else
            {
                _full[l] = new float[(long)units * o * i];
            }

            _bias[l] = layer.BiasOffset >= 0 ? new float[(long)units * o] : null;
        }

        _sketch = rank + 8;
        _omega = new float[maxIn * _sketch];
        new Rng(seed).FillNormal(_omega);
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

    /// <summary>Floats stored per unit.</summary>
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

            return total;
        }
    }

    /// <summary>Bytes held.</summary>
    public long Bytes => FloatsPerUnit * Units * sizeof(float);

    /// <summary>Stores a unit's flat response (p floats), factorising the low-rank layers; other parameters are dropped.</summary>
    public void Set(int unit, ReadOnlySpan<float> response)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        if (response.Length != ParameterCount)
        {
            throw new ArgumentException($"response has {response.Length} values; the model has {ParameterCount}.", nameof(response));
        }

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
                var u = new float[o * r];
                LowRank.Factorize(w, o, i, r, _omega, _sketch, u, _vt[l].AsSpan(unit * r * i, r * i));
                var ut = _ut[l].AsSpan(unit * r * o, r * o);
                for (int a = 0; a < o; a++)
                {
                    for (int b = 0; b < r; b++)
                    {
                        ut[b * o + a] = u[a * r + b];
                    }
                }
            }

            if (_bias[l] is { } bias)
            {
                response.Slice(layer.BiasOffset, o).CopyTo(bias.AsSpan(unit * o, o));
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

    /// <summary>
    /// Stores a unit from already-factorised floats (no SVD), laid out as <see cref="Tensors"/> says: per layer the full
    /// weight [out, in] when its rank is 0, else U [out, r] then Vt [r, in]; then the bias [out].
    /// </summary>
    public void SetFactors(int unit, ReadOnlySpan<float> factors)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        if (factors.Length != FloatsPerUnit)
        {
            throw new ArgumentException($"factors have {factors.Length} values; this set stores {FloatsPerUnit} per unit.", nameof(factors));
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
                var u = factors.Slice(at, o * r);
                var ut = _ut[l].AsSpan(unit * r * o, r * o);
                for (int a = 0; a < o; a++)
                {
                    for (int b = 0; b < r; b++)
                    {
                        ut[b * o + a] = u[a * r + b];
                    }
                }

                factors.Slice(at + o * r, r * i).CopyTo(_vt[l].AsSpan(unit * r * i, r * i));
                at += r * (o + i);
            }

            if (_bias[l] is { } bias)
            {
                factors.Slice(at, o).CopyTo(bias.AsSpan(unit * o, o));
                at += o;
            }
        }
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
                var u = factors.Slice(at, o * r);
                var ut = _ut[l].AsSpan(unit * r * o, r * o);
                for (int a = 0; a < o; a++)
                {
                    for (int b = 0; b < r; b++)
                    {
                        u[a * r + b] = ut[b * o + a];
                    }
                }

                _vt[l].AsSpan(unit * r * i, r * i).CopyTo(factors.Slice(at + o * r, r * i));
                at += r * (o + i);
            }

            if (_bias[l] is { } bias)
            {
                bias.AsSpan(unit * o, o).CopyTo(factors.Slice(at, o));
                at += o;
            }
        }
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
                // W = U Vt = (Uᵀ)ᵀ Vt.
                Blas.Gemm(true, false, o, i, r, 1f, _ut[l].AsSpan(unit * r * o, r * o), _vt[l].AsSpan(unit * r * i, r * i), 0f, w);
            }

            if (_bias[l] is { } bias)
            {
                bias.AsSpan(unit * o, o).CopyTo(response.Slice(layer.BiasOffset, o));
            }
        }
    }

    /// <summary>
    /// Batched readout: <c>scores[q, u] = Σ_l Σ_rows δ_row · (ΔW_{l,u} a_row + Δb_{l,u})</c>, the directional derivative
    /// of each query's output along every unit's stored response, from the queries' per-example gradient factors (the
    /// layer inputs a and output sensitivities δ of every position). Per layer it forms each query's layer gradient
    /// <c>G_q = Σ_rows δ aᵀ</c> once and reads full layers with one GEMM over all units (<c>⟨G_q, ΔW_u⟩</c>) and low-rank ones
    /// as <c>Σ_b (Uᵀ G_q)_b · Vt_b</c>; a low-rank layer wider than a query's positions reads through the positions
    /// instead (<c>A Vtᵀ</c>, <c>D U</c>, a row-wise product), whichever costs fewer flops.
    /// </summary>
    public void JacobianScores(GradientFactors queries, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(queries);
        if (queries.ParameterCount != ParameterCount || queries.Layers.Count != _layers.Length)
        {
            throw new ArgumentException($"JacobianScores: the queries' factors ({queries.Layers.Count} layers, {queries.ParameterCount} parameters) are not of this set's model ({_layers.Length} layers, {ParameterCount} parameters).", nameof(queries));
        }

        int q = queries.Rows, rows = q * queries.RowsPerExample, rpe = queries.RowsPerExample;
        if (scores.Length < (long)q * Units)
        {
            throw new ArgumentException($"JacobianScores: scores hold {scores.Length} values; {q} queries × {Units} units need {(long)q * Units}.", nameof(scores));
        }

        scores[..(q * Units)].Clear();
        if (q == 0 || Units == 0)
        {
            return;
        }

        for (int l = 0; l < _layers.Length; l++)
        {
            var mine = _layers[l];
            var theirs = queries.Layers[l];
            if (theirs.In != mine.In || theirs.Out != mine.Out || theirs.WeightOffset != mine.WeightOffset)
            {
                throw new ArgumentException($"JacobianScores: query layer {l} [{theirs.Out}, {theirs.In}] at {theirs.WeightOffset} does not match [{mine.Out}, {mine.In}] at {mine.WeightOffset}.", nameof(queries));
            }

            int o = mine.Out, i = mine.In, r = _ranks[l];
            var a = theirs.Activations.AsSpan(0, rows * i);
            var d = theirs.Deltas.AsSpan(0, rows * o);
            // Per query and unit, contracting through the query's layer gradient G_q = Σ_rows δ aᵀ ([out, in], one GEMM per
            // query, shared by all units) costs out·in (full) or r·out·in (low-rank) flops; through the positions, rpe·r·(out +
            // in). The cheaper one is taken (G_q for full layers always; for low-rank ones when out·in < rpe·(out + in)).
            if (r == 0 || (long)o * i < (long)rpe * (o + i))
            {
                var g = new float[(long)q * o * i];
                for (int j = 0; j < q; j++)
                {
                    Blas.Gemm(true, false, o, i, rpe, 1f, d.Slice(j * rpe * o, rpe * o), a.Slice(j * rpe * i, rpe * i), 0f, g.AsSpan(j * o * i, o * i));
                }

                if (r == 0)
                {
                    // scores[q, u] += ⟨G_q, ΔW_u⟩: one GEMM over all units.
                    Blas.Gemm(false, true, q, Units, o * i, 1f, g, _full[l].AsSpan(0, Units * o * i), 1f, scores[..(q * Units)]);
                }
                else
                {
                    // ⟨G_q, U Vt⟩ = Σ_b (Uᵀ G_q)[b] · Vt[b]: T = Uᵀ_units G_q ([units·r, in]) per query, then a dot per unit.
                    int block = (int)Math.Clamp(4_000_000L / Math.Max(1L, (long)r * i), 1, Math.Max(1, Units));
                    var t = new float[(long)block * r * i];
                    for (int start = 0; start < Units; start += block)
                    {
                        int count = Math.Min(block, Units - start);
                        for (int j = 0; j < q; j++)
                        {
                            Blas.Gemm(false, false, count * r, i, o, 1f, _ut[l].AsSpan(start * r * o, count * r * o), g.AsSpan(j * o * i, o * i), 0f, t.AsSpan(0, count * r * i));
                            var dst = scores.Slice(j * Units + start, count);
                            for (int u = 0; u < count; u++)
                            {
                                dst[u] += TensorPrimitives.Dot(t.AsSpan(u * r * i, r * i), _vt[l].AsSpan((start + u) * r * i, r * i));
                            }
                        }
                    }
                }
            }
            else
            {
                int block = (int)Math.Clamp(4_000_000L / Math.Max(1L, (long)rows * r), 1, Math.Max(1, Units));
                var left = new float[(long)rows * block * r];
                var right = new float[left.Length];
                for (int start = 0; start < Units; start += block)
                {
                    int count = Math.Min(block, Units - start), cols = count * r;
                    // left[row, (u, b)] = a_row · Vt_u[b], right[row, (u, b)] = δ_row · U_u[:, b].
                    Blas.Gemm(false, true, rows, cols, i, 1f, a, _vt[l].AsSpan(start * r * i, cols * i), 0f, left.AsSpan(0, rows * cols));
                    Blas.Gemm(false, true, rows, cols, o, 1f, d, _ut[l].AsSpan(start * r * o, cols * o), 0f, right.AsSpan(0, rows * cols));
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

            if (_bias[l] is { } bias)
            {
                // Σ_rows δ_row · Δb_u = (Σ_rows δ_row) · Δb_u.
                var dsum = new float[q * o];
                for (int row = 0; row < rows; row++)
                {
                    var s = dsum.AsSpan((row / rpe) * o, o);
                    TensorPrimitives.Add(s, d.Slice(row * o, o), s);
                }

                var part = new float[(long)q * Units];
                Blas.Gemm(false, true, q, Units, o, 1f, dsum, bias.AsSpan(0, Units * o), 0f, part);
                TensorPrimitives.Add(scores[..(q * Units)], part, scores[..(q * Units)]);
            }
        }
    }
}
