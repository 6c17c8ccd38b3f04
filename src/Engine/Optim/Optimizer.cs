namespace Attribution.Engine.Optim;

/// <summary>
/// A first-order optimiser over a fixed, ordered list of <see cref="Parameter"/>s. <see cref="Step"/> reads each
/// parameter's <see cref="Parameter.Grad"/> and updates <see cref="Parameter.Data"/> in place; it never clears the
/// gradient (call <see cref="ZeroGrad"/>), matching PyTorch's <c>optimizer.step()</c> / <c>zero_grad()</c> split.
/// The learning rate is an argument of every step so that a schedule (<see cref="ILearningRateSchedule"/>) stays a
/// pure function of the step index.
/// </summary>
public abstract class Optimizer
{
    /// <summary>Binds the optimiser to <paramref name="parameters"/>; state buffers are allocated once, here.</summary>
    protected Optimizer(IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        for (int i = 0; i < parameters.Count; i++)
        {
            if (parameters[i] is null)
            {
                throw new ArgumentException($"Parameter {i} is null.", nameof(parameters));
            }
        }

        Parameters = parameters.ToArray();
    }

    /// <summary>The parameters this optimiser updates, in order.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Number of completed <see cref="Step"/> calls.</summary>
    public long StepCount { get; private set; }

    /// <summary>Applies one update with learning rate <paramref name="learningRate"/>.</summary>
    public void Step(float learningRate)
    {
        if (!float.IsFinite(learningRate) || learningRate < 0f)
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite and non-negative.");
        }

        StepCount++;
        for (int i = 0; i < Parameters.Count; i++)
        {
            Update(i, Parameters[i], learningRate, StepCount);
        }
    }

    /// <summary>Zeroes every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters)
        {
            p.ZeroGrad();
        }
    }

    /// <summary>Updates parameter <paramref name="index"/> in place; <paramref name="step"/> is 1-based.</summary>
    protected abstract void Update(int index, Parameter parameter, float learningRate, long step);
}
