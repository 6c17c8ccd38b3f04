using System.Numerics;

namespace Attribution.Engine.Optim;

/// <summary>
/// Adam with decoupled weight decay, exactly PyTorch's <c>torch.optim.AdamW</c> (amsgrad off):
/// <c>θ *= 1 − lr·wd</c>; <c>m = β1·m + (1−β1)·g</c>; <c>v = β2·v + (1−β2)·g²</c>;
/// <c>θ -= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)</c>.
/// </summary>
public sealed class AdamW : Optimizer
{
    private readonly float[][] _m;
    private readonly float[][] _v;

    /// <summary>Creates the optimiser with PyTorch's defaults unless overridden.</summary>
    public AdamW(IReadOnlyList<Parameter> parameters, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0.01f)
        : base(parameters)
    {
        CheckUnit(beta1, nameof(beta1));
        CheckUnit(beta2, nameof(beta2));
        if (!float.IsFinite(epsilon) || epsilon <= 0f)
        {
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "Epsilon must be finite and positive.");
        }

        if (!float.IsFinite(weightDecay) || weightDecay < 0f)
        {
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be finite and non-negative.");
        }

        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        _m = new float[Parameters.Count][];
        _v = new float[Parameters.Count][];
        for (int i = 0; i < Parameters.Count; i++)
        {
            _m[i] = new float[Parameters[i].Count];
            _v[i] = new float[Parameters[i].Count];
        }
    }

    /// <summary>First-moment decay β1.</summary>
    public float Beta1 { get; }

    /// <summary>Second-moment decay β2.</summary>
    public float Beta2 { get; }

    /// <summary>Denominator ε.</summary>
    public float Epsilon { get; }

    /// <summary>Decoupled weight decay.</summary>
    public float WeightDecay { get; }

    /// <inheritdoc />
    protected override void Update(int index, Parameter parameter, float learningRate, long step)
    {
        var theta = parameter.Data.AsSpan();
        var grad = parameter.Grad.AsSpan();
        var m = _m[index].AsSpan();
        var v = _v[index].AsSpan();
        // Bias corrections in double: β^t for large t underflows gracefully and loses nothing.
        double bc1 = 1.0 - Math.Pow(Beta1, step);
        double bc2 = 1.0 - Math.Pow(Beta2, step);
        float stepSize = (float)(learningRate / bc1);
        float invSqrtBc2 = (float)(1.0 / Math.Sqrt(bc2));
        float decay = 1f - learningRate * WeightDecay;
        float b1 = Beta1, b2 = Beta2, eps = Epsilon, c1 = 1f - b1, c2 = 1f - b2;
        // Vectorized, then the scalar tail: the same operations in the same order per element (no fused multiply-add),
        // so the same bits as the scalar loop.
        int n = theta.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vb1 = new Vector<float>(b1);
            var vb2 = new Vector<float>(b2);
            var vc1 = new Vector<float>(c1);
            var vc2 = new Vector<float>(c2);
            var vDecay = new Vector<float>(decay);
            var vStep = new Vector<float>(stepSize);
            var vInv = new Vector<float>(invSqrtBc2);
            var vEps = new Vector<float>(eps);
            for (int w = Vector<float>.Count; i <= n - w; i += w)
            {
                var g = new Vector<float>(grad[i..]);
                var mi = (vb1 * new Vector<float>(m[i..])) + (vc1 * g);
                var vi = (vb2 * new Vector<float>(v[i..])) + (vc2 * g * g);
                mi.CopyTo(m[i..]);
                vi.CopyTo(v[i..]);
                var t = (new Vector<float>(theta[i..]) * vDecay) - (vStep * mi / ((Vector.SquareRoot(vi) * vInv) + vEps));
                t.CopyTo(theta[i..]);
            }
        }

        for (; i < n; i++)
        {
            float g = grad[i];
            float mi = (b1 * m[i]) + (c1 * g);
            float vi = (b2 * v[i]) + (c2 * g * g);
            m[i] = mi;
            v[i] = vi;
            theta[i] = theta[i] * decay - stepSize * mi / (MathF.Sqrt(vi) * invSqrtBc2 + eps);
        }
    }

    private static void CheckUnit(float beta, string name)
    {
        if (!float.IsFinite(beta) || beta < 0f || beta >= 1f)
        {
            throw new ArgumentOutOfRangeException(name, beta, "Betas must be in [0, 1).");
        }
    }
}
