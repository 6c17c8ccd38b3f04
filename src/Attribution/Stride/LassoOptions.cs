namespace Attribution.Attribution.Stride;

/// <summary>How <see cref="LassoRecovery"/> picks λ on the regularisation path.</summary>
public enum LambdaRule
{
    /// <summary>
    /// Held-out subsets (shared/docs/stride.md §6): the K rows are split into <see cref="LassoOptions.Folds"/> folds; each
    /// fold's path is fitted on the other rows and scored by squared error on its own rows; the λ with the least total
    /// held-out error is refitted on all rows. The walk stops <see cref="LassoOptions.CvPatience"/> λ values past the best.
    /// Costs up to (folds + 1) paths per query.
    /// </summary>
    CrossValidation,

    /// <summary>λ = <see cref="LassoOptions.FixedFraction"/> · λ_max: one path, stopped at that λ.</summary>
    FixedFraction,
}

/// <summary>Options of STRIDE's sparse recovery. Defaults follow shared/docs/stride.md §6 (our reading, marked [R] there).</summary>
public sealed record LassoOptions
{
    /// <summary>Fit an intercept (centre the measurements and the columns of M over the rows). Default on (§6: a shared
    /// shift of every operator's effect would otherwise have to be explained by a dense w).</summary>
    public bool FitIntercept { get; init; } = true;

    /// <summary>Constrain the scores to be ≥ 0 (only helpful examples).</summary>
    public bool Nonnegative { get; init; }

    /// <summary>Number of λ values on the path, geometric from λ_max down to <see cref="PathMinRatio"/>·λ_max.</summary>
    public int PathLength { get; init; } = 30;

    /// <summary>Smallest λ on the path as a fraction of λ_max.</summary>
    public double PathMinRatio { get; init; } = 1e-3;

    /// <summary>The rule that picks λ.</summary>
    public LambdaRule Rule { get; init; } = LambdaRule.CrossValidation;

    /// <summary>Folds over the K rows for <see cref="LambdaRule.CrossValidation"/>.</summary>
    public int Folds { get; init; } = 5;

    /// <summary>Cross-validation stops walking down the path after this many λ values without a lower held-out error
    /// (the rest of <see cref="LassoFit.HeldOutError"/> is NaN).</summary>
    public int CvPatience { get; init; } = 5;

    /// <summary>λ/λ_max for <see cref="LambdaRule.FixedFraction"/>.</summary>
    public double FixedFraction { get; init; } = 0.05;

    /// <summary>Seed of the row-to-fold assignment (shared by every query, so all are scored on the same folds).</summary>
    public ulong FoldSeed { get; init; } = 0x5EED;

    /// <summary>Coordinate descent stops when the largest objective decrease of a sweep, max_j ‖c_j‖²·Δx_j², falls below
    /// this fraction of the (centred) measurements' mean square.</summary>
    public double Tolerance { get; init; } = 1e-7;

    /// <summary>Cap on coordinate sweeps per λ (a guard; convergence normally takes a handful).</summary>
    public int MaxSweeps { get; init; } = 10_000;

    /// <summary>Throws with the offending option when a value is out of range.</summary>
    public void Validate()
    {
        if (PathLength < 1)
        {
            throw new ArgumentException($"LassoOptions.PathLength must be ≥ 1; got {PathLength}.");
        }

        if (!(PathMinRatio > 0 && PathMinRatio <= 1))
        {
            throw new ArgumentException($"LassoOptions.PathMinRatio must be in (0, 1]; got {PathMinRatio}.");
        }

        if (Rule == LambdaRule.CrossValidation && Folds < 2)
        {
            throw new ArgumentException($"LassoOptions.Folds must be ≥ 2 for cross-validation; got {Folds}.");
        }

        if (Rule == LambdaRule.CrossValidation && CvPatience < 1)
        {
            throw new ArgumentException($"LassoOptions.CvPatience must be ≥ 1; got {CvPatience}.");
        }

        if (Rule == LambdaRule.FixedFraction && !(FixedFraction > 0))
        {
            throw new ArgumentException($"LassoOptions.FixedFraction must be > 0; got {FixedFraction}.");
        }

        if (!(Tolerance > 0) || MaxSweeps < 1)
        {
            throw new ArgumentException($"LassoOptions: Tolerance must be > 0 and MaxSweeps ≥ 1; got {Tolerance}, {MaxSweeps}.");
        }
    }
}
