using Attribution.Attribution.Methods;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Stride;

/// <summary>
/// The measurements the steering operators imitate, computed exactly (a diagnostic, <c>stride:operators=finetune</c>):
/// subset k's model is θ* trained further on the subset's members alone (<see cref="Steps"/> full-batch gradient steps on
/// their mean training loss at learning rate <see cref="LearningRate"/>), and a query's measurement is its output under
/// that model minus its output under θ*. Holds every subset's parameter change, K × p floats: a diagnostic for small
/// models, not a served state.
/// </summary>
public sealed class SubsetFineTunes
{
    private readonly float[] _theta;
    private readonly float[] _deltas;

    private SubsetFineTunes(float[] theta, float[] deltas, int subsets, int steps, float learningRate)
    {
        (_theta, _deltas, Subsets, Steps, LearningRate) = (theta, deltas, subsets, steps, learningRate);
    }

    /// <summary>
    /// Most threads that run model steps (BLAS calls) at once: the cores. Parallel.For over K long work items lets the
    /// thread pool grow past that, and OpenBLAS 0.3.21 aborts when more threads call it than its compiled table holds
    /// (seen at K 5,000: "precompiled NUM_THREADS exceeded").
    /// </summary>
    internal static int BlasThreads => Environment.ProcessorCount;

    /// <summary>K.</summary>
    public int Subsets { get; }

    /// <summary>Gradient steps per subset.</summary>
    public int Steps { get; }

    /// <summary>Learning rate of the steps.</summary>
    public float LearningRate { get; }

    /// <summary>Bytes held (θ* and the K parameter changes).</summary>
    public long Bytes => 4L * (_theta.Length + _deltas.LongLength);

    /// <summary>Fine-tunes a copy of <paramref name="model"/> (at θ*) on every subset of <paramref name="design"/> (rows of <paramref name="training"/>).</summary>
    public static SubsetFineTunes Train(IModel model, in ModelBatch training, SubsetDesign design, int steps, float learningRate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(design);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        if (!(learningRate > 0) || float.IsInfinity(learningRate))
        {
            throw new ArgumentException($"fine-tune learning rate {learningRate} must be finite and > 0.", nameof(learningRate));
        }

        int p = model.ParameterCount, kk = design.Subsets;
        var theta = new float[p];
        model.CopyTo(theta);
        var deltas = new float[(long)kk * p];
        var rows = training;
        Parallel.For(0, kk, new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = BlasThreads }, () => (Model: model.Clone(), Flat: new float[p], Grad: new float[p]), (k, _, local) =>
        {
            var members = design.MembersOf(k).ToArray();
            if (members.Length == 0)
            {
                return local;
            }

            var batch = ForwardOnlySimulator.Rows(rows, members);
            local.Model.LoadFrom(theta);
            theta.CopyTo(local.Flat, 0);
            for (int s = 0; s < steps; s++)
            {
                local.Model.LossAndBackward(batch);
                local.Model.CopyGradientTo(local.Grad);
                for (int j = 0; j < p; j++)
                {
                    local.Flat[j] -= learningRate * local.Grad[j];
                }

                local.Model.LoadFrom(local.Flat);
            }

            var delta = deltas.AsSpan((int)((long)k * p), p);
            for (int j = 0; j < p; j++)
            {
                delta[j] = local.Flat[j] - theta[j];
            }

            return local;
        }, _ => { });
        return new SubsetFineTunes(theta, deltas, kk, steps, learningRate);
    }

    /// <summary>
    /// Every query's K measurements, [q, K] row-major: output (<paramref name="output"/>) under subset k's model minus
    /// under θ* (positive = training further on the subset helps the query).
    /// </summary>
    public void Measure(IModel model, in ModelBatch queries, ModelOutput output, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(model);
        int q = queries.Count, p = _theta.Length, kk = Subsets;
        if (y.Length != (long)q * kk)
        {
            throw new ArgumentException($"measurement buffer has {y.Length} values; {q} queries x {kk} subsets need {(long)q * kk}.", nameof(y));
        }

        var baseline = new float[q];
        model.LoadFrom(_theta);
        model.Outputs(queries, output, baseline);
        var result = new float[(long)q * kk];
        var batch = queries;
        Parallel.For(0, kk, new ParallelOptions { MaxDegreeOfParallelism = BlasThreads }, () => (Model: model.Clone(), Flat: new float[p], Values: new float[q]), (k, _, local) =>
        {
            var delta = _deltas.AsSpan((int)((long)k * p), p);
            for (int j = 0; j < p; j++)
            {
                local.Flat[j] = _theta[j] + delta[j];
            }

            local.Model.LoadFrom(local.Flat);
            local.Model.Outputs(batch, output, local.Values);
            for (int i = 0; i < q; i++)
            {
                result[((long)i * kk) + k] = local.Values[i] - baseline[i];
            }

            return local;
        }, _ => { });
        result.CopyTo(y);
    }
}
