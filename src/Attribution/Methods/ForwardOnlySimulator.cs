using System.Numerics.Tensors;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Training-time half of forward-only attribution (docs/forward-only-attribution.md §3): for each unit (a set of training
/// examples) run short gradient trajectories from θ* on one shared mini-batch sequence with the unit's loss up-weighted
/// by ±ε, and return the response <c>r = (θ⁺_K − θ⁻_K)/(2ε)</c> (two-trajectory) or <c>(θ⁺_K − θ̄_K)/ε</c> against one
/// shared unperturbed baseline (single-trajectory). The simulated objective is the training objective (mean loss plus
/// weight decay) plus the proximal damping <c>λ/2 ‖θ − θ*‖²</c>. Units are simulated in blocks, each block's parameter
/// vectors stacked so the first layer of every trajectory is one GEMM per step.
/// </summary>
public sealed class ForwardOnlySimulator
{
    private readonly AttributionProblem _problem;
    private readonly ForwardOnlyOptions _options;
    private readonly float[][] _batchInputs;
    private readonly int[][] _batchLabels;
    private float[]? _baseline;

    /// <summary>Resolves the step size (power iteration when not given) and draws the shared mini-batch sequence.</summary>
    public ForwardOnlySimulator(AttributionProblem problem, ForwardOnlyOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _problem = problem;
        _options = options;
        if (options.StepSize is { } eta)
        {
            StepSize = eta;
        }
        else
        {
            cancellationToken.ThrowIfCancellationRequested();
            TopEigenvalue = Math.Abs(new TrainingObjective(problem).TopEigenvalue(problem.Theta, options.PowerIterations, options.Seed));
            StepSize = (float)(1.0 / (TopEigenvalue + options.Damping));
            // The horizon's implicit damping is 1/(ηK) (forward-only-attribution.md §6); at η = 1/h_max it depends on the
            // sharpness of the particular trained minimum (h_max 5.9 vs 16.7 for two runs of the same FashionMNIST
            // recipe), which moved LDS from 0.32 to 0.15. Capping η at the training learning rate ties the simulated
            // time to training's own scale.
            if (problem.TrainingLearningRate > 0 && problem.TrainingLearningRate < StepSize)
            {
                StepSize = problem.TrainingLearningRate;
            }
        }

        int n = problem.Count, d = problem.InputWidth;
        int bs = options.BatchSize == 0 || options.BatchSize >= n ? n : options.BatchSize;
        var rng = new Rng(options.Seed ^ 0x9E3779B97F4A7C15UL);
        _batchInputs = new float[options.Horizon][];
        _batchLabels = new int[options.Horizon][];
        int[] perm = rng.Permutation(n);
        int cursor = 0;
        for (int k = 0; k < options.Horizon; k++)
        {
            if (bs == n)
            {
                _batchInputs[k] = problem.TrainInputs;
                _batchLabels[k] = problem.TrainLabels;
                continue;
            }

            var x = new float[bs * d];
            var y = new int[bs];
            for (int i = 0; i < bs; i++)
            {
                if (cursor == n)
                {
                    perm = rng.Permutation(n);
                    cursor = 0;
                }

                int idx = perm[cursor++];
                problem.TrainInputs.AsSpan(idx * d, d).CopyTo(x.AsSpan(i * d, d));
                y[i] = problem.TrainLabels[idx];
            }

            _batchInputs[k] = x;
            _batchLabels[k] = y;
        }
    }

    /// <summary>The step size η used.</summary>
    public float StepSize { get; }

    /// <summary>|h_max| from power iteration (0 when the step size was given).</summary>
    public double TopEigenvalue { get; }

    /// <summary>
    /// Simulates every unit (a list of training-example indices) and hands each flat response to
    /// <paramref name="sink"/> as (unit index, response). Blocks of <see cref="ForwardOnlyOptions.UnitsPerBlock"/> run together.
    /// </summary>
    public void Simulate(IReadOnlyList<int[]> units, Action<int, float[]> sink, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(units);
        ArgumentNullException.ThrowIfNull(sink);
        var layout = _problem.Layout;
        int p = layout.ParameterCount;
        if (!_options.TwoTrajectory && _baseline is null)
        {
            var b = Run([Array.Empty<int>()], [0f], cancellationToken);
            _baseline = new float[p];
            b.GetSlot(0, _baseline);
        }

        float eps = _options.Epsilon;
        // Keep the stacked first-layer activations (slots · width · batch floats) under ~32 M floats, so full-batch
        // simulation of large n shrinks the block instead of allocating gigabytes.
        long perUnit = (_options.TwoTrajectory ? 2L : 1L) * layout.Out(0) * _batchLabels[0].Length;
        int block = (int)Math.Clamp((1L << 25) / Math.Max(perUnit, 1), 1, _options.UnitsPerBlock);
        for (int start = 0; start < units.Count; start += block)
        {
            int count = Math.Min(block, units.Count - start);
            var members = new List<int[]>();
            var weights = new List<float>();
            for (int u = 0; u < count; u++)
            {
                members.Add(units[start + u]);
                weights.Add(eps);
                if (_options.TwoTrajectory)
                {
                    members.Add(units[start + u]);
                    weights.Add(-eps);
                }
            }

            var state = Run(members, weights.ToArray(), cancellationToken);
            var plus = new float[p];
            var other = new float[p];
            for (int u = 0; u < count; u++)
            {
                var response = new float[p];
                if (_options.TwoTrajectory)
                {
                    state.GetSlot(2 * u, plus);
                    state.GetSlot(2 * u + 1, other);
                    TensorPrimitives.Subtract(plus, other, response);
                    TensorPrimitives.Multiply(response, 1f / (2f * eps), response);
                }
                else
                {
                    state.GetSlot(u, plus);
                    TensorPrimitives.Subtract(plus, _baseline!, response);
                    TensorPrimitives.Multiply(response, 1f / eps, response);
                }

                sink(start + u, response);
            }
        }
    }

    private MlpStack Run(IReadOnlyList<int[]> members, float[] weights, CancellationToken cancellationToken)
    {
        var layout = _problem.Layout;
        int slots = members.Count, d = _problem.InputWidth;
        var state = new MlpStack(layout, slots);
        var grad = new MlpStack(layout, slots);
        for (int s = 0; s < slots; s++)
        {
            state.SetSlot(s, _problem.Theta);
        }

        var extraX = new float[slots][];
        var extraY = new int[slots][];
        for (int s = 0; s < slots; s++)
        {
            var idx = members[s];
            extraX[s] = new float[idx.Length * d];
            extraY[s] = new int[idx.Length];
            for (int j = 0; j < idx.Length; j++)
            {
                _problem.TrainInputs.AsSpan(idx[j] * d, d).CopyTo(extraX[s].AsSpan(j * d, d));
                extraY[s][j] = _problem.TrainLabels[idx[j]];
            }
        }

        float wd = _problem.WeightDecay, lambda = _options.Damping, eta = StepSize;
        for (int k = 0; k < _options.Horizon; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var by = _batchLabels[k];
            state.LossGradient(_batchInputs[k], by, 1f / by.Length, extraX, extraY, weights, grad);
            state.AddRegularisers(grad, wd, lambda, _problem.Theta);

            state.AddScaled(grad, -eta);
        }

        return state;
    }
}
