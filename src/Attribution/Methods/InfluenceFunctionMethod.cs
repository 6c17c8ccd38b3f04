using System.Globalization;
using Attribution.Attribution.Kernels;

using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>How the damped Hessian system is solved.</summary>
public enum InfluenceSolver
{
    /// <summary>Exact for small models ≤ 4,096 parameters, conjugate gradient otherwise.</summary>
    Auto,

    /// <summary>Dense Hessian from p finite-difference HVPs, symmetrised, Cholesky in double.</summary>
    Exact,

    /// <summary>Conjugate gradient per query with finite-difference HVPs.</summary>
    ConjugateGradient,
}

/// <summary>Options of <see cref="InfluenceFunctionMethod"/>.</summary>
public sealed record InfluenceOptions
{
    /// <summary>Damping λ added to the Hessian of the training objective.</summary>
    public double Damping { get; init; } = 1e-2;

    /// <summary>Solver.</summary>
    public InfluenceSolver Solver { get; init; } = InfluenceSolver.Auto;

    /// <summary>Maximum CG iterations.</summary>
    public int MaxIterations { get; init; } = 100;

    /// <summary>CG relative residual tolerance.</summary>
    public double Tolerance { get; init; } = 1e-5;
}

/// <summary>
/// Damped influence functions (Koh &amp; Liang 2017): <c>s(q, b) = −∇f_q(θ*)ᵀ (H + λI)⁻¹ ∇ℓ_b(θ*)</c> with f the query
/// margin, ℓ the training loss and H the Hessian of the training objective (mean loss plus weight decay); positive
/// means up-weighting b raises the query's margin. The target that forward-only simulation converges to as K → ∞.
/// </summary>
public sealed class InfluenceFunctionMethod : IAttributionMethod
{
    private const int ExactLimit = 4096;
    private readonly InfluenceOptions _options;
    private AttributionProblem? _problem;
    private GradientFactors? _train;
    private double[]? _cholesky;
    private TrainingObjective? _objective;

    /// <summary>Creates the method.</summary>
    public InfluenceFunctionMethod(InfluenceOptions? options = null)
    {
        _options = options ?? new InfluenceOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(_options.Damping, nameof(InfluenceOptions.Damping));
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxIterations, 1, nameof(InfluenceOptions.MaxIterations));
    }

    /// <inheritdoc />
    public string Name => "if";

    /// <summary>CG iterations used by the last query (0 for the exact solver).</summary>
    public int LastIterations { get; private set; }

    /// <inheritdoc />
    public long StateBytes => (_train?.Bytes ?? 0) + (_cholesky?.LongLength ?? 0) * sizeof(double);

    /// <inheritdoc />
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"if: lambda={_options.Damping:G3}, solver={(_cholesky is null ? "cg" : "exact")}, max iterations={_options.MaxIterations}, tolerance={_options.Tolerance:G3}");

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        int p = problem.ParameterCount;
        _objective = new TrainingObjective(problem);
        _train = problem.CreateModel().PerExampleGradients(problem.Training, ModelOutput.Loss);
        bool exact = _options.Solver == InfluenceSolver.Exact || (_options.Solver == InfluenceSolver.Auto && p <= ExactLimit);
        _cholesky = null;
        if (exact)
        {
            var h = new double[(long)p * p];
            var e = new double[p];
            var col = new double[p];
            for (int j = 0; j < p; j++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                e[j] = 1;
                _objective.Hvp(problem.Theta, e, col);
                e[j] = 0;
                for (int i = 0; i < p; i++)
                {
                    h[(long)i * p + j] = col[i];
                }
            }

            for (int i = 0; i < p; i++)
            {
                for (int j = 0; j < i; j++)
                {
                    double s = 0.5 * (h[(long)i * p + j] + h[(long)j * p + i]);
                    h[(long)i * p + j] = s;
                    h[(long)j * p + i] = s;
                }

                h[(long)i * p + i] += _options.Damping;
            }

            Linalg.Cholesky(h, p);
            _cholesky = h;
        }

        _problem = problem;
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var problem = _problem ?? throw new InvalidOperationException("Call Precompute before scoring.");
        problem.CheckQueries(queries);
        int n = problem.Count, p = problem.ParameterCount, nq = queries.Count;
        var g = problem.CreateModel().PerExampleGradients(queries.Batch, queries.Output);
        var dense = new float[p];
        var rhs = new double[p];
        var solution = new double[p];
        var v = new float[p];
        var scores = new float[(long)nq * n];
        for (int q = 0; q < nq; q++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            g.Dense(q, 1, dense);
            for (int j = 0; j < p; j++)
            {
                rhs[j] = dense[j];
            }

            if (_cholesky is not null)
            {
                rhs.CopyTo(solution, 0);
                Linalg.CholeskySolve(_cholesky, p, solution);
                LastIterations = 0;
            }
            else
            {
                var objective = _objective!;
                double damping = _options.Damping;
                LastIterations = Linalg.ConjugateGradient((x, y) =>
                {
                    objective.Hvp(problem.Theta, x, y);
                    for (int j = 0; j < x.Length; j++)
                    {
                        y[j] += damping * x[j];
                    }
                }, rhs, solution, _options.MaxIterations, _options.Tolerance);
            }

            for (int j = 0; j < p; j++)
            {
                v[j] = (float)-solution[j];
            }

            _train!.DotDense(v, scores.AsSpan(q * n, n));
        }

        return new ScoreMatrix(scores, nq, n, problem.SourceIds, problem.SourceCount);
    }
}
