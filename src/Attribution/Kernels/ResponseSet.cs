using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Kernels;

/// <summary>
/// Parameter responses of many units (training examples or sources), stored per layer either in full
/// (<c>dW</c> [units, out, in]) or as rank-r factors of a truncated SVD (<c>Uᵀ</c> [units, r, out], <c>Vt</c> [units, r, in]),
/// biases always in full. Query-time readout contracts the model's gradient factors of the queries with every unit's
/// factors (<see cref="JacobianScores(GradientFactors, Span{float})"/>): one fused pass over each low-rank layer's factors and a
/// GEMM per full layer, no backward pass and no model maths of its own.
/// </summary>
public sealed class ResponseSet
{
    private readonly float[]?[] _full;
    private readonly float[]?[] _u;
    private readonly float[]?[] _vt;
    private readonly float[][] _bias;
    private readonly float[] _omegaCache;
    private readonly int _sketch;
    private readonly int[] _ranks;
    private readonly float[]?[] _basis;
    private readonly int[] _basisDims;

    /// <summary>Allocates storage for <paramref name="units"/> responses; <paramref name="rank"/> 0 stores every layer in full.</summary>
    public ResponseSet(MlpLayout layout, int units, int rank, ulong seed = 17)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfNegative(units);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        Layout = layout;
        Units = units;
        int layers = layout.LayerCount;
        _full = new float[]?[layers];
        _u = new float[]?[layers];
        _vt = new float[]?[layers];
        _bias = new float[layers][];
        _ranks = new int[layers];
        _basis = new float[]?[layers];
        _basisDims = new int[layers];
        int maxIn = 0;
        for (int l = 0; l < layers; l++)
        {
            int o = layout.Out(l), i = layout.In(l);
            // Low rank only pays when r (o + i) < o·i.
            bool low = rank > 0 && (long)rank * (o + i) < (long)o * i;
            _ranks[l] = low ? rank : 0;
            if (low)
            {
                _u[l] = new float[(long)units * o * rank];
                _vt[l] = new float[(long)units * rank * i];
                maxIn = Math.Max(maxIn, i);
            }
            else
            {
                _full[l] = new float[(long)units * o * i];
            }

            _bias[l] = new float[units * o];
        }

        _sketch = rank + 8;
        _omegaCache = new float[maxIn * _sketch];
        new Rng(seed).FillNormal(_omegaCache);
    }

    /// <summary>The layout.</summary>
    public MlpLayout Layout { get; }

    /// <summary>Number of units.</summary>
    public int Units { get; }

    /// <summary>Rank per layer (0 = stored in full).</summary>
    public IReadOnlyList<int> Ranks => _ranks;

    /// <summary>Floats stored per unit.</summary>
    public long FloatsPerUnit
    {
        get
        {
            long total = 0;
            for (int l = 0; l < Layout.LayerCount; l++)
            {
                int o = Layout.Out(l), i = Layout.In(l);
                total += (Ranks[l] > 0 ? (long)Ranks[l] * (o + i) : (long)o * i) + o;
            }

            return total;
        }
    }

    /// <summary>Bytes held (factors as stored, plus any shared input bases).</summary>
    public long Bytes
    {
        get
        {
            long total = 0;
            for (int l = 0; l < Layout.LayerCount; l++)
            {
                int o = Layout.Out(l), i = Layout.In(l), r = Ranks[l];
                int k = _basis[l] is null ? i : _basisDims[l];
                total += ((r > 0 ? (long)r * (o + k) : (long)o * i) + o) * Units + (_basis[l] is null ? 0 : (long)k * i);
            }

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
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)layer, (uint)Layout.LayerCount, nameof(layer));
        if (energy is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(energy), energy, "energy must be in (0, 1].");
        }

        int o = Layout.Out(layer), i = Layout.In(layer), r = _ranks[layer];
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
            return (a, Layout.In(layer));
        }

        int k = _basisDims[layer];
        var projected = new float[q * k];
        Blas.Gemm(false, true, q, k, Layout.In(layer), 1f, a, b, 0f, projected);
        return (projected, k);
    }

    /// <summary>A unit's Vᵀ [r, in] of a layer, reconstructed from the shared basis when there is one.</summary>
    private void CopyVt(int layer, int unit, Span<float> destination)
    {
        int i = Layout.In(layer), r = _ranks[layer];
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

    /// <summary>Stores a flat response for a unit, factorising the low-rank layers.</summary>
    public void Set(int unit, ReadOnlySpan<float> response)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        if (response.Length != Layout.ParameterCount)
        {
            throw new ArgumentException($"response has {response.Length} values; the layout needs {Layout.ParameterCount}.", nameof(response));
        }

        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int o = Layout.Out(l), i = Layout.In(l), r = Ranks[l];
            var w = Layout.Weight(response, l);
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
                var ut = _u[l].AsSpan(unit * o * r, o * r);
                for (int a = 0; a < o; a++)
                {
                    for (int b = 0; b < r; b++)
                    {
                        ut[b * o + a] = u[a * r + b];
                    }
                }
            }

            Layout.Bias(response, l).CopyTo(_bias[l].AsSpan(unit * o, o));
        }
    }

    /// <summary>
    /// Stores a unit from already-factorised floats, with no SVD: per layer, the full weight [out, in] when that layer's
    /// rank is 0, else U [out, r] followed by Vᵀ [r, in]; then the bias [out]. This is the layout probes travel in
    /// (<c>Probes.ProbeFormat</c>), so a Scorer loads a probe set without re-factorising every response.
    /// </summary>
    public void SetFactors(int unit, ReadOnlySpan<float> factors)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        if (factors.Length != FloatsPerUnit)
        {
            throw new ArgumentException($"factors have {factors.Length} values; ranks [{string.Join(',', _ranks)}] of {string.Join('-', Layout.Widths)} need {FloatsPerUnit}.", nameof(factors));
        }

        int at = 0;
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int o = Layout.Out(l), i = Layout.In(l), r = Ranks[l];
            if (r == 0)
            {
                factors.Slice(at, o * i).CopyTo(_full[l].AsSpan(unit * o * i, o * i));
                at += o * i;
            }
            else
            {
                ThrowIfShared(l);
                var u = factors.Slice(at, o * r);
                var ut = _u[l].AsSpan(unit * o * r, o * r);
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

            factors.Slice(at, o).CopyTo(_bias[l].AsSpan(unit * o, o));
            at += o;
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
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int o = Layout.Out(l), i = Layout.In(l), r = Ranks[l];
            if (r == 0)
            {
                _full[l].AsSpan(unit * o * i, o * i).CopyTo(factors.Slice(at, o * i));
                at += o * i;
            }
            else
            {
                var u = factors.Slice(at, o * r);
                var ut = _u[l].AsSpan(unit * o * r, o * r);
                for (int a = 0; a < o; a++)
                {
                    for (int b = 0; b < r; b++)
                    {
                        u[a * r + b] = ut[b * o + a];
                    }
                }

                CopyVt(l, unit, factors.Slice(at + o * r, r * i));
                at += r * (o + i);
            }

            _bias[l].AsSpan(unit * o, o).CopyTo(factors.Slice(at, o));
            at += o;
        }
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
        double sum = 0;
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int o = Layout.Out(l), i = Layout.In(l), r = _ranks[l];
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

            var bias = _bias[l].AsSpan(unit * o, o);
            sum += TensorPrimitives.Dot(bias, bias);
        }

        return (float)Math.Sqrt(sum);
    }

    /// <summary>Reconstructs a unit's (possibly compressed) response as a flat vector.</summary>
    public void Get(int unit, Span<float> response)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)unit, (uint)Units, nameof(unit));
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int o = Layout.Out(l), i = Layout.In(l), r = Ranks[l];
            var w = Layout.Weight(response, l);
            if (r == 0)
            {
                _full[l].AsSpan(unit * o * i, o * i).CopyTo(w);
            }
            else
            {
                var vt = new float[r * i];
                CopyVt(l, unit, vt);
                Blas.Gemm(true, false, o, i, r, 1f, _u[l].AsSpan(unit * o * r, o * r), vt, 0f, w);
            }

            _bias[l].AsSpan(unit * o, o).CopyTo(Layout.Bias(response, l));
        }
    }

    /// <summary>
    /// Forward-only readout: <c>scores[q, u] = ∂f_q(θ + t·r_u)/∂t</c> at t = 0 for every query q and unit u, summed per
    /// layer. The output's JVP along a response is linear in it: <c>Σ_l g_l · (ΔW_l a_l + Δb_l)</c>, where <c>a_l</c> is
    /// the layer's input at θ and <c>g_l = ∂f/∂z_l</c> the output's sensitivity to the layer's pre-activation: the model's
    /// per-example gradient factors of the queries (<see cref="Mlp.ForwardModeGradients"/> obtains them in forward mode).
    /// Per unit only its stored factors are touched once: <c>(Uᵀ g_l) · (Vt a_l)</c> for low-rank layers,
    /// <c>g_l W a_l</c> for full ones, so a query costs about one read of the response set. The factors are computed
    /// once per batch and shared by every response set scoring the same queries (e.g. a probe set's examples and its
    /// sources).
    /// </summary>
    public void JacobianScores(GradientFactors readout, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(readout);
        Read(readout, scores);
    }

    /// <summary>
    /// <see cref="JacobianScores(GradientFactors, Span{float})"/> for queries x [q, in] and the labels whose margins are
    /// attributed, at parameters θ (the model's forward-mode factors computed here, for one set).
    /// </summary>
    public void JacobianScores(ReadOnlySpan<float> theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels, Span<float> scores)
    {
        var model = new Mlp(Layout);
        model.LoadFrom(theta);
        Read(model.ForwardModeGradients(x, labels, labels.Length, ModelOutput.Margin), scores);
    }

    private void Read(GradientFactors readout, Span<float> scores)
    {
        if (readout.ParameterCount != Layout.ParameterCount || readout.Layers.Count != Layout.LayerCount || readout.RowsPerExample != 1)
        {
            throw new ArgumentException($"JacobianScores: the queries' gradient factors ({readout.Layers.Count} layers, {readout.ParameterCount} parameters, {readout.RowsPerExample} rows per example) are not of this set's MLP {string.Join('-', Layout.Widths)}.", nameof(readout));
        }

        int q = readout.Rows, layers = Layout.LayerCount;
        if (scores.Length < (long)q * Units)
        {
            throw new ArgumentException($"JacobianScores: scores hold {scores.Length} values; {q} queries × {Units} units need {(long)q * Units}.", nameof(scores));
        }

        if (q == 0 || Units == 0)
        {
            return;
        }

        scores[..(q * Units)].Clear();
        // Scratch from the shared pool (no large-object allocation per batch): tiles of at most 256K floats.
        const int TileFloats = 262_144;
        var pool = ArrayPool<float>.Shared;
        var tile = pool.Rent(Math.Max(TileFloats, q * Layout.Widths.Max()));
        try
        {
            for (int l = 0; l < layers; l++)
            {
                int o = Layout.Out(l), i = Layout.In(l), r = _ranks[l];
                var a = readout.Layers[l].Activations;
                var gl = readout.Layers[l].Deltas;
                if (r > 0)
                {
                    var (fa, fi) = FactorInput(l, a, q);
                    LowRankScores(_vt[l]!, _u[l]!, r, fi, o, fa, gl, q, scores);
                }
                else
                {
                    // g_q W_u a_q: T = a W_uᵀ [q, ub·out] for a block of units in one GEMM, then each unit's out values
                    // dotted with g_q (no [q, out·in] outer products: those were 25 MB per batch of 64 for full sources).
                    int fullBlock = (int)Math.Clamp(TileFloats / ((long)q * o), 1, Units);
                    for (int u0 = 0; u0 < Units; u0 += fullBlock)
                    {
                        int ub = Math.Min(fullBlock, Units - u0);
                        var t = tile.AsSpan(0, q * ub * o);
                        Blas.Gemm(false, true, q, ub * o, i, 1f, a, _full[l].AsSpan(u0 * o * i, ub * o * i), 0f, t);
                        for (int qq = 0; qq < q; qq++)
                        {
                            var g = gl.AsSpan(qq * o, o);
                            for (int u = 0; u < ub; u++)
                            {
                                scores[qq * Units + u0 + u] += TensorPrimitives.Dot(t.Slice((qq * ub + u) * o, o), g);
                            }
                        }
                    }
                }

                // Bias: g_q · Δb_u.
                int block = (int)Math.Clamp(TileFloats / q, 1, Units);
                for (int u0 = 0; u0 < Units; u0 += block)
                {
                    int ub = Math.Min(block, Units - u0);
                    var t = tile.AsSpan(0, q * ub);
                    Blas.Gemm(false, true, q, ub, o, 1f, gl, _bias[l].AsSpan(u0 * o, ub * o), 0f, t);
                    AddTile(scores, t, q, ub, u0);
                }
            }
        }
        finally
        {
            pool.Return(tile);
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
                        // A lone query: one dot per row, no repeated work.
                        float s = 0;
                        for (int b = 0; b < r; b++)
                        {
                            s += Dot1(ref vt[(u * r + b) * fi], ref x0, fi) * Dot1(ref ut[(u * r + b) * o], ref y0, o);
                        }

                        scores[q0 * Units + u] += s;
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

    /// <summary>One dot product of <paramref name="length"/> floats (two accumulators).</summary>
    private static float Dot1(ref float row, ref float m0, int length)
    {
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        int i = 0, w = Vector256<float>.Count;
        for (; i <= length - (2 * w); i += 2 * w)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref row, (nuint)i), Vector256.LoadUnsafe(ref m0, (nuint)i), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref row, (nuint)(i + w)), Vector256.LoadUnsafe(ref m0, (nuint)(i + w)), a1);
        }

        for (; i <= length - w; i += w)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref row, (nuint)i), Vector256.LoadUnsafe(ref m0, (nuint)i), a0);
        }

        float d = Vector256.Sum(a0 + a1);
        for (; i < length; i++)
        {
            d += Unsafe.Add(ref row, i) * Unsafe.Add(ref m0, i);
        }

        return d;
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

    /// <summary>
    /// Exact two-forward-pass readout: <c>[f_q(θ + ε r_u) − f_q(θ − ε r_u)] / (2ε)</c> for every query and unit.
    /// Reference for the JVP readout (they agree to O(ε²)); costs two full forward passes per unit.
    /// </summary>
    public void FiniteDifferenceScores(ReadOnlySpan<float> theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels, float epsilon, Span<float> scores)
    {
        int q = labels.Length, p = Layout.ParameterCount;
        var r = new float[p];
        var shifted = new float[p];
        var fp = new float[q];
        var fm = new float[q];
        var model = new Mlp(Layout);
        for (int u = 0; u < Units; u++)
        {
            Get(u, r);
            TensorPrimitives.MultiplyAdd(r, epsilon, theta, shifted);
            model.LoadFrom(shifted);
            model.Margins(x, labels, q, fp);
            TensorPrimitives.MultiplyAdd(r, -epsilon, theta, shifted);
            model.LoadFrom(shifted);
            model.Margins(x, labels, q, fm);
            for (int qq = 0; qq < q; qq++)
            {
                scores[qq * Units + u] = (float)(((double)fp[qq] - fm[qq]) / (2.0 * epsilon));
            }
        }
    }
}
