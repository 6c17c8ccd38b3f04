using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Stride;

/// <summary>
/// Trained STRIDE steering operators in the logit form (shared/docs/stride.md §3): a shared basis B ∈ ℝ^{r×H} reading
/// hidden layer <see cref="Layer"/> of the frozen classifier and one matrix a_k ∈ ℝ^{r×C} per subset, so that operator k
/// steers the logits to <c>o + (B·h)ᵀ a_k</c>. A query's K measurements come from one forward pass (logits and the
/// hidden activation) plus one [r × K·C] GEMM (§5).
/// </summary>
public sealed class SteeringOperators
{
    /// <summary>Wraps trained parameters; <paramref name="basis"/> is [rank, width], <paramref name="matrices"/> [rank, subsets·classes].</summary>
    public SteeringOperators(int layer, int width, int rank, int classes, int subsets, ModelOutput measure, float[] basis, float[] matrices)
    {
        ArgumentNullException.ThrowIfNull(basis);
        ArgumentNullException.ThrowIfNull(matrices);
        if (layer < 0 || width < 1 || rank < 1 || classes < 2 || subsets < 1)
        {
            throw new ArgumentException($"SteeringOperators: invalid shape layer {layer}, width {width}, rank {rank}, classes {classes}, subsets {subsets}.");
        }

        if (basis.Length != (long)rank * width || matrices.Length != (long)rank * subsets * classes)
        {
            throw new ArgumentException($"SteeringOperators: basis has {basis.Length} values (needs {rank}·{width}), matrices {matrices.Length} (needs {rank}·{subsets}·{classes}).");
        }

        if (measure is not (ModelOutput.Margin or ModelOutput.Loss))
        {
            throw new ArgumentException($"SteeringOperators: the measurement must be Margin or Loss; got {measure}.");
        }

        Layer = layer;
        Width = width;
        Rank = rank;
        Classes = classes;
        Subsets = subsets;
        MeasuredOutput = measure;
        Basis = basis;
        Matrices = matrices;
    }

    /// <summary>Hidden layer the basis reads.</summary>
    public int Layer { get; }

    /// <summary>Width H of that layer.</summary>
    public int Width { get; }

    /// <summary>Rank r.</summary>
    public int Rank { get; }

    /// <summary>Number of classes C.</summary>
    public int Classes { get; }

    /// <summary>Number of operators K.</summary>
    public int Subsets { get; }

    /// <summary>Which output a measurement is a change of (margin, or loss with the sign flipped).</summary>
    public ModelOutput MeasuredOutput { get; }

    /// <summary>Shared basis B, row-major [r, H].</summary>
    public float[] Basis { get; }

    /// <summary>Per-subset matrices, row-major [r, K·C]: a_k[j, c] = Matrices[j·K·C + k·C + c].</summary>
    public float[] Matrices { get; }

    /// <summary>Bytes held (basis and matrices).</summary>
    public long Bytes => 4L * (Basis.Length + Matrices.Length);

    /// <summary>The output whose increase a measurement reports: the margin, or the log-likelihood (−loss).</summary>
    internal ModelOutput Helpful => MeasuredOutput == ModelOutput.Margin ? ModelOutput.Margin : ModelOutput.LogLikelihood;

    /// <summary>
    /// K measurements per query, [count, K] row-major: <c>y[q, k] = f(o + (B·h)ᵀa_k) − f(o)</c> where f is the margin of
    /// the query's label (or its log-likelihood). Positive means operator k helps the query.
    /// </summary>
    public void Measure(IHiddenStateModel model, ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int count, Span<float> measurements)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckModel(model);
        int c = Classes, kc = Subsets * Classes, inputWidth = count == 0 ? 0 : inputs.Length / count;
        if (measurements.Length != (long)count * Subsets || labels.Length != count)
        {
            throw new ArgumentException($"SteeringOperators.Measure: {count} queries need {count} labels and {(long)count * Subsets} measurements; got {labels.Length} and {measurements.Length}.");
        }

        const int chunk = 128;
        var logits = new float[chunk * c];
        var hidden = new float[chunk * Width];
        var u = new float[chunk * Rank];
        var shifts = new float[chunk * kc];
        var z = new float[c];
        for (int start = 0; start < count; start += chunk)
        {
            int b = Math.Min(chunk, count - start);
            model.LogitsAndHidden(inputs.Slice(start * inputWidth, b * inputWidth), b, Layer, logits.AsSpan(0, b * c), hidden.AsSpan(0, b * Width));
            Blas.Gemm(false, true, b, Rank, Width, 1f, hidden, Basis, 0f, u);
            Blas.Gemm(false, false, b, kc, Rank, 1f, u, Matrices, 0f, shifts);
            for (int i = 0; i < b; i++)
            {
                var o = logits.AsSpan(i * c, c);
                int y = labels[start + i];
                float baseValue = MlpKernels.Output(Helpful, o, y, 1f, default);
                var row = measurements.Slice((start + i) * Subsets, Subsets);
                for (int k = 0; k < Subsets; k++)
                {
                    var shift = shifts.AsSpan(i * kc + k * c, c);
                    for (int t = 0; t < c; t++)
                    {
                        z[t] = o[t] + shift[t];
                    }

                    row[k] = MlpKernels.Output(Helpful, z, y, 1f, default) - baseValue;
                }
            }
        }
    }

    private void CheckModel(IHiddenStateModel model)
    {
        if (Layer >= model.HiddenLayerCount || model.HiddenWidth(Layer) != Width || model.Classes != Classes)
        {
            throw new ArgumentException($"SteeringOperators: trained on hidden layer {Layer} (width {Width}) of a {Classes}-class model; this model ({model.Architecture}) does not match.");
        }
    }
}
