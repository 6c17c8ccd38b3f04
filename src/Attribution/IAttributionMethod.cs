namespace Attribution.Attribution;

/// <summary>
/// An attribution method: precompute once from a training run, then score any number of queries.
/// Scores follow the product's sign convention (shared/docs/evaluation.md §1): positive means training on the example
/// helps the query (raises its margin / lowers its loss).
/// </summary>
public interface IAttributionMethod
{
    /// <summary>Stable method name as typed on the command line, e.g. <c>forward-only</c>, <c>trak</c>.</summary>
    string Name { get; }

    /// <summary>Human-readable configuration (horizon, projection size, ensemble size...) for reports.</summary>
    string Describe();

    /// <summary>The offline phase: simulate / project / factorise from the training run. Called once.</summary>
    void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default);

    /// <summary>Scores every training example (and every source) for each query. Requires <see cref="Precompute"/>.</summary>
    ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default);

    /// <summary>
    /// Per-source scores only. Methods that store per-source state answer this far faster than summing
    /// <see cref="Score"/>'s per-example columns; the default does exactly that sum.
    /// </summary>
    float[] ScoreSources(QueryBatch queries, CancellationToken cancellationToken = default) => Score(queries, cancellationToken).SourceScores;

    /// <summary>Bytes held by the precomputed state (for the memory column of benchmarks).</summary>
    long StateBytes { get; }
}
