using System.Buffers;
using System.Numerics.Tensors;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Kernels;

/// <summary>
/// Parameter responses of many units (training examples or sources), stored per layer either in full
/// (<c>dW</c> [units, out, in]) or as rank-r factors of a truncated SVD (<c>Uᵀ</c> [units, r, out], <c>Vt</c> [units, r, in]),
/// biases always in full. Query-time readout is a batched forward-mode JVP of the query margins along every unit's
/// response: a few large GEMMs per layer, no backward pass.
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
    /// Batched forward-mode readout: <c>scores[q, u] = ∂f_q(θ + t·r_u)/∂t</c> at t = 0 for every query q and unit u,
    /// where f is the margin of <paramref name="labels"/>. <paramref name="scores"/> is [queries, Units] row-major.
    /// Units are processed in blocks of <paramref name="blockUnits"/> so the tangent buffers stay bounded; 0 picks
    /// blocks of about 16,384 (unit, query) pairs, so a single query runs all units in a few large BLAS calls.
    /// </summary>
    public void JvpScores(ReadOnlySpan<float> theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels, Span<float> scores, int blockUnits = 0)
    {
        if (MarginTangents(nameof(JvpScores), theta, x, labels, scores) is not { } start)
        {
            return;
        }

        var (cache, dz) = start;
        int q = labels.Length, layers = Layout.LayerCount, classes = Layout.Widths[^1];
        blockUnits = blockUnits > 0 ? blockUnits : Math.Min(Math.Max(16384 / q, 64), Units);
        var tile = new float[blockUnits * q];
        // ReLU masks of the queries' hidden activations at θ as 0/1 floats, so masking is a vectorised multiply.
        var masks = new float[layers][];
        for (int l = 0; l < layers - 1; l++)
        {
            var act = cache.Inputs[l + 1];
            masks[l] = new float[act.Length];
            for (int k = 0; k < act.Length; k++)
            {
                masks[l][k] = act[k] > 0f ? 1f : 0f;
            }
        }

        // Tangent buffers reused across blocks (two, ping-ponged between layers).
        int maxOut = Enumerable.Range(0, layers).Max(Layout.Out);
        var bufA = new float[(long)blockUnits * q * maxOut];
        var bufB = new float[bufA.Length];
        for (int u0 = 0; u0 < Units; u0 += blockUnits)
        {
            int ub = Math.Min(blockUnits, Units - u0);
            Span<float> t = [];
            for (int l = 0; l < layers; l++)
            {
                int o = Layout.Out(l), i = Layout.In(l), r = Ranks[l];
                var a = cache.Inputs[l];
                var zt = (l % 2 == 0 ? bufA : bufB).AsSpan(0, ub * q * o);
                if (l > 0)
                {
                    // Propagate every unit's input tangent through W_l in one GEMM: [ub·q, in] × W_lᵀ.
                    Blas.Gemm(false, true, ub * q, o, i, 1f, t, Layout.Weight(theta, l), 0f, zt);
                }
                else
                {
                    zt.Clear();
                }

                if (r > 0)
                {
                    // Coefficients Vtᵀ-projections of the layer input for all units at once: [ub·r, in] × [q, in]ᵀ.
                    var c = new float[ub * r * q];
                    var (fa, fi) = FactorInput(l, a, q);
                    Blas.Gemm(false, true, ub * r, q, fi, 1f, _vt[l].AsSpan(u0 * r * fi, ub * r * fi), fa, 0f, c);
                    for (int u = 0; u < ub; u++)
                    {
                        var ut = _u[l].AsSpan((u0 + u) * o * r, o * r);
                        var cu = c.AsSpan(u * r * q, r * q);
                        if (q >= 16)
                        {
                            Blas.Gemm(true, false, q, o, r, 1f, cu, ut, 1f, zt.Slice(u * q * o, q * o));
                            continue;
                        }

                        // Few queries: r axpys of length out per query beat a tiny GEMM call.
                        for (int qq = 0; qq < q; qq++)
                        {
                            var dst = zt.Slice((u * q + qq) * o, o);
                            for (int b = 0; b < r; b++)
                            {
                                TensorPrimitives.MultiplyAdd(ut.Slice(b * o, o), cu[b * q + qq], dst, dst);
                            }
                        }
                    }
                }
                else
                {
                    // [q, in] × [ub·out, in]ᵀ → [q, ub·out], then scatter-add per unit.
                    var full = new float[q * ub * o];
                    Blas.Gemm(false, true, q, ub * o, i, 1f, a, _full[l].AsSpan(u0 * o * i, ub * o * i), 0f, full);
                    for (int u = 0; u < ub; u++)
                    {
                        for (int qq = 0; qq < q; qq++)
                        {
                            var dst = zt.Slice((u * q + qq) * o, o);
                            TensorPrimitives.Add(dst, full.AsSpan(qq * ub * o + u * o, o), dst);
                        }
                    }
                }

                for (int u = 0; u < ub; u++)
                {
                    var bias = _bias[l].AsSpan((u0 + u) * o, o);
                    for (int qq = 0; qq < q; qq++)
                    {
                        var row = zt.Slice((u * q + qq) * o, o);
                        if (l < layers - 1)
                        {
                            // (row + bias) ⊙ ReLU mask of the query's activation at θ.
                            TensorPrimitives.AddMultiply(row, bias, masks[l].AsSpan(qq * o, o), row);
                        }
                        else
                        {
                            TensorPrimitives.Add(row, bias, row);
                        }
                    }
                }

                t = zt;
            }

            // Contract the logit tangents with ∂margin/∂logits.
            for (int u = 0; u < ub; u++)
            {
                for (int qq = 0; qq < q; qq++)
                {
                    tile[u * q + qq] = TensorPrimitives.Dot(t.Slice((u * q + qq) * classes, classes), dz.AsSpan(qq * classes, classes));
                }
            }

            for (int qq = 0; qq < q; qq++)
            {
                for (int u = 0; u < ub; u++)
                {
                    scores[qq * Units + u0 + u] = tile[u * q + qq];
                }
            }
        }
    }

    /// <summary>Checks the score buffer, runs the queries forward and returns ∂margin/∂logits; null when there is nothing to score.</summary>
    private (ForwardCache Cache, float[] Dz)? MarginTangents(string caller, ReadOnlySpan<float> theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels, Span<float> scores)
    {
        int q = labels.Length, classes = Layout.Widths[^1];
        if (scores.Length < (long)q * Units)
        {
            throw new ArgumentException($"{caller}: scores hold {scores.Length} values; {q} queries × {Units} units need {(long)q * Units}.", nameof(scores));
        }

        if (q == 0 || Units == 0)
        {
            return null;
        }

        var cache = MlpMath.Forward(Layout, theta, x, q);
        var dz = new float[q * classes];
        MlpMath.Output(OutputKind.Margin, cache.Logits, labels, classes, new float[q], dz);
        return (cache, dz);
    }

    /// <summary>
    /// The same scores as <see cref="JvpScores"/>, summed per layer instead of propagated per unit. The margin's JVP
    /// along a response is linear in it: <c>Σ_l g_l · (ΔW_l a_l + Δb_l)</c>, where <c>a_l</c> is the layer's input at θ
    /// and <c>g_l = ∂f/∂z_l</c> the margin's sensitivity to the layer's pre-activation. The <c>g_l</c> are obtained in
    /// forward mode (identity tangents seeded at <c>z_l</c> and pushed through the layers above: a few small GEMMs per
    /// query, no backward pass). Then per unit only its stored factors are touched once:
    /// <c>(Uᵀ g_l) · (Vt a_l)</c> for low-rank layers, <c>g_l W a_l</c> for full ones, so a query costs about one read
    /// of the response set instead of a forward pass of the upper layers per unit.
    /// </summary>
    public void JacobianScores(ReadOnlySpan<float> theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels, Span<float> scores)
    {
        if (MarginTangents(nameof(JacobianScores), theta, x, labels, scores) is not { } start)
        {
            return;
        }

        var (cache, dz) = start;
        JacobianScores(new JacobianReadout(Layout, cache, ForwardSensitivities(Layout, theta, cache, dz, labels.Length), labels.Length), scores);
    }

    /// <summary>
    /// The per-query part of <see cref="JacobianScores(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{int}, Span{float})"/>
    /// (forward pass and sensitivities), computed once and shared by every response set of the same layout that scores
    /// the same queries (e.g. a probe set's examples and its sources).
    /// </summary>
    public static JacobianReadout PrepareJacobian(MlpLayout layout, ReadOnlySpan<float> theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels)
    {
        ArgumentNullException.ThrowIfNull(layout);
        int q = labels.Length, classes = layout.Widths[^1];
        var cache = MlpMath.Forward(layout, theta, x, q);
        var dz = new float[q * classes];
        MlpMath.Output(OutputKind.Margin, cache.Logits, labels, classes, new float[q], dz);
        return new JacobianReadout(layout, cache, ForwardSensitivities(layout, theta, cache, dz, q), q);
    }

    /// <summary>Scores <paramref name="readout"/>'s queries against every unit ([queries, units] row-major).</summary>
    public void JacobianScores(JacobianReadout readout, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(readout);
        if (!readout.Layout.Widths.SequenceEqual(Layout.Widths))
        {
            throw new ArgumentException($"JacobianScores: the readout was prepared for layout {string.Join('-', readout.Layout.Widths)}, this set is {string.Join('-', Layout.Widths)}.", nameof(readout));
        }

        int q = readout.Queries, layers = Layout.LayerCount;
        if (scores.Length < (long)q * Units)
        {
            throw new ArgumentException($"JacobianScores: scores hold {scores.Length} values; {q} queries × {Units} units need {(long)q * Units}.", nameof(scores));
        }

        if (q == 0 || Units == 0)
        {
            return;
        }

        var cache = readout.Cache;
        var g = readout.Sensitivities;
        scores[..(q * Units)].Clear();
        // Unit blocks bound the coefficient buffers to about 4M floats.
        int maxR = Math.Max(1, _ranks.Max());
        int block = (int)Math.Clamp(4_000_000L / ((long)maxR * q), 1, Units);
        // Scratch from the shared pool: at a few queries per batch these buffers (up to ~16 MB) would otherwise be
        // large-object allocations per batch, each pushing the collector towards a blocking gen-2 collection.
        var pool = ArrayPool<float>.Shared;
        var tile = pool.Rent(q * block);
        int coefficients = block * maxR * q;
        var c = pool.Rent(coefficients);
        var d = pool.Rent(coefficients);
        int outerLength = 0;
        for (int l = 0; l < layers; l++)
        {
            outerLength = _ranks[l] > 0 ? outerLength : Math.Max(outerLength, q * Layout.Out(l) * Layout.In(l));
        }

        var outer = outerLength > 0 ? pool.Rent(outerLength) : [];
        try
        {
            for (int l = 0; l < layers; l++)
            {
                int o = Layout.Out(l), i = Layout.In(l), r = _ranks[l];
                var a = cache.Inputs[l];
                var (fa, fi) = r > 0 ? FactorInput(l, a, q) : (a, i);
                for (int u0 = 0; u0 < Units; u0 += block)
                {
                    int ub = Math.Min(block, Units - u0);
                    var t = tile.AsSpan(0, q * ub);
                    if (r > 0)
                    {
                        // c[(u,b), q] = Vt_u[b] · a_q and d[(u,b), q] = U_u[:, b] · g_q, one GEMM each over every unit.
                        var cs = c.AsSpan(0, ub * r * q);
                        var ds = d.AsSpan(0, cs.Length);
                        Blas.Gemm(false, true, ub * r, q, fi, 1f, _vt[l].AsSpan(u0 * r * fi, ub * r * fi), fa, 0f, cs);
                        Blas.Gemm(false, true, ub * r, q, o, 1f, _u[l].AsSpan(u0 * o * r, ub * o * r), g[l], 0f, ds);
                        // Σ_b c[(u,b), q] d[(u,b), q]: rows of q contiguous values, multiplied and summed row by row
                        // (vectorised over the queries), then scattered to the [query, unit] layout of the scores.
                        var sums = t[..(ub * q)];
                        for (int u = 0; u < ub; u++)
                        {
                            var dst = sums.Slice(u * q, q);
                            TensorPrimitives.Multiply(cs.Slice(u * r * q, q), ds.Slice(u * r * q, q), dst);
                            for (int b = 1; b < r; b++)
                            {
                                int row = ((u * r) + b) * q;
                                TensorPrimitives.MultiplyAdd(cs.Slice(row, q), ds.Slice(row, q), dst, dst);
                            }

                            for (int qq = 0; qq < q; qq++)
                            {
                                scores[qq * Units + u0 + u] += dst[qq];
                            }
                        }
                    }
                    else
                    {
                        // g_q W_u a_q = ⟨W_u, g_q a_qᵀ⟩: outer products [q, out·in] against [ub, out·in].
                        var os = outer.AsSpan(0, q * o * i);
                        for (int qq = 0; qq < q; qq++)
                        {
                            for (int k = 0; k < o; k++)
                            {
                                TensorPrimitives.Multiply(a.AsSpan(qq * i, i), g[l][qq * o + k], os.Slice((qq * o + k) * i, i));
                            }
                        }

                        Blas.Gemm(false, true, q, ub, o * i, 1f, os, _full[l].AsSpan(u0 * o * i, ub * o * i), 0f, t);
                        AddTile(scores, t, q, ub, u0);
                    }

                    // Bias: g_q · Δb_u.
                    Blas.Gemm(false, true, q, ub, o, 1f, g[l], _bias[l].AsSpan(u0 * o, ub * o), 0f, t);
                    AddTile(scores, t, q, ub, u0);
                }
            }
        }
        finally
        {
            pool.Return(tile);
            pool.Return(c);
            pool.Return(d);
            if (outer.Length > 0)
            {
                pool.Return(outer);
            }
        }
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
    /// <c>g_l[q, :] = ∂f_q/∂z_l</c> for every layer, in forward mode: for each query, the identity tangent at z_l is
    /// masked by the ReLU derivative and pushed through W_{l+1}, …, W_{L−1} (GEMMs of width out_l), then contracted with
    /// ∂f/∂logits. The last layer's is ∂f/∂logits itself.
    /// </summary>
    private static float[][] ForwardSensitivities(MlpLayout layout, ReadOnlySpan<float> theta, ForwardCache cache, float[] dz, int q)
    {
        int layers = layout.LayerCount, classes = layout.Widths[^1];
        var g = new float[layers][];
        g[layers - 1] = dz;
        // Two scratch buffers, reused for every query and layer: the tangents [o, width] before and after a layer.
        int widest = 0;
        for (int l = 0; l < layers - 1; l++)
        {
            for (int k = l + 1; k < layers; k++)
            {
                widest = Math.Max(widest, layout.Out(l) * layout.Out(k));
            }
        }

        var t = new float[widest];
        var next = new float[widest];
        for (int l = 0; l < layers - 1; l++)
        {
            int o = layout.Out(l);
            g[l] = new float[q * o];
            for (int qq = 0; qq < q; qq++)
            {
                // Tangents of a_{l+1} for the o seeds e_j at z_l are diag(ReLU'(z_l)) as rows [o, o]; pushed through
                // W_{l+1} that is row j = ReLU'(z_l)_j · W_{l+1}[:, j], a masked transpose (no GEMM on the diagonal).
                var act = cache.Inputs[l + 1].AsSpan(qq * o, o);
                int width = layout.Out(l + 1);
                var w = layout.Weight(theta, l + 1);
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

                for (int k = l + 1; k < layers; k++)
                {
                    int ok = layout.Out(k);
                    if (k > l + 1)
                    {
                        var product = next.AsSpan(0, o * ok);
                        Blas.Gemm(false, true, o, ok, width, 1f, cur, layout.Weight(theta, k), 0f, product);
                        (t, next) = (next, t);
                        cur = product;
                    }

                    if (k < layers - 1)
                    {
                        var mask = cache.Inputs[k + 1].AsSpan(qq * ok, ok);
                        for (int j = 0; j < o; j++)
                        {
                            var row = cur.Slice(j * ok, ok);
                            for (int m = 0; m < ok; m++)
                            {
                                if (mask[m] <= 0f)
                                {
                                    row[m] = 0f;
                                }
                            }
                        }
                    }

                    width = ok;
                }

                // cur is [o, classes]: the logits' tangent per seed; contract with ∂f/∂logits.
                var dq = dz.AsSpan(qq * classes, classes);
                for (int j = 0; j < o; j++)
                {
                    g[l][qq * o + j] = TensorPrimitives.Dot(cur.Slice(j * classes, classes), dq);
                }
            }
        }

        return g;
    }

    /// <summary>
    /// Exact two-forward-pass readout: <c>[f_q(θ + ε r_u) − f_q(θ − ε r_u)] / (2ε)</c> for every query and unit.
    /// Reference for the JVP readout (they agree to O(ε²)); costs two full forward passes per unit.
    /// </summary>
    public void FiniteDifferenceScores(ReadOnlySpan<float> theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels, float epsilon, Span<float> scores)
    {
        int q = labels.Length, p = Layout.ParameterCount;
        var r = new float[p];
        var plus = new float[p];
        var minus = new float[p];
        for (int u = 0; u < Units; u++)
        {
            Get(u, r);
            TensorPrimitives.MultiplyAdd(r, epsilon, theta, plus);
            TensorPrimitives.MultiplyAdd(r, -epsilon, theta, minus);
            var fp = MlpMath.Values(OutputKind.Margin, Layout, plus, x, labels);
            var fm = MlpMath.Values(OutputKind.Margin, Layout, minus, x, labels);
            for (int qq = 0; qq < q; qq++)
            {
                scores[qq * Units + u] = (float)(((double)fp[qq] - fm[qq]) / (2.0 * epsilon));
            }
        }
    }
}

/// <summary>
/// What the Jacobian readout needs of a batch of queries, independent of the responses scored against it: the forward
/// pass at θ and the margin's pre-activation sensitivities per layer. Built by <see cref="ResponseSet.PrepareJacobian"/>.
/// </summary>
public sealed class JacobianReadout
{
    internal JacobianReadout(MlpLayout layout, ForwardCache cache, float[][] sensitivities, int queries)
    {
        Layout = layout;
        Cache = cache;
        Sensitivities = sensitivities;
        Queries = queries;
    }

    /// <summary>The layout the queries were run through.</summary>
    public MlpLayout Layout { get; }

    /// <summary>Queries in the batch.</summary>
    public int Queries { get; }

    internal ForwardCache Cache { get; }

    internal float[][] Sensitivities { get; }
}
