using System.Diagnostics;
using Attribution.Contracts;

namespace Attribution.Scorer;

/// <summary>A scored batch: each query's attribution and the full score rows (for the alert policy).</summary>
internal sealed record ScoredBatch(AttributionResult[] Results, QueryScores Scores);

/// <summary>
/// Scoring: packs a batch's features, runs one batched readout through the <see cref="IQueryScorer"/>, and builds each
/// query's <see cref="AttributionResult"/> (top-k examples, every source's score, latency since arrival).
/// </summary>
internal sealed class BatchScorer(int topK, ScorerMetrics metrics)
{
    /// <summary>The method name written into attributions.</summary>
    public const string MethodName = "forward-only";

    /// <summary>Scores <paramref name="queries"/> (each of the scorer's input width) at time <paramref name="now"/>.</summary>
    public ScoredBatch Score(IQueryScorer scorer, IReadOnlyList<ModelQuery> queries, IReadOnlyList<DateTimeOffset> arrivals, DateTimeOffset now)
    {
        int d = scorer.InputWidth, n = queries.Count;
        var x = new float[(long)n * d];
        for (int q = 0; q < n; q++)
        {
            CopyFeatures(queries[q].Features ?? throw new ArgumentException($"query '{queries[q].QueryId}' has no features", nameof(queries)), x.AsSpan(q * d, d));
        }

        var readout = Stopwatch.GetTimestamp();
        var scores = scorer.Score(x, n);
        metrics.ReadOut(Stopwatch.GetElapsedTime(readout));
        metrics.Batch();
        var sourceIds = scorer.SourceIds as long[] ?? [.. scorer.SourceIds];
        var results = new AttributionResult[n];
        for (int q = 0; q < n; q++)
        {
            var top = scorer.TopK(scores, q, topK);
            var exampleIds = new long[top.Length];
            var exampleScores = new float[top.Length];
            for (int i = 0; i < top.Length; i++)
            {
                exampleIds[i] = scorer.ExampleIds[top[i].Example];
                exampleScores[i] = top[i].Score;
            }

            var latency = Math.Max(0, (long)(now - arrivals[q]).TotalMicroseconds);
            results[q] = new AttributionResult(queries[q].QueryId, scorer.Version, MethodName, exampleIds, exampleScores,
                sourceIds, scores.SourceRow(q).ToArray(), latency);
        }

        return new ScoredBatch(results, scores);
    }

    private static void CopyFeatures(IReadOnlyList<float> features, Span<float> destination)
    {
        if (features.Count != destination.Length)
        {
            throw new ArgumentException($"{features.Count} features for a model of width {destination.Length}", nameof(features));
        }

        switch (features)
        {
            case float[] array:
                array.CopyTo(destination);
                break;
            case ArraySegment<float> segment:
                segment.AsSpan().CopyTo(destination);
                break;
            default:
                for (int j = 0; j < destination.Length; j++)
                {
                    destination[j] = features[j];
                }

                break;
        }
    }
}
