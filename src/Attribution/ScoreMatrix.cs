namespace Attribution.Attribution;

/// <summary>
/// Scores of every training example for every query, row-major [q, n], and per-source sums [q, m].
/// </summary>
public sealed class ScoreMatrix
{
    /// <summary>
    /// Wraps per-example scores and computes per-source sums from the example→source map; with no map (a served probe
    /// set knows its examples, not their sources) there are no per-source sums.
    /// </summary>
    public ScoreMatrix(float[] scores, int queryCount, int exampleCount, int[]? sourceIds, int sourceCount)
    {
        ArgumentNullException.ThrowIfNull(scores);
        bool sums = sourceIds is not null;
        sourceCount = sums ? sourceCount : 0;
        sourceIds ??= [];
        if (scores.Length != (long)queryCount * exampleCount)
        {
            throw new ArgumentException($"score array has {scores.Length} values for {queryCount} queries × {exampleCount} examples.", nameof(scores));
        }

        if (sums && sourceIds.Length != exampleCount)
        {
            throw new ArgumentException($"sourceIds has {sourceIds.Length} entries for {exampleCount} examples.", nameof(sourceIds));
        }

        Scores = scores;
        QueryCount = queryCount;
        ExampleCount = exampleCount;
        SourceCount = sourceCount;
        SourceScores = new float[queryCount * sourceCount];
        for (int q = 0; sums && q < queryCount; q++)
        {
            var row = scores.AsSpan(q * exampleCount, exampleCount);
            var dst = SourceScores.AsSpan(q * sourceCount, sourceCount);
            for (int i = 0; i < exampleCount; i++)
            {
                dst[sourceIds[i]] += row[i];
            }
        }
    }

    /// <summary>Per-example scores [q, n].</summary>
    public float[] Scores { get; }

    /// <summary>Per-source sums [q, m].</summary>
    public float[] SourceScores { get; }

    /// <summary>q.</summary>
    public int QueryCount { get; }

    /// <summary>n.</summary>
    public int ExampleCount { get; }

    /// <summary>m.</summary>
    public int SourceCount { get; }

    /// <summary>Scores of one query over all training examples.</summary>
    public ReadOnlySpan<float> Row(int query) => Scores.AsSpan(query * ExampleCount, ExampleCount);

    /// <summary>The k highest-scoring training examples of a query, best first (ties broken by lower index).</summary>
    public (int Example, float Score)[] TopK(int query, int k) => TopK(Row(query), k);

    /// <summary>The <paramref name="k"/> largest entries of <paramref name="row"/> as (index, score), best first (ties: lower index first).</summary>
    public static (int Example, float Score)[] TopK(ReadOnlySpan<float> row, int k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        k = Math.Min(k, row.Length);
        var heap = new PriorityQueue<int, (float, int)>(k + 1, Comparer<(float Score, int Index)>.Create((a, b) =>
            a.Score != b.Score ? a.Score.CompareTo(b.Score) : b.Index.CompareTo(a.Index)));
        for (int i = 0; i < row.Length; i++)
        {
            if (heap.Count < k)
            {
                heap.Enqueue(i, (row[i], i));
            }
            else if (k > 0 && heap.TryPeek(out _, out var worst) && (row[i] > worst.Item1))
            {
                heap.EnqueueDequeue(i, (row[i], i));
            }
        }

        var result = new (int, float)[heap.Count];
        for (int j = result.Length - 1; j >= 0; j--)
        {
            int i = heap.Dequeue();
            result[j] = (i, row[i]);
        }

        return result;
    }
}
