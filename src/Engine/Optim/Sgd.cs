using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Attribution.Engine.Optim;

/// <summary>
/// Stochastic gradient descent with momentum and L2 weight decay, exactly PyTorch's <c>torch.optim.SGD</c>
/// (dampening 0): <c>g = grad + wd·θ</c>; <c>buf = g</c> on the first step, else <c>buf = μ·buf + g</c>;
/// <c>d = nesterov ? g + μ·buf : buf</c>; <c>θ -= lr·d</c>.
/// </summary>
public sealed class Sgd : Optimizer
{
    private readonly float[][] _momentum;

    /// <summary>Creates the optimiser. <paramref name="momentum"/> 0 means plain SGD (no state).</summary>
    public Sgd(IReadOnlyList<Parameter> parameters, float momentum = 0f, float weightDecay = 0f, bool nesterov = false)
        : base(parameters)
    {
        if (!float.IsFinite(momentum) || momentum < 0f || momentum >= 1f)
        {
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum must be in [0, 1).");
        }

        if (!float.IsFinite(weightDecay) || weightDecay < 0f)
        {
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be finite and non-negative.");
        }

        if (nesterov && momentum == 0f)
        {
            throw new ArgumentException("Nesterov momentum needs momentum > 0.", nameof(nesterov));
        }

        Momentum = momentum;
        WeightDecay = weightDecay;
        Nesterov = nesterov;
        _momentum = new float[Parameters.Count][];
        for (int i = 0; i < Parameters.Count; i++)
        {
            _momentum[i] = momentum == 0f ? [] : new float[Parameters[i].Count];
        }
    }

    /// <summary>Momentum coefficient μ.</summary>
    public float Momentum { get; }

    /// <summary>L2 weight decay added to the gradient.</summary>
    public float WeightDecay { get; }

    /// <summary>Whether Nesterov momentum is used.</summary>
    public bool Nesterov { get; }

    /// <inheritdoc />
    protected override void Update(int index, Parameter parameter, float learningRate, long step)
    {
        var theta = parameter.Data.AsSpan();
        var grad = parameter.Grad.AsSpan();
        if (Momentum == 0f)
        {
            Plain(theta, grad, learningRate, WeightDecay);
        }
        else if (step == 1)
        {
            FirstMomentum(theta, grad, _momentum[index], learningRate, WeightDecay, Momentum, Nesterov);
        }
        else
        {
            WithMomentum(theta, grad, _momentum[index], learningRate, WeightDecay, Momentum, Nesterov);
        }
    }

    private static void Plain(Span<float> theta, ReadOnlySpan<float> grad, float lr, float wd)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vlr = Vector256.Create(lr);
            var vwd = Vector256.Create(wd);
            for (; i <= theta.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var p = Vector256.Create(theta.Slice(i, Vector256<float>.Count));
                var g = Vector256.Create(grad.Slice(i, Vector256<float>.Count)) + vwd * p;
                (p - vlr * g).CopyTo(theta.Slice(i, Vector256<float>.Count));
            }
        }

        for (; i < theta.Length; i++)
        {
            float g = grad[i] + wd * theta[i];
            theta[i] -= lr * g;
        }
    }

    private static void FirstMomentum(Span<float> theta, ReadOnlySpan<float> grad, Span<float> buf, float lr, float wd, float mu, bool nesterov)
    {
        // PyTorch initialises the buffer to the (decayed) gradient itself on the first step.
        for (int i = 0; i < theta.Length; i++)
        {
            float g = grad[i] + wd * theta[i];
            buf[i] = g;
            float d = nesterov ? g + mu * g : g;
            theta[i] -= lr * d;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WithMomentum(Span<float> theta, ReadOnlySpan<float> grad, Span<float> buf, float lr, float wd, float mu, bool nesterov)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vlr = Vector256.Create(lr);
            var vwd = Vector256.Create(wd);
            var vmu = Vector256.Create(mu);
            const int w = 8;
            for (; i <= theta.Length - w; i += w)
            {
                var p = Vector256.Create(theta.Slice(i, w));
                var g = Vector256.Create(grad.Slice(i, w)) + vwd * p;
                var b = vmu * Vector256.Create(buf.Slice(i, w)) + g;
                b.CopyTo(buf.Slice(i, w));
                var d = nesterov ? g + vmu * b : b;
                (p - vlr * d).CopyTo(theta.Slice(i, w));
            }
        }

        for (; i < theta.Length; i++)
        {
            float g = grad[i] + wd * theta[i];
            float b = mu * buf[i] + g;
            buf[i] = b;
            float d = nesterov ? g + mu * b : b;
            theta[i] -= lr * d;
        }
    }
}
