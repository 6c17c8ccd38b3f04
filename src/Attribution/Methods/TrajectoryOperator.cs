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
/// Lanczos with full re-orthogonalisation on Hessian-vector products: finite differences of gradients through
/// <see cref="IModel"/> (so the same operator serves any model), or exact ones (an MLP's R-operator); outside their span the loss curvature is taken as 0, so the map there is
/// <c>φ(wd + λ)</c>, and Ritz values below the weight decay are clamped to it (no amplified negative curvature). Applying it to a block of m gradients is two GEMMs, <c>R = φ(c) G + (G Vᵀ) diag(φ(a_j) − φ(c)) V</c>:
/// each unit costs one gradient plus 4·rank·p flops instead of 2K gradient steps.
/// </summary>
public sealed class TrajectoryOperator
{
    /// <summary><c>hv = H v</c> for the objective's Hessian H (loss curvature plus weight decay).</summary>
    public delegate void HessianProduct(ReadOnlySpan<double> v, Span<double> hv);

    private readonly float[] _vectors;

    private TrajectoryOperator(float[] vectors, double[] eigenvalues, int parameterCount, double floor, double complement)
    {
        _vectors = vectors;
        Eigenvalues = eigenvalues;
        ParameterCount = parameterCount;
        Floor = floor;
        Complement = complement;
        // Ritz values at or below the floor are clamped to it (Accumulate); when the complement is the floor too, their
        // directions are mapped exactly as the complement is, so they drop out of both GEMMs. Eigenvalues are descending:
        // the directions that act are a prefix.
        ActiveRank = complement == floor ? eigenvalues.Count(a => a > floor) : eigenvalues.Length;
    }

    /// <summary>Number of eigenpairs kept (Lanczos may stop early on an invariant subspace).</summary>
    public int Rank => Eigenvalues.Count;

    /// <summary>
    /// The Ritz directions the map treats differently from the complement (those above the floor when the complement
    /// is the floor, all of them otherwise): the rank <see cref="Accumulate"/> multiplies by. On a FashionMNIST MLP about
    /// half of 128 Lanczos Ritz values are negative (the Hessian's negative end), so this halves the per-example GEMMs.
    /// </summary>
    public int ActiveRank { get; }

    /// <summary>p.</summary>
    public int ParameterCount { get; }

    /// <summary>Ritz values of the training objective's Hessian (loss curvature + wd), descending.</summary>
    public IReadOnlyList<double> Eigenvalues { get; }

    /// <summary>The Ritz vectors, [Rank, p] row-major (orthonormal), in the order of <see cref="Eigenvalues"/>.</summary>
    public ReadOnlySpan<float> Vectors => _vectors;

    /// <summary>
    /// The eigenvalue assumed outside the Ritz vectors' span: the weight decay, or the gradients' Rayleigh quotient there
    /// (<see cref="WithGradientComplement"/>).
    /// </summary>
    public double Complement { get; }

    /// <summary>The smallest curvature a Ritz value is taken at (the weight decay; see <see cref="Apply"/>).</summary>
    public double Floor { get; }

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
        var at = theta.ToArray();
        return Build((v, hv) => objective.Hvp(at, v, hv), at.Length, weightDecay, rank, seed, cancellationToken);
    }

    /// <summary>
    /// The same Lanczos on any Hessian-vector product of the objective (loss curvature plus weight decay) on
    /// <paramref name="parameterCount"/> parameters, e.g. the exact R-operator products of an MLP
    /// (<see cref="Engine.Models.MlpCurvature"/>) instead of finite differences of gradients.
    /// </summary>
    public static TrajectoryOperator Build(HessianProduct hvp, int parameterCount, float weightDecay, int rank, ulong seed,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hvp);
        ArgumentOutOfRangeException.ThrowIfLessThan(rank, 1);
        int p = parameterCount;
        rank = Math.Min(rank, p);
        var basis = new float[(long)rank * p];
        var alpha = new List<double>();
        var beta = new List<double>();
        var q = new double[p];
        var w = new double[p];
        var wf = new float[p];
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

            hvp(q, w);
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

            // Full re-orthogonalisation against every kept vector (float Lanczos loses orthogonality fast), by modified
            // Gram-Schmidt: each kept vector's dot and update back to back, so it is read from memory once per pass (the
            // basis is tens of MB; a one-column GEMM packed all of it on every call and cost more than the
            // Hessian-vector products at N = 1,000). A second pass only when the first removed a large part of w
            // (‖w‖ fell below 1/√2 of what it was: Daniel-Gragg-Kaufman-Stewart), as "twice is enough" needs.
            for (int pass = 0; pass < 2; pass++)
            {
                double before = TensorPrimitives.Norm(wf);
                for (int i = 0; i <= j; i++)
                {
                    var row = basis.AsSpan(i * p, p);
                    TensorPrimitives.MultiplyAdd(row, -TensorPrimitives.Dot(row, wf), wf, wf);
                }

                if (TensorPrimitives.Norm(wf) > 0.7071 * before)
                {
                    break;
                }
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
        return new TrajectoryOperator(ritz, [.. order.Select(k => values[k])], p, weightDecay, weightDecay);
    }

    /// <summary>
    /// The same operator with the curvature outside span(V) set to the Rayleigh quotient of the objective's Hessian along
    /// the components of <paramref name="probes"/> ([count, p], e.g. training examples' loss gradients) outside span(V),
    /// <c>Σ g⊥ᵀ H g⊥ / Σ ‖g⊥‖²</c> (at least the weight decay): the curvature the examples' gradients actually meet
    /// there, instead of none. Costs one HVP per probe.
    /// </summary>
    public TrajectoryOperator WithGradientComplement(TrainingObjective objective, ReadOnlySpan<float> theta, ReadOnlySpan<float> probes, int count,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(objective);
        int p = ParameterCount, r = Rank;
        var rest = probes[..(count * p)].ToArray();
        double total = TensorPrimitives.Dot<float>(rest, rest);
        var coefficients = new float[count * r];
        Blas.Gemm(false, true, count, r, p, 1f, rest, _vectors, 0f, coefficients);
        Blas.Gemm(false, false, count, p, r, -1f, coefficients, _vectors, 1f, rest);
        var v = new double[p];
        var hv = new double[p];
        double numerator = 0, denominator = 0;
        for (int u = 0; u < count; u++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var row = rest.AsSpan(u * p, p);
            for (int i = 0; i < p; i++)
            {
                v[i] = row[i];
            }

            objective.Hvp(theta, v, hv);
            numerator += TensorPrimitives.Dot<double>(v, hv);
            denominator += TensorPrimitives.Dot<double>(v, v);
        }

        // Probes (nearly) inside the span leave only rounding outside it, whose Rayleigh quotient means nothing.
        double complement = denominator > 1e-8 * total ? Math.Max(numerator / denominator, Floor) : Floor;
        return new TrajectoryOperator(_vectors, [.. Eigenvalues], p, Floor, complement);
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
    /// The part of φ contributed by one segment of the horizon: steps <c>[K − after − steps, K − after)</c> of K, i.e.
    /// <c>(1 − ηa)^after · φ_steps(a)</c> (a gradient applied at those steps, then carried through the last
    /// <paramref name="after"/> steps). Summed over segments that tile the horizon it is φ_K(a).
    /// </summary>
    public static double SegmentResponse(double a, double eta, int steps, int after) => Math.Pow(1 - eta * a, after) * Response(a, eta, steps);

    /// <summary>
    /// Overwrites each of the <paramref name="count"/> rows of <paramref name="gradients"/> ([count, p], one unit's loss
    /// gradient per row) with its response <c>φ(A) g</c> for step size <paramref name="eta"/>, horizon
    /// <paramref name="horizon"/> and proximal damping <paramref name="damping"/>.
    /// </summary>
    public void Apply(Span<float> gradients, int count, double eta, int horizon, double damping)
    {
        var response = new float[(long)count * ParameterCount];
        Accumulate(gradients, count, eta, horizon, 0, damping, response);
        response.CopyTo(gradients);
    }

    /// <summary>The Ritz vectors the map acts on (<see cref="ActiveRank"/> rows of <see cref="Vectors"/>, [ActiveRank, p]).</summary>
    public ReadOnlySpan<float> ActiveVectors => _vectors.AsSpan(0, ActiveRank * ParameterCount);

    /// <summary>
    /// One horizon segment's map (<see cref="SegmentResponse"/>) in the operator's terms: a gradient g contributes
    /// <c>outside · g + Σ_k scales[k] (V_k · g) V_k</c> over the <see cref="ActiveRank"/> directions, where outside is
    /// the map on the complement and scales[k] the difference of direction k's map from it.
    /// </summary>
    public (double Outside, float[] Scales) SegmentScales(double eta, int steps, int after, double damping)
    {
        double outside = SegmentResponse(Complement + damping, eta, steps, after);
        var scales = new float[ActiveRank];
        for (int k = 0; k < scales.Length; k++)
        {
            // Curvature below the weight decay (negative Ritz values, down to −4.6 on a FashionMNIST MLP, from ReLU kinks
            // in the finite differences and the sample's own saddle directions) is clamped to it: frozen, φ would grow it
            // by (1 + η|a|)^K (10⁴ there), which the trajectory's changing mini-batches never do; unclamped, LDS fell to 0.05.
            scales[k] = (float)(SegmentResponse(Math.Max(Eigenvalues[k], Floor) + damping, eta, steps, after) - outside);
        }

        return (outside, scales);
    }

    /// <summary>
    /// Adds to <paramref name="responses"/> ([count, p]) the contribution of one horizon segment
    /// (<see cref="SegmentResponse"/>) of the gradients <paramref name="gradients"/> ([count, p]): what a unit's loss
    /// gradient taken at that segment (of the shared unperturbed trajectory) adds to its response.
    /// </summary>
    public void Accumulate(ReadOnlySpan<float> gradients, int count, double eta, int steps, int after, double damping, Span<float> responses)
    {
        int p = ParameterCount, r = ActiveRank;
        if (gradients.Length < (long)count * p || responses.Length < (long)count * p)
        {
            throw new ArgumentException($"Apply: {gradients.Length} / {responses.Length} floats for {count} gradients of {p} parameters.", nameof(gradients));
        }

        var (outside, scales) = SegmentScales(eta, steps, after, damping);
        var projections = new float[count * r];
        var vectors = ActiveVectors;
        Blas.Gemm(false, true, count, r, p, 1f, gradients[..(count * p)], vectors, 0f, projections);
        for (int k = 0; k < r; k++)
        {
            for (int u = 0; u < count; u++)
            {
                projections[u * r + k] *= scales[k];
            }
        }

        TensorPrimitives.MultiplyAdd(gradients[..(count * p)], (float)outside, responses[..(count * p)], responses[..(count * p)]);
        if (r > 0)
        {
            Blas.Gemm(false, false, count, p, r, 1f, projections, vectors, 1f, responses[..(count * p)]);
        }
    }
}
