namespace Attribution.Attribution.Stride;

/// <summary>
/// How STRIDE's recovery uses a second method's (forward-only) scores. (The blend of the two methods' standardised scores is
/// <see cref="BlendMethod"/>, <c>stride:combine=blend</c>.)
/// </summary>
public enum StrideCombination
{
    /// <summary>STRIDE alone.</summary>
    None,

    /// <summary>
    /// The partner's scores as the Lasso's prior (adaptive-Lasso penalty factors): ω_i = 1 / (floor + |s_i| / max_j |s_j|),
    /// so examples the partner finds influential are cheaper to select; the dense tie-break stays STRIDE's own.
    /// </summary>
    Prior,

    /// <summary>
    /// The partner's scores as the prior mean, STRIDE's measurements as the correction: the partner's scores s are put
    /// in measurement units by the least-squares scale α = max(0, cov(M·s, y) / var(M·s)) fitted to the query's own K
    /// measurements y (no ground truth), then the Lasso (and the dense tie-break) recovers the residual y − α·M·s;
    /// the scores are α·s plus that correction.
    /// </summary>
    Residual,
}

/// <summary>Where STRIDE's K measurements per query come from.</summary>
public enum StrideMeasurements
{
    /// <summary>The steering operators (the method).</summary>
    Operators,

    /// <summary>
    /// Diagnostic: each subset's model actually trained further on the subset (<see cref="SubsetFineTunes"/>), the exact
    /// counterpart of what the operators imitate; not served (K copies of the parameter change).
    /// </summary>
    FineTune,
}

/// <summary>All of STRIDE's settings: the subset design, the operators, the recovery and the optional combination.</summary>
public sealed record StrideOptions
{
    /// <summary>
    /// Number of subsets K (the paper: 1000); 0 = size-aware, <see cref="SubsetsFor"/>: K = 2n clamped to
    /// [<see cref="MinAutoSubsets"/>, <see cref="MaxAutoSubsets"/>] (docs/benchmarks/stride-kscale.md: K ≥ n beat K = 1000
    /// at n = 1,000 and 5,000).
    /// </summary>
    public int Subsets { get; init; }

    /// <summary>Smallest K of the size-aware default (the paper's K).</summary>
    public const int MinAutoSubsets = 1000;

    /// <summary>Largest K of the size-aware default (bounds the operators' state and training time for a large n).</summary>
    public const int MaxAutoSubsets = 10_000;

    /// <summary>K for a training set of <paramref name="examples"/> units: <see cref="Subsets"/>, or 2n clamped to [1000, 10000] when 0.</summary>
    public int SubsetsFor(int examples) => Subsets > 0 ? Subsets : (int)Math.Clamp(2L * examples, MinAutoSubsets, MaxAutoSubsets);

    /// <summary>Subsets per example d (the paper: 10).</summary>
    public int Degree { get; init; } = 10;

    /// <summary>Seed of the membership draw.</summary>
    public ulong DesignSeed { get; init; } = 0x5712DE;

    /// <summary>Operator shape and training.</summary>
    public SteeringOptions Steering { get; init; } = new();

    /// <summary>Sparse recovery (λ rule, intercept, sign).</summary>
    public LassoOptions Lasso { get; init; } = new() { Rule = LambdaRule.FixedFraction };

    /// <summary>
    /// Weight τ of the dense tie-break added to the Lasso solution: τ·Mᵀ(y − ȳ)/d, the mean centred measurement of an
    /// example's d subsets (shared/docs/stride.md §6: examples the Lasso leaves at zero would otherwise all tie).
    /// 0 = pure Lasso scores.
    /// </summary>
    public double Dense { get; init; } = 0.05;

    /// <summary>Forward-only inside the recovery (needs forward-only's precompute too).</summary>
    public StrideCombination Combine { get; init; } = StrideCombination.None;

    /// <summary>Where the measurements come from (the operators; or, as a diagnostic, actual fine-tunes on every subset).</summary>
    public StrideMeasurements Measurements { get; init; } = StrideMeasurements.Operators;

    /// <summary>Full-batch gradient steps of each subset's fine-tune (<see cref="StrideMeasurements.FineTune"/>).</summary>
    public int FineTuneSteps { get; init; } = 5;

    /// <summary>Learning rate of the fine-tunes; 0 = the problem's training learning rate (0.05 when unknown).</summary>
    public float FineTuneLearningRate { get; init; }

    /// <summary>Floor of the prior's relative partner score in <see cref="StrideCombination.Prior"/> (bounds ω_i ≤ 1/floor).</summary>
    public double PriorFloor { get; init; } = 0.1;

    /// <summary>Throws with the offending option when a value is out of range.</summary>
    public void Validate()
    {
        if (Subsets is < 0 or 1 || Degree < 1 || Degree > (Subsets > 0 ? Subsets : MinAutoSubsets))
        {
            throw new ArgumentException($"StrideOptions: need K ≥ 2 (or 0 = size-aware, 2n in [{MinAutoSubsets}, {MaxAutoSubsets}]) and 1 ≤ d ≤ K; got K = {Subsets}, d = {Degree}.");
        }

        if (!(Dense >= 0) || double.IsInfinity(Dense) || !(PriorFloor > 0) || double.IsInfinity(PriorFloor))
        {
            throw new ArgumentException($"StrideOptions: dense ({Dense}) must be finite and ≥ 0, prior-floor ({PriorFloor}) finite and > 0.");
        }

        if (FineTuneSteps < 1 || !(FineTuneLearningRate >= 0) || float.IsInfinity(FineTuneLearningRate))
        {
            throw new ArgumentException($"StrideOptions: finetune-steps ({FineTuneSteps}) must be ≥ 1 and finetune-lr ({FineTuneLearningRate}) finite and ≥ 0.");
        }

        Steering.Validate();
        Lasso.Validate();
    }
}
