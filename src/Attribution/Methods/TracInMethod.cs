using System.Globalization;

using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// TracIn (Pruthi et al. 2020) over <see cref="AttributionProblem.Checkpoints"/>:
/// <c>s(q, b) = Σ_c w_c · (−∇f_q(θ_c)ᵀ ∇ℓ_b(θ_c))</c> with f the query margin and ℓ the training loss, so positive means
/// a gradient step on b raises the query's margin. Grad-Dot is the single-checkpoint case at θ*. Training gradients
/// are kept factored (<see cref="GradientFactors"/>), so a query costs one backward pass plus two GEMMs per layer.
/// </summary>
public sealed class TracInMethod : IAttributionMethod
{
    private readonly bool _gradDot;
    private readonly float[]? _weights;
    private AttributionProblem? _problem;
    private List<GradientFactors>? _train;
    private float[][] _checkpoints = [];

    /// <summary>Creates TracIn (all checkpoints, weights default 1) or Grad-Dot (<paramref name="gradDot"/>: θ* only).</summary>
    public TracInMethod(bool gradDot = false, IReadOnlyList<float>? checkpointWeights = null)
    {
        _gradDot = gradDot;
        _weights = checkpointWeights?.ToArray();
    }

    /// <inheritdoc />
    public string Name => _gradDot ? "grad-dot" : "tracin";

    /// <inheritdoc />
    public long StateBytes => _train?.Sum(t => t.Bytes) ?? 0;

    /// <inheritdoc />
    public string Describe() => _gradDot
        ? "grad-dot: -grad f(q) . grad loss(b) at theta* (f = the query output: margin, or completion log-likelihood)"
        : string.Create(CultureInfo.InvariantCulture, $"tracin: {_checkpoints.Length} checkpoints, weights {(_weights is null ? "1" : string.Join(',', _weights))}");

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        _checkpoints = _gradDot ? [problem.Theta] : problem.Checkpoints.ToArray();
        if (_weights is not null && _weights.Length != _checkpoints.Length)
        {
            throw new ArgumentException($"{_weights.Length} checkpoint weights for {_checkpoints.Length} checkpoints.");
        }

        _train = [];
        foreach (var theta in _checkpoints)
        {
            cancellationToken.ThrowIfCancellationRequested();
            _train.Add(problem.CreateModel(theta).PerExampleGradients(problem.Training, ModelOutput.Loss));
        }

        _problem = problem;
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var problem = _problem ?? throw new InvalidOperationException("Call Precompute before scoring.");
        problem.CheckQueries(queries);
        var scores = new float[(long)queries.Count * problem.Count];
        for (int c = 0; c < _checkpoints.Length; c++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var q = problem.CreateModel(_checkpoints[c]).PerExampleGradients(queries.Batch, queries.Output);
            _train![c].AddInnerProducts(q, -(_weights?[c] ?? 1f), scores);
        }

        return new ScoreMatrix(scores, queries.Count, problem.Count, problem.SourceIds, problem.SourceCount);
    }
}
