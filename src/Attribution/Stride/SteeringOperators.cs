using System.Numerics.Tensors;
using Attribution.Engine;
using Attribution.Engine.Autograd;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Stride;

/// <summary>
/// Trained STRIDE steering operators (shared/docs/stride.md §3): a shared basis B ∈ ℝ^{r×H} reading hidden layer
/// <see cref="Layer"/> of the frozen model (a classifier's hidden layer; a transformer block's residual stream, per
/// position) and one matrix a_k per subset. Logit form: a_k ∈ ℝ^{r×C} (C = classes or vocabulary) and operator k steers
/// the logits to <c>o + (B·h)ᵀ a_k</c>; a query's K measurements come from one forward pass (logits and the hidden
/// activation) plus one [r × K·C] GEMM per scored position (§5). Residual form: a_k ∈ ℝ^{r×H} steers the layer's output
/// to <c>ẑ = z + (B·z)ᵀ a_k</c> at every position and the frozen tail (later blocks, final norm, head) runs on ẑ; a query's
/// K measurements are one base pass to the layer and K steered tails.
/// </summary>
public sealed class SteeringOperators
{
    /// <summary>Wraps trained parameters; <paramref name="basis"/> is [rank, width], <paramref name="matrices"/> [rank, subsets·classes].</summary>
    public SteeringOperators(int layer, int width, int rank, int classes, int subsets, ModelOutput measure, float[] basis, float[] matrices,
        SteeringForm form = SteeringForm.Logit)
    {
        ArgumentNullException.ThrowIfNull(basis);
        ArgumentNullException.ThrowIfNull(matrices);
        if (layer < 0 || width < 1 || rank < 1 || classes < 2 || subsets < 1)
        {
            throw new ArgumentException($"SteeringOperators: invalid shape layer {layer}, width {width}, rank {rank}, classes {classes}, subsets {subsets}.");
        }

        int shift = form == SteeringForm.Residual ? width : classes;
        if (basis.Length != (long)rank * width || matrices.Length != (long)rank * subsets * shift)
        {
            throw new ArgumentException($"SteeringOperators: basis has {basis.Length} values (needs {rank}·{width}), matrices {matrices.Length} (needs {rank}·{subsets}·{shift} for the {form.ToString().ToLowerInvariant()} form).");
        }

        if (measure is not (ModelOutput.Margin or ModelOutput.Loss))
        {
            throw new ArgumentException($"SteeringOperators: the measurement must be Margin or Loss; got {measure}.");
        }

        Form = form;
        Layer = layer;
        Width = width;
        Rank = rank;
        Classes = classes;
        Subsets = subsets;
        MeasuredOutput = measure;
        Basis = basis;
        Matrices = matrices;
    }

    /// <summary>Logit or residual form.</summary>
    public SteeringForm Form { get; }

    /// <summary>Length of a steered vector: the classes (logit form) or the hidden width (residual form).</summary>
    public int ShiftWidth => Form == SteeringForm.Residual ? Width : Classes;

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

    /// <summary>Per-subset matrices, row-major [r, K·S] with S = <see cref="ShiftWidth"/>: a_k[j, c] = Matrices[j·K·S + k·S + c].</summary>
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
        if (Form == SteeringForm.Residual)
        {
            MeasureResidual(Tail(model), queries, measurements);
            return;
        }

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

    /// <summary>The model as one whose tail runs from a hidden layer (the residual form needs it).</summary>
    internal static IResidualStreamModel Tail(IHiddenStateModel model) => model as IResidualStreamModel
        ?? throw new ArgumentException($"SteeringOperators: form=residual runs the frozen layers after the steered one; {model.Architecture} cannot run its tail from a hidden layer (the GPT can). Use form=logit.");

    /// <summary>
    /// ẑ = z + (B·z)ᵀ a_k at every position of <paramref name="units"/> (row-major [units·T, H] of <paramref name="hidden"/>,
    /// the projections <paramref name="projected"/> [units·T, r] = z·Bᵀ precomputed), written to <paramref name="destination"/>.
    /// </summary>
    internal void SteerResidual(int k, ReadOnlySpan<int> units, int length, ReadOnlySpan<float> hidden, ReadOnlySpan<float> projected, Span<float> destination)
    {
        int w = Width, r = Rank, kw = Subsets * w;
        for (int m = 0; m < units.Length; m++)
        {
            for (int p = 0; p < length; p++)
            {
                long row = ((long)units[m] * length) + p;
                var z = destination.Slice((int)(((long)m * length + p) * w), w);
                hidden.Slice((int)(row * w), w).CopyTo(z);
                for (int j = 0; j < r; j++)
                {
                    TensorPrimitives.MultiplyAdd(Matrices.AsSpan(j * kw + k * w, w), projected[(int)(row * r) + j], z, z);
                }
            }
        }
    }

    // Residual form (§5): one base pass to the layer, then for every operator the steered tail over all queries; a
    // query's measurement is the change of its targets' summed output (log-likelihood) from the base pass's.
    private void MeasureResidual(IResidualStreamModel model, in ModelBatch queries, Span<float> measurements)
    {
        var rows = ResidualRows.Read(model, queries, Layer);
        int n = rows.Units, t = rows.Length, c = Classes, w = Width, kk = Subsets;
        var projected = rows.Project(Basis, Rank);
        var baseValue = new double[n];
        for (int i = 0; i < n; i++)
        {
            for (int p = 0; p < t; p++)
            {
                int target = rows.Labels[i * t + p];
                if (target != -1)
                {
                    baseValue[i] += MlpKernels.Output(Helpful, rows.Logits.AsSpan((i * t + p) * c, c), target, 1f, default);
                }
            }
        }

        var units = Enumerable.Range(0, n).ToArray();
        var result = new float[(long)n * kk];
        Parallel.For(0, kk, new ParallelOptions { MaxDegreeOfParallelism = SubsetFineTunes.BlasThreads }, () => (Model: (IResidualStreamModel)model.Clone(), Graph: new Graph(recordBackward: false), Steered: new float[(long)n * t * w]), (k, _, local) =>
        {
            SteerResidual(k, units, t, rows.Hidden, projected, local.Steered);
            local.Graph.Reset();
            var logits = local.Model.LogitsFrom(local.Graph, Graph.Wrap(local.Steered, [n, t, w]), Layer).Data;
            for (int i = 0; i < n; i++)
            {
                double value = 0;
                for (int p = 0; p < t; p++)
                {
                    int target = rows.Labels[i * t + p];
                    if (target != -1)
                    {
                        value += MlpKernels.Output(Helpful, logits.AsSpan((i * t + p) * c, c), target, 1f, default);
                    }
                }

                result[((long)i * kk) + k] = (float)(value - baseValue[i]);
            }

            local.Graph.Reset();
            return local;
        }, _ => { });
        result.CopyTo(measurements);
    }

    private void CheckModel(IHiddenStateModel model)
    {
        if (Layer >= model.HiddenLayerCount || model.HiddenWidth(Layer) != Width || model.Classes != Classes)
        {
            throw new ArgumentException($"SteeringOperators: trained on hidden layer {Layer} (width {Width}) of a {Classes}-class model; this model ({model.Architecture}) does not match.");
        }
    }
}
