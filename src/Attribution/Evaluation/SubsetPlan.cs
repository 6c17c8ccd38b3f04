using Attribution.Engine;

namespace Attribution.Attribution.Evaluation;

/// <summary>
/// The LDS ground-truth design: <c>m</c> training subsets (sorted index lists into the training pool) and the retraining
/// seeds of each. Stored as a versioned artefact so LDS is reproducible (shared/docs/evaluation.md §2).
/// </summary>
public sealed class SubsetPlan
{
    /// <summary>Creates a plan from explicit subsets and seeds, checking every index against the pool size.</summary>
    public SubsetPlan(int poolSize, double alpha, ulong drawSeed, int[][] subsets, int[][] seeds)
    {
        ArgumentNullException.ThrowIfNull(subsets);
        ArgumentNullException.ThrowIfNull(seeds);
        ArgumentOutOfRangeException.ThrowIfLessThan(poolSize, 1);
        if (subsets.Length != seeds.Length)
        {
            throw new ArgumentException($"{subsets.Length} subsets but {seeds.Length} seed lists.", nameof(seeds));
        }

        for (int j = 0; j < subsets.Length; j++)
        {
            ValidateIndices(subsets[j], poolSize, $"subset {j}");
            if (seeds[j].Length == 0)
            {
                throw new ArgumentException($"subset {j} has no retraining seed.", nameof(seeds));
            }
        }

        PoolSize = poolSize;
        Alpha = alpha;
        DrawSeed = drawSeed;
        Subsets = subsets;
        Seeds = seeds;
    }

    /// <summary>Size n of the training pool the indices refer to.</summary>
    public int PoolSize { get; }

    /// <summary>Fraction of the pool in each subset.</summary>
    public double Alpha { get; }

    /// <summary>Seed the subsets were drawn with.</summary>
    public ulong DrawSeed { get; }

    /// <summary>Sorted, distinct training indices of each subset.</summary>
    public int[][] Subsets { get; }

    /// <summary>Retraining seeds per subset; the first is the ground truth, a second (if present) gives the noise ceiling.</summary>
    public int[][] Seeds { get; }

    /// <summary>Number of subsets m.</summary>
    public int Count => Subsets.Length;

    /// <summary>
    /// Draws <paramref name="count"/> subsets of size round(α·n), each uniformly without replacement, with
    /// <paramref name="seedsPerSubset"/> retraining seeds each; deterministic in <paramref name="seed"/>.
    /// </summary>
    public static SubsetPlan Draw(int poolSize, int count, double alpha, ulong seed, int seedsPerSubset = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(poolSize, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(seedsPerSubset, 1);
        if (!(alpha > 0 && alpha < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must lie strictly between 0 and 1 (the standard is 0.5).");
        }

        int size = Math.Clamp((int)Math.Round(alpha * poolSize), 1, poolSize - 1);
        var rng = new Rng(seed);
        var subsets = new int[count][];
        var seeds = new int[count][];
        for (int j = 0; j < count; j++)
        {
            var sub = rng.Fork();
            var perm = sub.Permutation(poolSize);
            var chosen = perm.AsSpan(0, size).ToArray();
            Array.Sort(chosen);
            subsets[j] = chosen;
            seeds[j] = new int[seedsPerSubset];
            for (int r = 0; r < seedsPerSubset; r++)
            {
                seeds[j][r] = (int)(sub.NextUInt64() & 0x7FFF_FFFF);
            }
        }

        return new SubsetPlan(poolSize, alpha, seed, subsets, seeds);
    }

    /// <summary>Checks that indices are in range and distinct; throws naming the offending entry.</summary>
    public static void ValidateIndices(int[] indices, int poolSize, string what)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var seen = new bool[poolSize];
        for (int k = 0; k < indices.Length; k++)
        {
            int i = indices[k];
            if ((uint)i >= (uint)poolSize)
            {
                throw new ArgumentException($"{what}: training index {i} at position {k} is outside the pool 0..{poolSize - 1}.");
            }

            if (seen[i])
            {
                throw new ArgumentException($"{what}: training index {i} appears twice.");
            }

            seen[i] = true;
        }
    }
}
