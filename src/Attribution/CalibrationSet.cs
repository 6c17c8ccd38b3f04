namespace Attribution.Attribution;

/// <summary>
/// Queries with known ground truth that a method may use in its offline phase to choose its own settings (e.g. the
/// weight of a blend, <see cref="BlendMethod"/>). A benchmark harness builds it from a held-out split of its queries (the
/// ones it reports no LDS on); a method never sees the queries it is evaluated on.
/// </summary>
/// <param name="Queries">The calibration queries.</param>
/// <param name="Objective">The quality of a score matrix over exactly <paramref name="Queries"/> (e.g. mean LDS), larger = better.</param>
/// <param name="Description">What the objective is and over how many queries (for reports).</param>
public sealed record CalibrationSet(QueryBatch Queries, Func<ScoreMatrix, double> Objective, string Description);
