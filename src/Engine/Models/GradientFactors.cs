using System.Numerics.Tensors;

namespace Attribution.Engine.Models;

/// <summary>
/// One linear layer <c>y = x Wᵀ + b</c> of a model's per-example gradient factors: the layer's input rows
/// <see cref="Activations"/> [rows, In] and the output's gradient at its output rows <see cref="Deltas"/> [rows, Out].
/// Example i owns rows [i·R, (i+1)·R) for R rows per example; its weight gradient is <c>Σ_r δ_rᵀ a_r</c> and its bias
/// gradient <c>Σ_r δ_r</c>.
/// </summary>
/// <param name="WeightOffset">Offset of W ([Out, In], row-major) in the flat θ.</param>
/// <param name="BiasOffset">Offset of b ([Out]) in θ, or -1 when the layer has no bias.</param>
/// <param name="In">Input width.</param>
/// <param name="Out">Output width.</param>
/// <param name="Activations">Input rows [rows, In].</param>
/// <param name="Deltas">Output-gradient rows [rows, Out].</param>
public sealed record LinearFactors(int WeightOffset, int BiasOffset, int In, int Out, float[] Activations, float[] Deltas);

/// <summary>
/// Per-example gradients of a model output in factored form, one <see cref="LinearFactors"/> per linear layer. Storing
/// the factors costs Σ(in + out)·R floats per example instead of p, and inner products between factored gradients are
/// GEMMs per layer. <see cref="Complete"/> says whether the linear layers hold every parameter (an MLP) or only some (a
/// transformer's embeddings and LayerNorms are outside them: their per-example gradients are not in the factors and read
/// as zero).
/// </summary>
public sealed class GradientFactors
{
    /// <summary>Wraps factors computed by a model.</summary>
    public GradientFactors(int parameterCount, int examples, int rowsPerExample, IReadOnlyList<LinearFactors> layers, float[] values, bool complete)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentOutOfRangeException.ThrowIfLessThan(rowsPerExample, 1);
        foreach (var l in layers)
        {
            if (l.Activations.Length < (long)examples * rowsPerExample * l.In || l.Deltas.Length < (long)examples * rowsPerExample * l.Out)
            {
                throw new ArgumentException($"GradientFactors: a layer [{l.Out}, {l.In}] has {l.Activations.Length}/{l.Deltas.Length} floats for {examples} examples of {rowsPerExample} rows.");
            }
        }

        ParameterCount = parameterCount;
        Rows = examples;
        RowsPerExample = rowsPerExample;
        Layers = layers;
        Values = values;
        Complete = complete;
    }

    /// <summary>p of the model the gradients are of.</summary>
    public int ParameterCount { get; }

    /// <summary>Number of examples.</summary>
    public int Rows { get; }

    /// <summary>Rows per example R (1 for a classifier, the sequence length for a language model).</summary>
    public int RowsPerExample { get; }

    /// <summary>The linear layers' factors.</summary>
    public IReadOnlyList<LinearFactors> Layers { get; }

    /// <summary>The output values per example the gradients are of.</summary>
    public float[] Values { get; }

    /// <summary>True when the linear layers hold every parameter of the model.</summary>
    public bool Complete { get; }

    /// <summary>Bytes held.</summary>
    public long Bytes => (Layers.Sum(l => (long)l.Activations.Length + l.Deltas.Length) + Values.Length) * sizeof(float);

    /// <summary><c>scores[q, i] += alpha · ⟨∇f_q, ∇f_i⟩</c> for examples q of <paramref name="queries"/> and i of this.</summary>
    public void AddInnerProducts(GradientFactors queries, float alpha, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(queries);
        CheckSameModel(queries);
        int q = queries.Rows, n = Rows, rq = queries.RowsPerExample, rn = RowsPerExample;
        if (scores.Length < (long)q * n)
        {
            throw new ArgumentException($"AddInnerProducts: {scores.Length} scores for {q}×{n}.", nameof(scores));
        }

        int qr = q * rq, nr = n * rn;
        var aa = new float[(long)qr * nr];
        var dd = new float[aa.Length];
        for (int l = 0; l < Layers.Count; l++)
        {
            var mine = Layers[l];
            var theirs = queries.Layers[l];
            Blas.Gemm(false, true, qr, nr, mine.In, 1f, theirs.Activations.AsSpan(0, qr * mine.In), mine.Activations.AsSpan(0, nr * mine.In), 0f, aa);
            Blas.Gemm(false, true, qr, nr, mine.Out, 1f, theirs.Deltas.AsSpan(0, qr * mine.Out), mine.Deltas.AsSpan(0, nr * mine.Out), 0f, dd);
            // ⟨δ_q a_qᵀ, δ_i a_iᵀ⟩ + ⟨δ_q, δ_i⟩ = (δ_q·δ_i)(a_q·a_i + 1), per pair of rows; the +1 only with a bias.
            if (mine.BiasOffset >= 0)
            {
                TensorPrimitives.Add(aa, 1f, aa);
            }

            TensorPrimitives.Multiply(aa, dd, aa);
            if (rq == 1 && rn == 1)
            {
                TensorPrimitives.MultiplyAdd(aa, alpha, scores[..(q * n)], scores[..(q * n)]);
                continue;
            }

            for (int a = 0; a < q; a++)
            {
                for (int b = 0; b < n; b++)
                {
                    double sum = 0;
                    for (int r = 0; r < rq; r++)
                    {
                        sum += TensorPrimitives.Sum(aa.AsSpan((a * rq + r) * nr + b * rn, rn));
                    }

                    scores[a * n + b] += (float)(alpha * sum);
                }
            }
        }
    }

    /// <summary><c>destination[i] = ⟨v, ∇f_i⟩</c> for a dense flat vector v.</summary>
    public void DotDense(ReadOnlySpan<float> v, Span<float> destination)
    {
        CheckFlat(v.Length, nameof(v));
        int rows = Rows * RowsPerExample;
        destination[..Rows].Clear();
        foreach (var l in Layers)
        {
            var t = new float[rows * l.Out];
            Blas.Gemm(false, true, rows, l.Out, l.In, 1f, l.Activations.AsSpan(0, rows * l.In), v.Slice(l.WeightOffset, l.Out * l.In), 0f, t);
            for (int r = 0; r < rows; r++)
            {
                var row = t.AsSpan(r * l.Out, l.Out);
                if (l.BiasOffset >= 0)
                {
                    TensorPrimitives.Add(row, v.Slice(l.BiasOffset, l.Out), row);
                }

                destination[r / RowsPerExample] += TensorPrimitives.Dot(row, l.Deltas.AsSpan(r * l.Out, l.Out));
            }
        }
    }

    /// <summary>Materialises examples [start, start + count) as dense gradients [count, p] (parameters outside the factors are 0).</summary>
    public void Dense(int start, int count, Span<float> destination)
    {
        int p = ParameterCount;
        if (start < 0 || count < 0 || start + count > Rows || destination.Length < (long)count * p)
        {
            throw new ArgumentException($"Dense: examples [{start}, {start + count}) of {Rows} into {destination.Length} floats ({p} per example).");
        }

        int rpe = RowsPerExample;
        for (int i = 0; i < count; i++)
        {
            var g = destination.Slice(i * p, p);
            if (!Complete)
            {
                g.Clear();
            }

            int row0 = (start + i) * rpe;
            foreach (var l in Layers)
            {
                var a = l.Activations.AsSpan(row0 * l.In, rpe * l.In);
                var d = l.Deltas.AsSpan(row0 * l.Out, rpe * l.Out);
                var w = g.Slice(l.WeightOffset, l.Out * l.In);
                if (rpe == 1)
                {
                    for (int o = 0; o < l.Out; o++)
                    {
                        TensorPrimitives.Multiply(a, d[o], w.Slice(o * l.In, l.In));
                    }
                }
                else
                {
                    Blas.Gemm(true, false, l.Out, l.In, rpe, 1f, d, a, 0f, w);
                }

                if (l.BiasOffset >= 0)
                {
                    var b = g.Slice(l.BiasOffset, l.Out);
                    d[..l.Out].CopyTo(b);
                    for (int r = 1; r < rpe; r++)
                    {
                        TensorPrimitives.Add(b, d.Slice(r * l.Out, l.Out), b);
                    }
                }
            }
        }
    }

    private void CheckSameModel(GradientFactors other)
    {
        if (other.ParameterCount != ParameterCount || other.Layers.Count != Layers.Count)
        {
            throw new ArgumentException($"factors of different models ({other.ParameterCount} vs {ParameterCount} parameters).");
        }
    }

    private void CheckFlat(int length, string name)
    {
        if (length != ParameterCount)
        {
            throw new ArgumentException($"'{name}' has {length} floats; the model has {ParameterCount} parameters.", name);
        }
    }
}
