using Attribution.Engine;

namespace Attribution.Attribution.Evaluation;

/// <summary>
/// Source-level LDS: the LDS protocol over sources instead of examples. Subset j is a random set of round(α·m) sources;
/// its model is retrained on every example of those sources; a method predicts <c>Σ_{S∈subset} score(q, S)</c> from the
/// source scores it publishes (<see cref="IAttributionMethod.ScoreSources"/>). This measures the source attributions
/// the product serves, which the example-level LDS does not.
/// </summary>
public static class SourceLds
{
    /// <summary>
    /// Assigns <paramref name="labels"/>.Length training examples to <paramref name="sources"/> sources, deterministic
    /// in <paramref name="seed"/>: half of the examples go to the source of their class (class mod sources), the rest
    /// to a uniformly random source, so sources differ in what they teach, as publishers do.
    /// </summary>
    public static int[] Assign(ReadOnlySpan<int> labels, int sources, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sources, 1);
        var rng = new Rng(seed);
        var ids = new int[labels.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = rng.NextDouble() < 0.5 ? labels[i] % sources : rng.NextInt(sources);
        }

        return ids;
    }

    /// <summary>The example-level plan of a source-level one: subset j's examples are the members of its sources, ascending; same seeds.</summary>
    public static SubsetPlan Expand(SubsetPlan sourcePlan, ReadOnlySpan<int> sourceIds)
    {
        ArgumentNullException.ThrowIfNull(sourcePlan);
        var members = new List<int>[sourcePlan.PoolSize];
        for (int s = 0; s < members.Length; s++)
        {
            members[s] = [];
        }

        for (int i = 0; i < sourceIds.Length; i++)
        {
            if ((uint)sourceIds[i] >= (uint)members.Length)
            {
                throw new ArgumentException($"example {i} has source {sourceIds[i]}, outside the plan's {members.Length} sources.", nameof(sourceIds));
            }

            members[sourceIds[i]].Add(i);
        }

        var subsets = sourcePlan.Subsets.Select(subset => subset.SelectMany(s => members[s]).Order().ToArray()).ToArray();
        return new SubsetPlan(sourceIds.Length, sourcePlan.Alpha, sourcePlan.DrawSeed, subsets, sourcePlan.Seeds);
    }

    /// <summary>LDS of source scores [q, m] (row-major, as <see cref="IAttributionMethod.ScoreSources"/> returns) against the actual outputs [subsets, q].</summary>
    public static MetricSummary Compute(ReadOnlySpan<float> sourceScores, int queryCount, SubsetPlan sourcePlan, double[] actual)
    {
        ArgumentNullException.ThrowIfNull(sourcePlan);
        var predicted = Lds.Predict(sourceScores, queryCount, sourcePlan.PoolSize, sourcePlan.Subsets);
        return Lds.Correlate(predicted, actual, sourcePlan.Count, queryCount);
    }
}
