using System.Numerics.Tensors;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// The training objective of a problem, <c>L(θ) = (1/n) Σ ℓ_i(θ) + (wd/2)‖θ‖²</c> (or the same mean over a sample of the
/// training set), with its gradient, finite-difference Hessian-vector products and the top Hessian eigenvalue by power
/// iteration. Shared by forward-only (step size, the spectral propagator's Lanczos) and influence functions (HVPs,
/// dense Hessian). Everything goes through <see cref="IModel"/>: no model maths here.
/// </summary>
public sealed class TrainingObjective
{
    private readonly AttributionProblem _problem;
    private readonly IModel _model;
    private readonly ModelBatch _batch;

    /// <summary>Wraps a problem: the mean runs over the whole training set.</summary>
    public TrainingObjective(AttributionProblem problem)
        : this(problem, (problem ?? throw new ArgumentNullException(nameof(problem))).Training)
    {
    }

    /// <summary>Wraps a problem with the mean loss taken over <paramref name="sample"/> (e.g. a few of the simulation's mini-batches).</summary>
    public TrainingObjective(AttributionProblem problem, ModelBatch sample)
    {
        ArgumentNullException.ThrowIfNull(problem);
        _problem = problem;
        _model = problem.CreateModel();
        _batch = sample;
    }

    /// <summary>∇L at θ: the model's summed loss gradient over the batch, divided by its size, plus wd·θ.</summary>
    public void Gradient(ReadOnlySpan<float> theta, Span<float> gradient)
    {
        _model.LoadFrom(theta);
        _model.OutputGradient(_batch, ModelOutput.Loss, default, gradient, default);
        float inv = _batch.Count == 0 ? 0f : 1f / _batch.Count;
        TensorPrimitives.Multiply(gradient, inv, gradient);
        if (_problem.WeightDecay != 0f)
        {
            TensorPrimitives.MultiplyAdd(theta, _problem.WeightDecay, gradient, gradient);
        }
    }

    /// <summary>
    /// H v by a central difference of gradients, <c>[∇L(θ + h v̂) − ∇L(θ − h v̂)] / (2h) · ‖v‖</c>, evaluated in float
    /// and returned in double.
    /// </summary>
    public void Hvp(ReadOnlySpan<float> theta, ReadOnlySpan<double> v, Span<double> result, double relativeStep = 1e-3)
    {
        int p = theta.Length;
        double norm = Math.Sqrt(TensorPrimitives.Dot<double>(v, v));
        if (norm == 0)
        {
            result.Clear();
            return;
        }

        double thetaNorm = Math.Sqrt(TensorPrimitives.Dot(theta, theta));
        double h = relativeStep * Math.Max(thetaNorm, 1.0) / Math.Sqrt(p);
        h = Math.Max(h, 1e-4);
        var plus = new float[p];
        var minus = new float[p];
        for (int i = 0; i < p; i++)
        {
            float step = (float)(h * v[i] / norm);
            plus[i] = theta[i] + step;
            minus[i] = theta[i] - step;
        }

        var gp = new float[p];
        var gm = new float[p];
        Gradient(plus, gp);
        Gradient(minus, gm);
        for (int i = 0; i < p; i++)
        {
            result[i] = ((double)gp[i] - gm[i]) / (2 * h) * norm;
        }
    }

    /// <summary>Largest Hessian eigenvalue (by magnitude) from <paramref name="iterations"/> power iterations.</summary>
    public double TopEigenvalue(ReadOnlySpan<float> theta, int iterations, ulong seed)
    {
        int p = theta.Length;
        var rng = new Rng(seed);
        var v = new double[p];
        for (int i = 0; i < p; i++)
        {
            v[i] = rng.NextNormal();
        }

        var hv = new double[p];
        double lambda = 0;
        for (int it = 0; it < iterations; it++)
        {
            double n = Math.Sqrt(TensorPrimitives.Dot<double>(v, v));
            TensorPrimitives.Multiply<double>(v, 1 / n, v);
            Hvp(theta, v, hv);
            lambda = TensorPrimitives.Dot<double>(v, hv);
            hv.CopyTo(v, 0);
        }

        return lambda;
    }
}
