namespace Attribution.Scorer;

/// <summary>
/// Each example's source id, from the map a scorer sums source scores with (every example's index into the source
/// ids): one rule for every model's scorer, so the top examples an attribution names carry the sources its source
/// scores were summed over.
/// </summary>
internal static class ExampleSourceMap
{
    /// <summary>
    /// <c>sourceIds[exampleSources[i]]</c> for every example <c>i</c>; an index outside the source ids is refused,
    /// named (<paramref name="parameterName"/>: the caller's argument that holds the indices).
    /// </summary>
    public static long[] Ids(IReadOnlyList<int> exampleSources, IReadOnlyList<long> sourceIds, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(exampleSources);
        ArgumentNullException.ThrowIfNull(sourceIds);
        var ids = new long[exampleSources.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            int s = exampleSources[i];
            ids[i] = (uint)s < (uint)sourceIds.Count
                ? sourceIds[s]
                : throw new ArgumentException($"example {i}'s source index {s} is outside 0..{sourceIds.Count - 1}.", parameterName);
        }

        return ids;
    }
}
