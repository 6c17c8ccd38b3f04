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
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentOutOfRangeException.ThrowIfNegative(units);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
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

            bool low = rank > 0 && (long)rank * (o + i) < (long)o * i;
            _ranks[l] = low ? rank : 0;
            if (low)
            {
                _ut[l] = new float[(long)units * rank * o];
                _vt[l] = new float[(long)units * rank * i];
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
