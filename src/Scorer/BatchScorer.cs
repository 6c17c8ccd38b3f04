using System.Diagnostics;
using Attribution.Contracts;

namespace Attribution.Scorer;

/// <summary>A scored batch: each query's attribution and the full score rows (for the alert policy).</summary>
internal sealed record ScoredBatch(AttributionResult[] Results, QueryScores Scores);

/// <summary>
/// Scoring: runs one batched readout through the <see cref="IQueryScorer"/> and builds each query's
/// <see cref="AttributionResult"/> (top-k examples with their sources, every source's score and name, the output function
/// the scores explain, latency since arrival).
/// </summary>
internal sealed class BatchScorer(int topK, ScorerMetrics metrics)
{
    /// <summary>The method name written into the image classifier's attributions.</summary>
    public const string MethodName = "forward-only";

    /// <summary>Scores <paramref name="queries"/> (each validated by the scorer) at time <paramref name="now"/>.</summary>
    public ScoredBatch Score(IQueryScorer scorer, IReadOnlyList<ModelQuery> queries, IReadOnlyList<DateTimeOffset> arrivals, DateTimeOffset now)
    {
        int n = queries.Count;
        var readout = Stopwatch.GetTimestamp();
        var scores = scorer.Score(queries);
        metrics.ReadOut(Stopwatch.GetElapsedTime(readout));
        metrics.Batch();
        var sourceIds = scorer.SourceIds as long[] ?? [.. scorer.SourceIds];
        var exampleSources = scorer.ExampleSourceIds;
        var results = new AttributionResult[n];
        for (int q = 0; q < n; q++)
        {
            var top = scorer.TopK(scores, q, topK);
            var exampleIds = new long[top.Length];
            var exampleScores = new float[top.Length];
            var sources = exampleSources is null ? null : new long[top.Length];
            for (int i = 0; i < top.Length; i++)
            {
                exampleIds[i] = scorer.ExampleIds[top[i].Example];
                exampleScores[i] = top[i].Score;
                sources?[i] = exampleSources![top[i].Example];
            }

            var latency = Math.Max(0, (long)(now - arrivals[q]).TotalMicroseconds);
            results[q] = new AttributionResult(queries[q].QueryId, scorer.Version, scorer.Method, exampleIds, exampleScores,
                sourceIds, scores.SourceRow(q).ToArray(), latency)
            {
                OutputFunction = scorer.OutputFunction,
                ExampleSourceIds = sources,
                SourceNames = scorer.SourceNames,
            };
        }

        return new ScoredBatch(results, scores);
    }
}
