using Attribution.Engine;

namespace Attribution.Attribution.Evaluation;

/// <summary>
/// Result of the top-k removal counterfactual (shared/docs/evaluation.md §4, probability-drop form with margins):
/// per sampled query, the drop of its output when its k top-scored training examples are removed and the model
/// retrained, against removing k random examples. Drops are <c>f_q(θ) − f_q(θ_{−removed})</c>, averaged over seeds.
/// </summary>
public sealed record TopKRemovalResult(int K, int[] Queries, int[] Seeds, ulong RandomSeed, double[] TopKDrop, double[] RandomDrop)
{
    /// <summary>Mean drop over sampled queries when the top-k are removed.</summary>
    public MetricSummary TopK => MetricSummary.FromPerQuery(TopKDrop);

    /// <summary>Mean drop over sampled queries when k random examples are removed (the baseline).</summary>
    public MetricSummary Random => MetricSummary.FromPerQuery(RandomDrop);
}

/// <summary>Runs the top-k removal counterfactual through the retraining delegate (one retrain per query, k and seed).</summary>
public static class TopKRemoval
{
    /// <summary>
    /// For each query in <paramref name="queries"/> (indices into the score matrix and the test set), removes its top
    /// <paramref name="k"/> examples, and separately k uniformly random ones (drawn with <paramref name="randomSeed"/>),
    /// retrains with each seed and measures the drop of that query's output.
    /// </summary>
    public static TopKRemovalResult Run(ScoreMatrix scores, int[] queries, int k, int[] seeds, ulong randomSeed,
        RetrainAndMeasure retrain, IProgress<RetrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(seeds);
        ArgumentNullException.ThrowIfNull(retrain);
        int n = scores.ExampleCount;
        if (k < 1 || k >= n)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, $"k must lie in 1..{n - 1} for a pool of {n} examples.");
        }

        foreach (var q in queries)
        {
            if ((uint)q >= (uint)scores.QueryCount)
            {
                throw new ArgumentOutOfRangeException(nameof(queries), q, $"query index {q} is outside the test set 0..{scores.QueryCount - 1}.");
            }
        }

        int total = seeds.Length * (1 + (2 * queries.Length)), done = 0;
        var full = RetrainingHarness.RunFull(n, seeds, scores.QueryCount, retrain, cancellationToken);
        done += seeds.Length;
        progress?.Report(new RetrainProgress(done, total, "top-k removal"));
        var rng = new Rng(randomSeed);
        var topDrop = new double[queries.Length];
        var randomDrop = new double[queries.Length];
        for (int a = 0; a < queries.Length; a++)
        {
            int q = queries[a];
            var top = scores.TopK(q, k).Select(t => t.Example).ToArray();
            var random = rng.Permutation(n).AsSpan(0, k).ToArray();
            var withoutTop = RetrainingHarness.MeanOverSeeds(RetrainingHarness.Complement(n, top), seeds, scores.QueryCount, retrain, cancellationToken);
            done += seeds.Length;
            progress?.Report(new RetrainProgress(done, total, "top-k removal"));
            var withoutRandom = RetrainingHarness.MeanOverSeeds(RetrainingHarness.Complement(n, random), seeds, scores.QueryCount, retrain, cancellationToken);
            done += seeds.Length;
            progress?.Report(new RetrainProgress(done, total, "top-k removal"));
            topDrop[a] = full[q] - withoutTop[q];
            randomDrop[a] = full[q] - withoutRandom[q];
        }

        return new TopKRemovalResult(k, queries, seeds, randomSeed, topDrop, randomDrop);
    }
}
