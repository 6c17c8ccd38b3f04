using System.Globalization;
using Attribution.Attribution.Kernels;
using Attribution.Engine;

using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>Random projection used by TRAK.</summary>
public enum TrakProjector
{
    /// <summary>Dense Gaussian N(0, 1/k) matrix [p, k], drawn from the seed and held in memory; projection is one GEMM.</summary>
    Gaussian,

    /// <summary>Sparse Johnson–Lindenstrauss (each parameter hashed to s buckets with random signs, scale 1/√s); O(p·s) per gradient.</summary>
    Sjlt,
}

/// <summary>Options of <see cref="TrakMethod"/>.</summary>
public sealed record TrakOptions
{
    /// <summary>Projection dimension k.</summary>
    public int ProjectionDim { get; init; } = 2048;

    /// <summary>Projector kind.</summary>
    public TrakProjector Projector { get; init; } = TrakProjector.Gaussian;

    /// <summary>Nonzeros per parameter for <see cref="TrakProjector.Sjlt"/>.</summary>
    public int SjltNonzeros { get; init; } = 4;

    /// <summary>Ridge added to ΦᵀΦ, relative to its mean diagonal.</summary>
    public double RelativeDamping { get; init; } = 1e-6;

    /// <summary>Projection seed (one projection shared by every checkpoint, as in TRAK).</summary>
    public ulong Seed { get; init; } = 7;

    /// <summary>
    /// Independently trained models to ensemble over (the first of <see cref="AttributionProblem.Checkpoints"/>); 0 = all
    /// given. Asking for more than the problem holds is refused (<see cref="MethodOptionException"/>), never truncated.
    /// </summary>
    public int Models { get; init; }

    /// <summary>
    /// 0 = off; otherwise every document's whitened feature (a row of Φ L⁻ᵀ, k floats) is compressed to the coefficients
    /// of a fitted rank-<c>Compress</c> basis of those rows (<see cref="ResponseBasis"/>, the compression forward-only's
    /// <c>compress</c> readout uses), so a query reads <c>Compress</c> floats per document instead of k.
    /// </summary>
    public int Compress { get; init; }
}

/// <summary>
/// TRAK (Park et al. 2023): per model c, Φ_c = P ∇margin_i(θ_c) for every training example (own label),
/// Q_c = diag(1 − p_i), and <c>s(q, ·) = φ_q (Φᵀ Φ + λI)⁻¹ Φᵀ Q</c>, averaged over the models. The kernel is factorised
/// by Cholesky in double; Φ is stored pre-multiplied by L⁻ᵀ so a query is one projection and two GEMMs per model.
/// </summary>
public sealed class TrakMethod : IPreparedScoring
{
    private readonly TrakOptions _options;
    private AttributionProblem? _problem;
    private RandomProjection? _projection;
    private DocumentRowsReadout? _readout;
    private readonly List<(float[] Theta, float[] PhiTilde, float[] LinvT, float[] Q, ResponseBasis? Basis)> _models = [];

    /// <summary>Creates TRAK with the given options.</summary>
    public TrakMethod(TrakOptions? options = null)
    {
        _options = options ?? new TrakOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.ProjectionDim, 1, nameof(TrakOptions.ProjectionDim));
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.SjltNonzeros, 1, nameof(TrakOptions.SjltNonzeros));
        ArgumentOutOfRangeException.ThrowIfNegative(_options.RelativeDamping, nameof(TrakOptions.RelativeDamping));
        ArgumentOutOfRangeException.ThrowIfNegative(_options.Compress, nameof(TrakOptions.Compress));
    }

    /// <inheritdoc />
    public string Name => "trak";

    /// <summary>Absolute ridge λ used for the last model (after any growth needed for positive definiteness).</summary>
    public double Ridge { get; private set; }

    /// <inheritdoc />
    public long StateBytes => (_projection?.Bytes ?? 0) + _models.Sum(m => (((long)m.PhiTilde.Length + m.LinvT.Length + m.Q.Length) * sizeof(float)) + (m.Basis?.Bytes ?? 0));

    /// <inheritdoc />
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"trak: k={_options.ProjectionDim}, projector={_options.Projector}, models={(_models.Count > 0 ? _models.Count.ToString(CultureInfo.InvariantCulture) : _options.Models > 0 ? _options.Models.ToString(CultureInfo.InvariantCulture) : "every model given")}, relative damping={_options.RelativeDamping:G3}, seed={_options.Seed}{(_options.Compress > 0 ? $", compress={_options.Compress} (fitted basis of the whitened features, rank {_models.FirstOrDefault().Basis?.Rank}, {_models.FirstOrDefault().Basis?.EnergyKept:P2} of their energy)" : string.Empty)}");

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        int p = problem.ParameterCount, k = _options.ProjectionDim, n = problem.Count;
        _projection = new RandomProjection(_options.Projector, p, k, _options.SjltNonzeros, _options.Seed);
        _models.Clear();
        if (_options.Models > problem.Checkpoints.Count)
        {
            throw new MethodOptionException($"trak:models={_options.Models} needs {_options.Models} independently trained models but only {problem.Checkpoints.Count} were given.");
        }

        var checkpoints = problem.Checkpoints.Take(_options.Models > 0 ? _options.Models : int.MaxValue).ToArray();
        foreach (var theta in checkpoints)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var train = problem.CreateModel(theta).PerExampleGradients(problem.Training, problem.Measurement);
            var phi = _projection.Project(train, cancellationToken);
            var kernel = new float[k * k];
            Blas.Gemm(true, false, k, k, n, 1f, phi, phi, 0f, kernel);
            var kd = new double[k * k];
            double trace = 0;
            for (int i = 0; i < k; i++)
            {
                trace += kernel[i * k + i];
            }

            double ridge = Math.Max(_options.RelativeDamping * trace / k, 1e-12);
            // The float Gram matrix carries rounding of about 1e-7 · trace in its null directions (n < k, or the
            // margin gradients' structural null space); if the requested ridge does not cover it, grow it tenfold.
            for (int attempt = 0; ; attempt++)
            {
                for (int i = 0; i < k; i++)
                {
                    for (int j = 0; j < k; j++)
                    {
                        kd[i * k + j] = 0.5 * ((double)kernel[i * k + j] + kernel[j * k + i]);
                    }

                    kd[i * k + i] += ridge;
                }

                try
                {
                    Linalg.Cholesky(kd, k);
                    break;
                }
                catch (InvalidOperationException) when (attempt < 8)
                {
                    ridge *= 10;
                }
            }

            Ridge = ridge;
            var linv = Linalg.LowerTriangularInverse(kd, k);
            var linvT = new float[k * k];
            for (int i = 0; i < k; i++)
            {
                for (int j = 0; j <= i; j++)
                {
                    linvT[j * k + i] = (float)linv[i * k + j];
                }
            }

            // (ΦᵀΦ)⁻¹ = L⁻ᵀ L⁻¹, so s = (φ_q L⁻ᵀ)(Φ L⁻ᵀ)ᵀ Q.
            var phiTilde = new float[(long)n * k];
            Blas.Gemm(false, false, n, k, k, 1f, phi, linvT, 0f, phiTilde);
            // Q = ∂loss/∂(−measurement) per unit: 1 − p_y for a classifier's margin (p_y = exp(−loss)); 1 for a
            // language model, whose training loss is exactly minus the document's log-likelihood.
            var q = new float[n];
            if (problem.Measurement == ModelOutput.Margin)
            {
                problem.CreateModel(theta).Outputs(problem.Training, ModelOutput.Loss, q);
                for (int i = 0; i < n; i++)
                {
                    q[i] = (float)(1 - Math.Exp(-q[i]));
                }
            }
            else
            {
                Array.Fill(q, 1f);
            }

            if (_options.Compress > 0)
            {
                var basis = ResponseBasis.Fit(phiTilde, n, k, _options.Compress);
                var coefficients = new float[(long)n * basis.Rank];
                basis.Project(phiTilde, n, coefficients);
                _models.Add((theta, coefficients, linvT, q, basis));
            }
            else
            {
                _models.Add((theta, phiTilde, linvT, q, null));
            }
        }

        _problem = problem;
        // A language model's Q is 1 for every document: no weights to multiply by.
        _readout = new DocumentRowsReadout([.. _models.Select(m => new DocumentRowsReadout.Block(m.PhiTilde, m.Basis?.Rank ?? k, problem.Measurement == ModelOutput.Margin ? m.Q : null))], n, problem.SourceIds, problem.SourceCount);
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default) => Readout.Score(Prepare(queries, cancellationToken), cancellationToken);

    /// <summary>The fixed part of a query: per model, its gradient projected (P ∇f_q) and whitened (· L⁻ᵀ), reduced to the basis coefficients with <c>compress</c>.</summary>
    public PreparedQueries Prepare(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var problem = _problem ?? throw new InvalidOperationException("Call Precompute before scoring.");
        problem.CheckQueries(queries);
        int k = _options.ProjectionDim, nq = queries.Count;
        var vectors = new float[_models.Count][];
        for (int c = 0; c < _models.Count; c++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (theta, _, linvT, _, basis) = _models[c];
            var g = problem.CreateModel(theta).PerExampleGradients(queries.Batch, queries.Output);
            var phiQ = _projection!.Project(g, cancellationToken);
            var psi = new float[nq * k];
            Blas.Gemm(false, false, nq, k, k, 1f, phiQ, linvT, 0f, psi);
            if (basis is not null)
            {
                var reduced = new float[(long)nq * basis.Rank];
                basis.Project(psi, nq, reduced);
                psi = reduced;
            }

            vectors[c] = psi;
        }

        return new PreparedQueries(nq, vectors);
    }

    /// <summary>The per-document part: every model's stored rows Φ L⁻ᵀ (or their basis coefficients) weighted by Q, averaged over the models.</summary>
    public IDocumentReadout Readout => _readout ?? throw new InvalidOperationException("Call Precompute before scoring.");

    /// <inheritdoc />
    public IDocumentReadout RepeatedReadout(int factor) => (_readout ?? throw new InvalidOperationException("Call Precompute before scoring.")).Repeated(factor);
}
