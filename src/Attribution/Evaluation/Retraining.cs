namespace Attribution.Attribution.Evaluation;

/// <summary>
/// Retrains the benchmark's recipe on <paramref name="trainSubset"/> (sorted indices into the training pool) with
/// <paramref name="seed"/> and returns the model output on every test query, in the test set's order: the margin for
/// classification, or <c>−loss</c> for loss targets (so larger is always better). Must be deterministic per
/// (subset, seed): the CLI caches its results on disk by recipe hash, subset and seed.
/// </summary>
public delegate float[] RetrainAndMeasure(int[] trainSubset, int seed, CancellationToken cancellationToken);

/// <summary>Progress of a retraining campaign: models finished out of models planned.</summary>
public readonly record struct RetrainProgress(int Done, int Total, string Stage);

/// <summary>
/// LDS ground truth: the actual outputs of every subset model, one [m, q] matrix per retraining replicate
/// (replicate r of subset j used seed <c>Plan.Seeds[j][r]</c>).
/// </summary>
public sealed record LdsGroundTruth(SubsetPlan Plan, int QueryCount, IReadOnlyList<double[]> Replicates)
{
    /// <summary>The first replicate (one model per subset: the reference protocol).</summary>
    public double[] Primary => Replicates[0];

    /// <summary>The outputs averaged over all replicates (several seeds per subset).</summary>
    public double[] Mean()
    {
        var mean = new double[Primary.Length];
        foreach (var r in Replicates)
        {
            for (int i = 0; i < mean.Length; i++)
            {
                mean[i] += r[i];
            }
        }

        for (int i = 0; i < mean.Length; i++)
        {
            mean[i] /= Replicates.Count;
        }

        return mean;
    }

    /// <summary>Noise ceiling between replicates 0 and 1; null with a single replicate.</summary>
    public MetricSummary? NoiseCeiling() =>
        Replicates.Count < 2 ? null : Lds.NoiseCeiling(Replicates[0], Replicates[1], Plan.Count, QueryCount);
}

/// <summary>Drives <see cref="RetrainAndMeasure"/> through the retraining campaigns of each protocol.</summary>
public static class RetrainingHarness
{
    /// <summary>Trains every (subset, seed) model of the plan and collects its outputs.</summary>
    public static LdsGroundTruth RunLds(SubsetPlan plan, int queryCount, RetrainAndMeasure retrain,
        IProgress<RetrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(retrain);
        int replicates = plan.Seeds.Min(s => s.Length);
        var outputs = new double[replicates][];
        for (int r = 0; r < replicates; r++)
        {
            outputs[r] = new double[plan.Count * queryCount];
        }

        int total = plan.Count * replicates, done = 0;
        for (int r = 0; r < replicates; r++)
        {
            for (int j = 0; j < plan.Count; j++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var y = Measure(retrain, plan.Subsets[j], plan.Seeds[j][r], queryCount, cancellationToken);
                for (int q = 0; q < queryCount; q++)
                {
                    outputs[r][(j * queryCount) + q] = y[q];
                }

                progress?.Report(new RetrainProgress(++done, total, "LDS ground truth"));
            }
        }

        return new LdsGroundTruth(plan, queryCount, outputs);
    }

    /// <summary>All indices 0..n−1 except those in <paramref name="removed"/>, sorted.</summary>
    public static int[] Complement(int poolSize, IEnumerable<int> removed)
    {
        ArgumentNullException.ThrowIfNull(removed);
        var drop = new bool[poolSize];
        foreach (var i in removed)
        {
            if ((uint)i >= (uint)poolSize)
            {
                throw new ArgumentException($"cannot remove training index {i}: the pool is 0..{poolSize - 1}.", nameof(removed));
            }

            drop[i] = true;
        }

        var kept = new List<int>(poolSize);
        for (int i = 0; i < poolSize; i++)
        {
            if (!drop[i])
            {
                kept.Add(i);
            }
        }

        return [.. kept];
    }

    /// <summary>Outputs of the full-pool model averaged over <paramref name="seeds"/>.</summary>
    public static double[] RunFull(int poolSize, int[] seeds, int queryCount, RetrainAndMeasure retrain, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(seeds);
        return MeanOverSeeds(Complement(poolSize, []), seeds, queryCount, retrain, cancellationToken);
    }

    internal static double[] MeanOverSeeds(int[] subset, int[] seeds, int queryCount, RetrainAndMeasure retrain, CancellationToken cancellationToken)
    {
        if (seeds.Length == 0)
        {
            throw new ArgumentException("at least one retraining seed is needed.", nameof(seeds));
        }

        var mean = new double[queryCount];
        foreach (var s in seeds)
        {
            var y = Measure(retrain, subset, s, queryCount, cancellationToken);
            for (int q = 0; q < queryCount; q++)
            {
                mean[q] += y[q] / seeds.Length;
            }
        }

        return mean;
    }

    internal static float[] Measure(RetrainAndMeasure retrain, int[] subset, int seed, int queryCount, CancellationToken cancellationToken)
    {
        var y = retrain(subset, seed, cancellationToken);
        if (y is null || y.Length != queryCount)
        {
            throw new InvalidOperationException($"the retraining delegate returned {y?.Length ?? 0} outputs; the test set has {queryCount} queries.");
        }

        for (int q = 0; q < y.Length; q++)
        {
            if (!float.IsFinite(y[q]))
            {
                throw new InvalidOperationException($"the model retrained on {subset.Length} examples with seed {seed} gave a non-finite output for query {q}; the recipe diverged.");
            }
        }

        return y;
    }
}
