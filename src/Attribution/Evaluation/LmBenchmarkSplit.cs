using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Evaluation;

/// <summary>
/// The documents of a language-model LDS benchmark, as corpus indices: a <b>base</b> set the shared starting model is
/// trained on, the attribution <b>pool</b> (the units of LDS: every subset model is the base model fine-tuned on a subset
/// of it), and held-out <b>query</b> documents split into a prompt and a completion. The three sets are disjoint.
/// </summary>
/// <param name="Base">Corpus indices of the base-training documents.</param>
/// <param name="Pool">Corpus indices of the attribution pool, in pool order (pool index i = <c>Pool[i]</c>).</param>
/// <param name="Queries">Corpus indices of the query documents.</param>
public sealed record LmBenchmarkSplit(int[] Base, int[] Pool, int[] Queries)
{
    /// <summary>
    /// Draws the split: documents whose framed length (<paramref name="framedLengths"/>, document start included) is in
    /// [<paramref name="minTokens"/>, <paramref name="context"/> + 1] (so each trains as one row, nothing truncated) are
    /// shuffled with <paramref name="seed"/>; the first <paramref name="baseCount"/> form the base set, the next
    /// <paramref name="poolCount"/> the pool, the next <paramref name="queryCount"/> the queries.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer eligible documents than the three sets need (the message says how many there are).</exception>
    public static LmBenchmarkSplit Draw(IReadOnlyList<int> framedLengths, int context, int minTokens, int baseCount, int poolCount, int queryCount, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(framedLengths);
        ArgumentOutOfRangeException.ThrowIfLessThan(minTokens, 3);
        ArgumentOutOfRangeException.ThrowIfNegative(baseCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(poolCount, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(queryCount, 1);
        var eligible = new List<int>();
        for (int i = 0; i < framedLengths.Count; i++)
        {
            if (framedLengths[i] >= minTokens && framedLengths[i] <= context + 1)
            {
                eligible.Add(i);
            }
        }

        int need = baseCount + poolCount + queryCount;
        if (eligible.Count < need)
        {
            throw new ArgumentException($"only {eligible.Count} of {framedLengths.Count} documents have {minTokens}..{context + 1} tokens; the base, pool and query sets need {need}. Use a larger corpus or smaller sets.");
        }

        var perm = new Rng(seed).Permutation(eligible.Count);
        int[] Take(int from, int count) => [.. perm.AsSpan(from, count).ToArray().Select(k => eligible[k])];
        return new LmBenchmarkSplit(Take(0, baseCount), Take(baseCount, poolCount), Take(baseCount + poolCount, queryCount));
    }

    /// <summary>
    /// A held-out document as a query: the prompt is its first ⌈L/2⌉ framed tokens (document start first), the
    /// completion the remaining ⌊L/2⌋ (L ≥ 2).
    /// </summary>
    public static CompletionQuery AsQuery(int[] framed)
    {
        ArgumentNullException.ThrowIfNull(framed);
        if (framed.Length < 2)
        {
            throw new ArgumentException($"a query document needs at least 2 framed tokens, got {framed.Length}.", nameof(framed));
        }

        int prompt = (framed.Length + 1) / 2;
        return new CompletionQuery(framed[..prompt], framed[prompt..]);
    }
}
