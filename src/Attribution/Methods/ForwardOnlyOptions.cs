namespace Attribution.Attribution.Methods;

/// <summary>How forward-only scores are read out at query time.</summary>
public enum ForwardReadout
{
    /// <summary>
    /// The directional derivative of the query's margin along each response, summed per layer: the margin's
    /// pre-activation sensitivities obtained in forward mode once per query, then one pass over each unit's factors.
    /// </summary>
    Jacobian,

    /// <summary>Two forward passes per unit at θ* ± ε_r r_b (the paper's literal readout; slow, used as a reference).</summary>
    FiniteDifference,
}

/// <summary>How the simulation carries a unit's up-weighting through the K steps.</summary>
public enum ForwardPropagation
{
    /// <summary>
    /// Two (or one) ±ε gradient trajectories per unit on the shared mini-batches, units stacked in blocks: the simulation
    /// as specified (nonlinear, curvature and gradients taken along the trajectory). Costs 2K gradient steps per unit.
    /// </summary>
    Trajectory,

    /// <summary>
    /// The trajectory's response map linearised at θ* in spectral form (<see cref="TrajectoryOperator"/>): Lanczos on
    /// the Hessian of a sample of the simulation's mini-batches, once per checkpoint, then one gradient and two GEMMs per
    /// block of units. ε and the single/two-trajectory choice do not apply.
    /// </summary>
    Spectral,

    /// <summary>
    /// The trajectory's exact first-order response (the ε → 0 limit of the two-trajectory difference), MLP only: one
    /// unperturbed run on the shared mini-batches, then every unit of a block carried along it together,
    /// <c>r ← r − η((H_k + wd + λ) r + ∇ℓ_unit(θ̄_k))</c>, with H_k r the exact Hessian-vector products of step k's
    /// mini-batch at θ̄_k for all the block's units at once (<see cref="Engine.Models.MlpCurvature"/>). Costs about one
    /// gradient step per unit and step instead of two; ε and the single/two-trajectory choice do not apply.
    /// </summary>
    Tangent,
}

/// <summary>
/// Options of forward-only simulated influence (docs/forward-only-attribution.md §3, §9a). Defaults follow the measured
/// FashionMNIST recipe: two-trajectory, a horizon of 4 epochs of the shared mini-batches (spectral; 50 steps for the
/// trajectory and tangent propagations), η = 1/h_max (capped at the training learning rate), no explicit damping,
/// shared mini-batches of 100, spectral propagation on an MLP (ε = 1e-3 for the trajectory elsewhere).
/// </summary>
public sealed record ForwardOnlyOptions
{
    /// <summary>
    /// Horizon K in gradient steps, given explicitly; 0 (the default) takes it from <see cref="HorizonEpochs"/> and the
    /// training set's size (<see cref="StepsFor"/>). Giving both is refused.
    /// </summary>
    public int Horizon { get; init; }

    /// <summary>
    /// Horizon in epochs of the shared mini-batches, <c>K = ⌈E·n / batch⌉</c> for n training units; null uses
    /// <see cref="DefaultHorizonEpochs"/> for the spectral propagation and <see cref="DefaultHorizonSteps"/> steps for the
    /// trajectory and tangent ones (whose cost per unit grows with K). Cannot be combined with an explicit <see cref="Horizon"/>.
    /// </summary>
    public double? HorizonEpochs { get; init; }

    /// <summary>
    /// The spectral propagation's default horizon in epochs: on FashionMNIST 4 epochs of simulated mini-batches are within
    /// 0.007 LDS of the best at 1,000 examples (E = 2 / 3 / 4 / 5 / 6 / 8: 0.452 / 0.474 / 0.488 / 0.492 / 0.495 / 0.492)
    /// and the best at 5,000 (E = 4 / 5 / 6: 0.420 / 0.418 / 0.415; K = 50 steps, the earlier default: 0.367);
    /// docs/benchmarks/attribution-eval.md, stop 24.
    /// </summary>
    public const double DefaultHorizonEpochs = 4;

    /// <summary>The trajectory and tangent propagations' default horizon in steps (the earlier default of every propagation).</summary>
    public const int DefaultHorizonSteps = 50;

    /// <summary>
    /// The horizon K in steps for <paramref name="n"/> training units simulated by <paramref name="propagation"/>: the
    /// explicit <see cref="Horizon"/>, else <c>⌈E·n / b⌉</c> (b = the batch, n for full batch) with E =
    /// <see cref="HorizonEpochs"/> or, unset, <see cref="DefaultHorizonEpochs"/> for spectral and
    /// <see cref="DefaultHorizonSteps"/> steps for the others.
    /// </summary>
    public int StepsFor(int n, ForwardPropagation propagation)
    {
        if (Horizon > 0)
        {
            return Horizon;
        }

        if (HorizonEpochs is null && propagation != ForwardPropagation.Spectral)
        {
            return DefaultHorizonSteps;
        }

        double epochs = HorizonEpochs ?? DefaultHorizonEpochs;
        int batch = BatchSize == 0 || BatchSize >= n ? Math.Max(n, 1) : BatchSize;
        return (int)Math.Clamp(Math.Ceiling(epochs * Math.Max(n, 1) / batch - 1e-9), 1, int.MaxValue);
    }

    /// <summary>
    /// Perturbation weight ε added to one training example's loss (absolute, weight units); the response is divided by it.
    /// </summary>
    public float Epsilon { get; init; } = 1e-3f;

    /// <summary>
    /// Step size η; null uses <c>1 / (h_max + λ)</c> with h_max from power iteration on finite-difference HVPs, capped
    /// at the problem's training learning rate when that is known.
    /// </summary>
    public float? StepSize { get; init; }

    /// <summary>Proximal damping λ (pull toward θ*).</summary>
    public float Damping { get; init; }

    /// <summary>Shared mini-batch size; 0 or ≥ n means full batch.</summary>
    public int BatchSize { get; init; } = 100;

    /// <summary>Seed of the shared mini-batch sequence and of the power iteration.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>True for the two-trajectory (±ε) variant; false for single-trajectory against one shared baseline.</summary>
    public bool TwoTrajectory { get; init; } = true;

    /// <summary>Units simulated at once (each takes 1 or 2 parameter vectors).</summary>
    public int UnitsPerBlock { get; init; } = 100;

    /// <summary>Per-layer rank of the stored per-example responses (truncated SVD); 0 stores them in full. Not used by spectral propagation on an MLP, whose responses are stored exactly (gradient factors plus Ritz coefficients).</summary>
    public int Rank { get; init; } = 8;

    /// <summary>
    /// Whether <see cref="Rank"/> was asked for (the method option <c>rank=</c>): spectral propagation on an MLP stores
    /// responses exactly and has no rank, so <see cref="ForwardOnlyMethod.Precompute"/> refuses it there rather than ignore it.
    /// </summary>
    public bool RankGiven { get; init; }

    /// <summary>Power iterations for h_max when <see cref="StepSize"/> is null.</summary>
    public int PowerIterations { get; init; } = 20;

    /// <summary>
    /// When in (0, 1]: after simulation, the input layer's Vᵀ factors are re-expressed in a basis shared by all
    /// examples that keeps this fraction of the layer's response energy (<see cref="Kernels.ResponseSet.ShareInputBasis"/>);
    /// 0 keeps them as they are. Trades a measured, bounded loss for fewer bytes and multiply-adds per query (0.99,
    /// the default, kept the scores of a real FashionMNIST MLP at Pearson 0.9947 vs 0.9950 without it, at 46% of the bytes).
    /// </summary>
    public double InputBasisEnergy { get; init; } = 0.99;

    /// <summary>
    /// How responses are propagated (<see cref="ForwardPropagation"/>); null (the default) chooses by model
    /// (<see cref="PropagationFor"/>): <see cref="ForwardPropagation.Spectral"/> for an MLP (on FashionMNIST LDS equal to
    /// or above the trajectory's at a fraction of its CPU: 5,000 / 500 / 100 0.363 vs 0.352, 1,000 / 100 / 50 0.493 vs
    /// 0.427, docs/benchmarks/attribution-eval.md), <see cref="ForwardPropagation.Trajectory"/> for any other model (the
    /// transformer's spectral measurements used a longer horizon and smaller batches than these defaults) and for the
    /// single-trajectory variant.
    /// </summary>
    public ForwardPropagation? Propagation { get; init; }

    /// <summary>
    /// The propagation used on a model: <see cref="Propagation"/> when set; otherwise spectral for an MLP
    /// (<paramref name="mlp"/>) simulated two-trajectory, the trajectory for everything else.
    /// </summary>
    public ForwardPropagation PropagationFor(bool mlp) =>
        Propagation ?? (mlp && TwoTrajectory ? ForwardPropagation.Spectral : ForwardPropagation.Trajectory);

    /// <summary>True when an option of the spectral propagator differs from its default (so a non-spectral run would drop it).</summary>
    public bool HasOperatorSettings => OperatorRank != Defaults.OperatorRank || OperatorSample != Defaults.OperatorSample || OperatorSampleCap != Defaults.OperatorSampleCap
        || OperatorSegments != Defaults.OperatorSegments || OperatorComplementProbes != Defaults.OperatorComplementProbes;

    private static readonly ForwardOnlyOptions Defaults = new();

    /// <summary>Lanczos steps (Hessian eigenpairs kept) of the spectral propagator.</summary>
    public int OperatorRank { get; init; } = 128;

    /// <summary>
    /// Training examples (the first ones of the shared mini-batch sequence) whose mean loss Hessian the spectral
    /// propagator decomposes; ≥ n uses the whole training set. 0 (the default) uses the examples the horizon's K
    /// mini-batches visit (K·batch, the whole set when they cover it): the curvature the simulated run meets, each
    /// example's own curvature weighted as in that run. A fixed sample smaller than the set over-weights its own examples'
    /// curvature and ignores the rest's (1,000 of 5,000: LDS 0.265 vs 0.322, docs/benchmarks/attribution-eval.md).
    /// The visited examples are capped at <see cref="OperatorSampleCap"/>: the Lanczos' Hessian-vector products over all
    /// of a large set are the precompute's fixed cost and grow with n once the horizon covers an epoch.
    /// </summary>
    public int OperatorSample { get; init; }

    /// <summary>
    /// The most visited examples the default operator sample (<see cref="OperatorSample"/> = 0) takes: the first ones
    /// of the mini-batch sequence. 5,000 keeps the precompute per example below TRAK-1's at 10,000 and 60,000 examples
    /// for −0.009 ± 0.004 LDS at 10,000 (docs/benchmarks/simulation-scale.md); an explicit <see cref="OperatorSample"/>
    /// is not capped.
    /// </summary>
    public int OperatorSampleCap { get; init; } = 5000;

    /// <summary>
    /// Spectral propagation only: segments the horizon is cut into. Each unit's loss gradient is taken once per segment,
    /// at the midpoint of that segment on the shared unperturbed trajectory (one mini-batch run from θ*, shared by every
    /// unit), and carried to step K by the operator; 1 takes it at θ* only. Costs one gradient and one projection onto
    /// the operator per segment per unit.
    /// </summary>
    public int OperatorSegments { get; init; } = 1;

    /// <summary>
    /// Spectral propagation only: probes (training examples' loss gradients, the first ones of the operator sample) whose
    /// Rayleigh quotient outside the operator's span sets the curvature assumed there
    /// (<see cref="TrajectoryOperator.WithGradientComplement"/>); 0 assumes the weight decay alone.
    /// </summary>
    public int OperatorComplementProbes { get; init; }

    /// <summary>Query-time readout.</summary>
    public ForwardReadout Readout { get; init; } = ForwardReadout.Jacobian;

    /// <summary>Readout step ε_r for <see cref="ForwardReadout.FiniteDifference"/>; null uses <see cref="Epsilon"/>.</summary>
    public float? ReadoutEpsilon { get; init; }

    /// <summary>Validates ranges.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(Horizon, nameof(Horizon));
        if (HorizonEpochs is { } epochs)
        {
            if (!(epochs > 0) || !double.IsFinite(epochs))
            {
                throw new ArgumentOutOfRangeException(nameof(HorizonEpochs), epochs, "the horizon in epochs must be positive and finite.");
            }

            if (Horizon > 0)
            {
                throw new ArgumentException($"the horizon is given both in steps ({Horizon}) and in epochs ({epochs.ToString(System.Globalization.CultureInfo.InvariantCulture)}): give one of them (steps K, or epochs E for K = ceil(E·n/batch)).", nameof(HorizonEpochs));
            }
        }

        if (!(Epsilon > 0) || !float.IsFinite(Epsilon))
        {
            throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "epsilon must be positive and finite.");
        }

        if (StepSize is { } eta && !(eta > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(StepSize), eta, "step size must be positive.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(Damping, nameof(Damping));
        if (InputBasisEnergy is < 0 or > 1 || double.IsNaN(InputBasisEnergy))
        {
            throw new ArgumentOutOfRangeException(nameof(InputBasisEnergy), InputBasisEnergy, "input basis energy must be 0 (off) or in (0, 1].");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(BatchSize, nameof(BatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(UnitsPerBlock, 1, nameof(UnitsPerBlock));
        ArgumentOutOfRangeException.ThrowIfNegative(Rank, nameof(Rank));
        ArgumentOutOfRangeException.ThrowIfLessThan(PowerIterations, 1, nameof(PowerIterations));
        ArgumentOutOfRangeException.ThrowIfLessThan(OperatorRank, 1, nameof(OperatorRank));
        ArgumentOutOfRangeException.ThrowIfNegative(OperatorSample, nameof(OperatorSample));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(OperatorSampleCap, nameof(OperatorSampleCap));
        ArgumentOutOfRangeException.ThrowIfLessThan(OperatorSegments, 1, nameof(OperatorSegments));
        if (Horizon > 0)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan(OperatorSegments, Horizon, nameof(OperatorSegments));
        }
        ArgumentOutOfRangeException.ThrowIfNegative(OperatorComplementProbes, nameof(OperatorComplementProbes));
        if (Propagation is { } propagation && propagation != ForwardPropagation.Trajectory && !TwoTrajectory)
        {
            throw new ArgumentException($"{propagation.ToString().ToLowerInvariant()} propagation is the response linearised in ε: it has no single-trajectory variant (use two-trajectory forward-only).", nameof(Propagation));
        }
    }
}
