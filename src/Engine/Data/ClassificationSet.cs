namespace Attribution.Engine.Data;

/// <summary>
/// An in-memory classification set: features [Count, Features] row-major floats, labels, and each example's stable id
/// (its index in the original file), in one order.
/// </summary>
public sealed class ClassificationSet
{
    /// <summary>Creates the set; validates that the arrays agree.</summary>
    public ClassificationSet(float[] inputs, int[] labels, int[] ids, int features, int classes)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentOutOfRangeException.ThrowIfLessThan(features, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        if (ids.Length != labels.Length || inputs.LongLength != (long)labels.Length * features)
        {
            throw new ArgumentException($"Inconsistent set: {inputs.LongLength} features for {labels.Length} labels of width {features} and {ids.Length} ids.");
        }

        Inputs = inputs;
        Labels = labels;
        Ids = ids;
        Features = features;
        Classes = classes;
    }

    /// <summary>Features, [Count, Features].</summary>
    public float[] Inputs { get; }

    /// <summary>Class labels.</summary>
    public int[] Labels { get; }

    /// <summary>Stable example ids (index in the source file).</summary>
    public int[] Ids { get; }

    /// <summary>Features per example.</summary>
    public int Features { get; }

    /// <summary>Number of classes.</summary>
    public int Classes { get; }

    /// <summary>Number of examples.</summary>
    public int Count => Labels.Length;

    /// <summary>The examples at the given positions (not ids) of this set, in that order.</summary>
    public ClassificationSet Take(IReadOnlyList<int> positions)
    {
        ArgumentNullException.ThrowIfNull(positions);
        var x = new float[(long)positions.Count * Features];
        var y = new int[positions.Count];
        var id = new int[positions.Count];
        for (int i = 0; i < positions.Count; i++)
        {
            int p = positions[i];
            ArgumentOutOfRangeException.ThrowIfNegative(p, nameof(positions));
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(p, Count, nameof(positions));
            Inputs.AsSpan(p * Features, Features).CopyTo(x.AsSpan(i * Features, Features));
            y[i] = Labels[p];
            id[i] = Ids[p];
        }

        return new ClassificationSet(x, y, id, Features, Classes);
    }
}

/// <summary>Seeded selection of example ids.</summary>
public static class SubsetSelector
{
    /// <summary>
    /// <paramref name="count"/> distinct ids from 0..<paramref name="total"/>−1, chosen by a seeded permutation and
    /// returned in ascending order (so the set, not the draw order, is what a recipe records).
    /// </summary>
    public static int[] Select(int total, int count, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(total);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, total);
        if (count == total)
        {
            return Enumerable.Range(0, total).ToArray();
        }

        var ids = new Rng(seed).Permutation(total)[..count];
        Array.Sort(ids);
        return ids;
    }
}
