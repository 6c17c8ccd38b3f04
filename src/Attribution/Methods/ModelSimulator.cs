using System.Numerics.Tensors;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Forward-only simulation through any <see cref="IModel"/> (the path for models other than the MLP, whose stacked
/// simulation is <see cref="ForwardOnlySimulator"/>): for each unit (a set of training rows, e.g. documents) run K
/// gradient steps from θ* on one shared mini-batch sequence with each of the unit's rows up-weighted by ±w = ±ε/|unit|
/// (<see cref="ForwardOnlySimulator.UnitWeight"/>), and return <c>r = (θ⁺_K − θ⁻_K)/(2w)</c> (two-trajectory) or
/// <c>(θ⁺_K − θ̄_K)/w</c> against one shared baseline. The objective
/// is the problem's training objective (mean per-row loss plus weight decay) plus the proximal damping
/// <c>λ/2 ‖θ − θ*‖²</c>; every gradient is the model's own <see cref="IModel.OutputGradient"/>. Units run one after the
/// other (one model, no stacking): a unit costs 2K gradients of (batch + unit) rows. With
/// <see cref="ForwardPropagation.Spectral"/> the same map is applied linearised at θ* through a
/// <see cref="TrajectoryOperator"/> (Lanczos on the mini-batches' Hessian, once): a unit then costs one gradient, and a
/// block of units two GEMMs.
/// </summary>
public sealed class ModelSimulator
{
    private readonly AttributionProblem _problem;
    private readonly ForwardOnlyOptions _options;
    private readonly int[][] _batches;
    private readonly IModel _model;
    private float[]? _baseline;

    /// <summary>Resolves the step size (power iteration when not given, capped at the training learning rate) and draws the mini-batch sequence.</summary>
    public ModelSimulator(AttributionProblem problem, ForwardOnlyOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _problem = problem;
        _options = options;
        _model = problem.CreateModel();
        int n = problem.Count;
        int bs = options.BatchSize == 0 || options.BatchSize >= n ? n : options.BatchSize;
        var rng = new Rng(options.Seed ^ 0x9E3779B97F4A7C15UL);
        _batches = new int[options.Horizon][];
        int[] perm = rng.Permutation(n);
        int cursor = 0;
        for (int k = 0; k < options.Horizon; k++)
        {
            if (bs == n)
            {
                _batches[k] = Enumerable.Range(0, n).ToArray();
                continue;
            }

            _batches[k] = new int[bs];
            for (int i = 0; i < bs; i++)
            {
                if (cursor == n)
                {
                    perm = rng.Permutation(n);
                    cursor = 0;
                }

                _batches[k][i] = perm[cursor++];
            }
        }

        if (options.Propagation == ForwardPropagation.Spectral)
        {
            // As on the MLP (ForwardOnlySimulator): the operator's Hessian is the mean loss over the simulation's own
            // mini-batches (the first OperatorSample rows of the sequence; all rows when 0 or when it covers them), and its
            // Lanczos gives h_max too.
            int size = options.OperatorSample == 0 ? n : Math.Min(options.OperatorSample, n);
            var sample = bs == n || size == n ? problem.Training : Select(problem.Training, [.. _batches.SelectMany(b => b).Take(size)]);
            Operator = TrajectoryOperator.Build(new TrainingObjective(problem, sample), problem.Theta, problem.WeightDecay, options.OperatorRank, options.Seed, cancellationToken);
        }

        if (options.StepSize is { } eta)
        {
            StepSize = eta;
        }
        else
        {
            cancellationToken.ThrowIfCancellationRequested();
            TopEigenvalue = Operator?.TopEigenvalue ?? Math.Abs(new TrainingObjective(problem).TopEigenvalue(problem.Theta, options.PowerIterations, options.Seed));
            StepSize = (float)(1.0 / (TopEigenvalue + options.Damping));
            if (problem.TrainingLearningRate > 0 && problem.TrainingLearningRate < StepSize)
            {
                StepSize = problem.TrainingLearningRate;
            }
        }
    }

    /// <summary>The spectral operator (propagation=spectral), else null.</summary>
    public TrajectoryOperator? Operator { get; }

    /// <summary>The step size η used.</summary>
    public float StepSize { get; }

    /// <summary>|h_max| from power iteration (0 when the step size was given).</summary>
    public double TopEigenvalue { get; }

    /// <summary>Simulates every unit (training-row indices) and hands each flat response to <paramref name="sink"/>.</summary>
    public void Simulate(IReadOnlyList<int[]> units, Action<int, float[]> sink, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(units);
        ArgumentNullException.ThrowIfNull(sink);
        if (Operator is { } op)
        {
            Propagate(op, units, sink, cancellationToken);
            return;
        }

        int p = _problem.ParameterCount;
        float eps = _options.Epsilon;
        if (!_options.TwoTrajectory && _baseline is null)
        {
            _baseline = Run([], 0f, cancellationToken);
        }

        for (int u = 0; u < units.Count; u++)
        {
            // Total weight ε per unit, whatever its size (ForwardOnlySimulator.UnitWeight says why).
            float w = ForwardOnlySimulator.UnitWeight(eps, units[u].Length);
            var plus = Run(units[u], w, cancellationToken);
            var other = _options.TwoTrajectory ? Run(units[u], -w, cancellationToken) : _baseline!;
            var response = new float[p];
            TensorPrimitives.Subtract(plus, other, response);
            TensorPrimitives.Multiply(response, 1f / ((_options.TwoTrajectory ? 2f : 1f) * w), response);
            sink(u, response);
        }
    }

    // Spectral path: every unit's summed loss gradient at θ* (one backward pass of its rows), then the operator's two
    // GEMMs over a block of units at once; blocks are capped at ~32 M floats of gradients.
    private void Propagate(TrajectoryOperator op, IReadOnlyList<int[]> units, Action<int, float[]> sink, CancellationToken cancellationToken)
    {
        int p = op.ParameterCount;
        int block = (int)Math.Clamp((1L << 25) / p, 1, _options.UnitsPerBlock);
        var gradients = new float[(long)Math.Min(block, Math.Max(1, units.Count)) * p];
        _model.LoadFrom(_problem.Theta);
        for (int start = 0; start < units.Count; start += block)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(block, units.Count - start);
            for (int u = 0; u < count; u++)
            {
                var g = gradients.AsSpan(u * p, p);
                if (units[start + u].Length == 0)
                {
                    g.Clear();
                    continue;
                }

                _model.OutputGradient(Select(_problem.Training, units[start + u]), ModelOutput.Loss, default, g, default);
            }

            op.Apply(gradients, count, StepSize, _options.Horizon, _options.Damping);
            for (int u = 0; u < count; u++)
            {
                sink(start + u, gradients.AsSpan(u * p, p).ToArray());
            }
        }
    }

    private float[] Run(int[] unit, float weight, CancellationToken cancellationToken)
    {
        int p = _problem.ParameterCount;
        var theta = (float[])_problem.Theta.Clone();
        var grad = new float[p];
        float wd = _problem.WeightDecay, lambda = _options.Damping, eta = StepSize;
        for (int k = 0; k < _options.Horizon; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = _batches[k];
            int[] rows = weight == 0f ? batch : [.. batch, .. unit];
            var weights = new float[rows.Length];
            Array.Fill(weights, 1f / batch.Length, 0, batch.Length);
            Array.Fill(weights, weight, batch.Length, rows.Length - batch.Length);
            _model.LoadFrom(theta);
            _model.OutputGradient(Select(_problem.Training, rows), ModelOutput.Loss, weights, grad, default);
            for (int j = 0; j < p; j++)
            {
                grad[j] += wd * theta[j] + lambda * (theta[j] - _problem.Theta[j]);
            }

            TensorPrimitives.MultiplyAdd(grad, -eta, theta, theta);
        }

        return theta;
    }

    /// <summary>The rows <paramref name="rows"/> of a batch, in that order.</summary>
    public static ModelBatch Select(in ModelBatch batch, IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (batch.Tokens is { } tokens)
        {
            int t = batch.SequenceLength;
            var x = new int[rows.Count * t];
            var y = new int[x.Length];
            for (int i = 0; i < rows.Count; i++)
            {
                tokens.AsSpan(rows[i] * t, t).CopyTo(x.AsSpan(i * t, t));
                batch.Labels.AsSpan(rows[i] * t, t).CopyTo(y.AsSpan(i * t, t));
            }

            return ModelBatch.Sequences(x, y, rows.Count, t);
        }

        var inputs = batch.Inputs ?? throw new ArgumentException("an empty ModelBatch.", nameof(batch));
        int d = batch.Count == 0 ? 0 : inputs.Length / batch.Count;
        var xs = new float[rows.Count * d];
        var ys = new int[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            inputs.AsSpan(rows[i] * d, d).CopyTo(xs.AsSpan(i * d, d));
            ys[i] = batch.Labels[rows[i]];
        }

        return ModelBatch.Classification(xs, ys);
    }
}
