using System.Numerics.Tensors;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Stride;

/// <summary>
/// Trained STRIDE steering operators in the logit form (shared/docs/stride.md §3): a shared basis B ∈ ℝ^{r×H} reading
/// hidden layer <see cref="Layer"/> of the frozen model (a classifier's hidden layer; a transformer block's residual
/// stream, per position) and one matrix a_k ∈ ℝ^{r×C} per subset (C = classes or vocabulary), so that operator k steers
/// the logits to <c>o + (B·h)ᵀ a_k</c>. A query's K measurements come from one forward pass (logits and the hidden
/// activation) plus one [r × K·C] GEMM per scored position (§5).
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
    /// K measurements per query (one row of <paramref name="queries"/>), [Count, K] row-major: <c>y[q, k] = Σ_t f(o_t +
    /// (B·h_t)ᵀa_k) − f(o_t)</c> over the query's scored positions t (a classifier's one example; a language model's
    /// completion tokens), where f is the margin of the label (or the log-likelihood of the target). Positive means
    /// operator k helps the query. One forward pass, no gradients.
    /// </summary>
    public void Measure(IHiddenStateModel model, in ModelBatch queries, Span<float> measurements)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckModel(model);
        if (measurements.Length != (long)queries.Count * Subsets)
        {
            throw new ArgumentException($"SteeringOperators.Measure: {queries.Count} queries need {(long)queries.Count * Subsets} measurements; got {measurements.Length}.");
        }

        measurements.Clear();
        var rows = SteeringRows.Read(model, queries, Layer);
        int c = Classes, kc = Subsets * Classes;
        const int block = 64;
        var u = new float[block * Rank];
        var shifts = new float[(long)block * kc];
        var z = new float[c];
        for (int first = 0; first < rows.Count; first += block)
        {
            int b = Math.Min(block, rows.Count - first);
            Blas.Gemm(false, true, b, Rank, Width, 1f, rows.Hidden.AsSpan(first * Width, b * Width), Basis, 0f, u);
            Blas.Gemm(false, false, b, kc, Rank, 1f, u, Matrices, 0f, shifts);
            for (int i = 0; i < b; i++)
            {
                int row = first + i, y = rows.Targets[row];
                var o = rows.Logits.AsSpan(row * c, c);
                float baseValue = MlpKernels.Output(Helpful, o, y, 1f, default);
                var destination = measurements.Slice(rows.Unit[row] * Subsets, Subsets);
                for (int k = 0; k < Subsets; k++)
                {
                    TensorPrimitives.Add(o, shifts.AsSpan((int)((long)i * kc + k * c), c), z);
                    destination[k] += MlpKernels.Output(Helpful, z, y, 1f, default) - baseValue;
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
