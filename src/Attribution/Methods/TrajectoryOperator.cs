using System.Numerics.Tensors;
using Attribution.Attribution.Kernels;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Forward-only's response map in spectral form, built once per checkpoint (docs/forward-only-attribution.md §3, §6).
/// Linearised in ε and with the curvature frozen at θ*, K steps of size η on the simulated objective map a unit's loss
/// gradient g to the response <c>r = φ(A) g</c>, <c>φ(a) = −(1 − (1 − ηa)^K) / a</c> (<c>φ(0) = −ηK</c>), where
/// <c>A = H + (wd + λ) I</c> is the Hessian of the simulated objective. The top <see cref="Rank"/> eigenpairs of the
/// training objective's Hessian (mean loss over a sample of the simulation's mini-batches, plus weight decay) come from
/// Lanczos with full re-orthogonalisation on finite-difference Hessian-vector products, all through <see cref="IModel"/>
/// (so the same operator serves any model); outside their span the loss curvature is taken as 0, so the map there is
/// <c>φ(wd + λ)</c>, and Ritz values below the weight decay are clamped to it (no amplified negative curvature). Applying it to a block of m gradients is two GEMMs, <c>R = φ(c) G + (G Vᵀ) diag(φ(a_j) − φ(c)) V</c>:
/// each unit costs one gradient plus 4·rank·p flops instead of 2K gradient steps.
/// </summary>
public sealed class TrajectoryOperator
{
    private readonly float[] _vectors;

    private TrajectoryOperator(float[] vectors, double[] eigenvalues, int parameterCount, double complement)
    {
        _vectors = vectors;
        Eigenvalues = eigenvalues;
        ParameterCount = parameterCount;
        Complement = complement;
    }

    /// <summary>Number of eigenpairs kept (Lanczos may stop early on an invariant subspace).</summary>
    public int Rank => Eigenvalues.Count;

    /// <summary>p.</summary>
    public int ParameterCount { get; }

    /// <summary>Ritz values of the training objective's Hessian (loss curvature + wd), descending.</summary>
    public IReadOnlyList<double> Eigenvalues { get; }

    /// <summary>The Ritz vectors, [Rank, p] row-major (orthonormal), in the order of <see cref="Eigenvalues"/>.</summary>
    public ReadOnlySpan<float> Vectors => _vectors;

    /// <summary>The eigenvalue assumed outside the Ritz vectors' span (the weight decay).</summary>
    public double Complement { get; }

    /// <summary>The Ritz value of largest magnitude (|h_max| of the objective, for the step size).</summary>
    public double TopEigenvalue => Eigenvalues.Count == 0 ? Complement : Eigenvalues.Max(Math.Abs);

    /// <summary>
    /// Runs <paramref name="rank"/> Lanczos steps on the Hessian of <paramref name="objective"/> at θ, from a seeded
    /// random start. <paramref name="weightDecay"/> is the objective's own (the eigenvalue outside the span).
    /// </summary>
    public static TrajectoryOperator Build(TrainingObjective objective, ReadOnlySpan<float> theta, float weightDecay, int rank, ulong seed,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentOutOfRangeException.ThrowIfLessThan(rank, 1);
        int p = theta.Length;
        rank = Math.Min(rank, p);
        var basis = new float[(long)rank * p];
        var alpha = new List<double>();
        var beta = new List<double>();
        var q = new double[p];
        var w = new double[p];
        var wf = new float[p];
        var coefficients = new float[rank];
        new Rng(seed ^ 0x5DEECE66DUL).FillNormal(wf);
        TensorPrimitives.Multiply(wf, 1f / TensorPrimitives.Norm(wf), wf);
        wf.CopyTo(basis.AsSpan(0, p));
        double first = 0;
        for (int j = 0; j < rank; j++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var qj = basis.AsSpan(j * p, p);
            for (int i = 0; i < p; i++)
            {
                q[i] = qj[i];
            }

            objective.Hvp(theta, q, w);
            double a = TensorPrimitives.Dot<double>(q, w);
            alpha.Add(a);
            first = Math.Max(first, Math.Abs(a));
            if (j == rank - 1)
            {
                break;
            }

            for (int i = 0; i < p; i++)
            {
                wf[i] = (float)(w[i] - a * q[i] - (j > 0 ? beta[j - 1] * basis[(long)(j - 1) * p + i] : 0));
            }

            // Full re-orthogonalisation against every kept vector, twice (float Lanczos loses orthogonality fast).
            var kept = basis.AsSpan(0, (j + 1) * p);
            for (int pass = 0; pass < 2; pass++)
            {
                Blas.Gemm(false, false, j + 1, 1, p, 1f, kept, wf, 0f, coefficients.AsSpan(0, j + 1));
                Blas.Gemm(true, false, p, 1, j + 1, -1f, kept, coefficients.AsSpan(0, j + 1), 1f, wf);
            }

            double b = TensorPrimitives.Norm(wf);
            if (!(b > 1e-6 * Math.Max(first, 1e-12)))
            {
                break; // invariant subspace: the Krylov space holds every direction the start vector reaches
            }

            beta.Add(b);
            TensorPrimitives.Multiply(wf, (float)(1 / b), basis.AsSpan((j + 1) * p, p));
        }

        int m = alpha.Count;
        var tridiagonal = new double[m * m];
        for (int j = 0; j < m; j++)
        {
            tridiagonal[j * m + j] = alpha[j];
            if (j + 1 < m)
            {
                tridiagonal[j * m + j + 1] = tridiagonal[(j + 1) * m + j] = beta[j];
            }
        }

        var (values, vectors) = Linalg.SymmetricEigen(tridiagonal, m);
        var order = Enumerable.Range(0, m).OrderByDescending(k => values[k]).ToArray();
        // Ritz vectors V = Yᵀ Q: row k is Σ_j Y[j, order k] q_j.
        var y = new float[m * m];
        for (int j = 0; j < m; j++)
        {
            for (int k = 0; k < m; k++)
            {
                y[j * m + k] = (float)vectors[j * m + order[k]];
            }
        }

        var ritz = new float[(long)m * p];
        Blas.Gemm(true, false, m, p, m, 1f, y, basis.AsSpan(0, m * p), 0f, ritz);
        return new TrajectoryOperator(ritz, [.. order.Select(k => values[k])], p, weightDecay);
    }

    /// <summary>
    /// φ(a) of K steps of size η: <c>−(1 − (1 − ηa)^K) / a</c>, the limit −ηK at a = 0.
    /// </summary>
    public static double Response(double a, double eta, int horizon)
    {
        double x = eta * a;
        if (Math.Abs(x) < 1e-9)
        {
            return -eta * horizon;
        }

        return -(1 - Math.Pow(1 - x, horizon)) / a;
    }

    /// <summary>
    /// Overwrites each of the <paramref name="count"/> rows of <paramref name="gradients"/> ([count, p], one unit's loss
    /// gradient per row) with its response <c>φ(A) g</c> for step size <paramref name="eta"/>, horizon
    /// <paramref name="horizon"/> and proximal damping <paramref name="damping"/>.
    /// </summary>
    public void Apply(Span<float> gradients, int count, double eta, int horizon, double damping)
    {
        int p = ParameterCount, r = Rank;
        if (gradients.Length < (long)count * p)
        {
            throw new ArgumentException($"Apply: {gradients.Length} floats for {count} gradients of {p} parameters.", nameof(gradients));
        }

        double outside = Response(Complement + damping, eta, horizon);
        var projections = new float[count * r];
        Blas.Gemm(false, true, count, r, p, 1f, gradients[..(count * p)], _vectors, 0f, projections);
        for (int k = 0; k < r; k++)
        {
            // Curvature below the weight decay (negative Ritz values, down to −4.6 on a FashionMNIST MLP, from ReLU kinks
            // in the finite differences and the sample's own saddle directions) is clamped to it: frozen, φ would grow it
            // by (1 + η|a|)^K (10⁴ there), which the trajectory's changing mini-batches never do; unclamped, LDS fell to 0.05.
            float scale = (float)(Response(Math.Max(Eigenvalues[k], Complement) + damping, eta, horizon) - outside);
            for (int u = 0; u < count; u++)
            {
                projections[u * r + k] *= scale;
            }
        }

        Blas.Gemm(false, false, count, p, r, 1f, projections, _vectors, (float)outside, gradients[..(count * p)]);
    }
}
