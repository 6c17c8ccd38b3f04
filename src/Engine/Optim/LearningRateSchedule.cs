namespace Attribution.Engine.Optim;

/// <summary>
/// A learning rate as a pure function of the 0-based optimiser step: the rate used by the step that turns
/// parameters θ_t into θ_{t+1}. Schedules are stateless, so a resumed or replayed run sees the same rates.
/// </summary>
public interface ILearningRateSchedule
{
    /// <summary>The learning rate for 0-based step <paramref name="step"/>.</summary>
    float At(long step);
}

/// <summary>A constant learning rate.</summary>
/// <param name="LearningRate">The rate used at every step.</param>
public sealed record ConstantSchedule(float LearningRate) : ILearningRateSchedule
{
    /// <inheritdoc />
    public float At(long step) => LearningRate;
}

/// <summary>
/// Per-step cosine decay from <see cref="BaseRate"/> to <see cref="MinRate"/> over <see cref="TotalSteps"/> steps,
/// PyTorch's <c>CosineAnnealingLR(T_max = TotalSteps, eta_min = MinRate)</c> stepped once per batch:
/// <c>lr_t = min + (base − min)·(1 + cos(π·t/T))/2</c>; steps at or beyond T stay at <see cref="MinRate"/>.
/// </summary>
public sealed record CosineSchedule : ILearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    public CosineSchedule(float baseRate, long totalSteps, float minRate = 0f)
    {
        if (!float.IsFinite(baseRate) || baseRate < 0f)
        {
            throw new ArgumentOutOfRangeException(nameof(baseRate), baseRate, "The base rate must be finite and non-negative.");
        }

        if (!float.IsFinite(minRate) || minRate < 0f || minRate > baseRate)
        {
            throw new ArgumentOutOfRangeException(nameof(minRate), minRate, "The minimum rate must be in [0, base rate].");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(totalSteps, 1, nameof(totalSteps));
        BaseRate = baseRate;
        TotalSteps = totalSteps;
        MinRate = minRate;
    }

    /// <summary>Rate at step 0.</summary>
    public float BaseRate { get; }

    /// <summary>Number of steps over which the rate decays.</summary>
    public long TotalSteps { get; }

    /// <summary>Rate reached at <see cref="TotalSteps"/>.</summary>
    public float MinRate { get; }

    /// <inheritdoc />
    public float At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (step >= TotalSteps)
        {
            return MinRate;
        }

        double cos = Math.Cos(Math.PI * step / TotalSteps);
        return (float)(MinRate + (BaseRate - MinRate) * 0.5 * (1.0 + cos));
    }
}

/// <summary>
/// Linear warm-up over the first <see cref="WarmupSteps"/> steps to the rate <see cref="After"/> starts with, then
/// <see cref="After"/> shifted so that its step 0 is the first step after warm-up:
/// <c>lr_t = After(0)·(t+1)/W</c> for t &lt; W, else <c>After(t − W)</c>.
/// Compose with <see cref="CosineSchedule"/> for the usual warm-up-then-cosine recipe.
/// </summary>
public sealed record WarmupSchedule : ILearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    public WarmupSchedule(long warmupSteps, ILearningRateSchedule after)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentNullException.ThrowIfNull(after);
        WarmupSteps = warmupSteps;
        After = after;
    }

    /// <summary>Number of warm-up steps W.</summary>
    public long WarmupSteps { get; }

    /// <summary>The schedule that follows warm-up.</summary>
    public ILearningRateSchedule After { get; }

    /// <inheritdoc />
    public float At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (step < WarmupSteps)
        {
            return (float)((double)After.At(0) * (step + 1) / WarmupSteps);
        }

        return After.At(step - WarmupSteps);
    }
}
