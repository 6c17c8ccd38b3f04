using Attribution.Attribution.Evaluation;

namespace Attribution.Attribution.Tests.Evaluation;

public class LmBenchmarkSplitTests
{
    [Fact]
    public void Split_uses_only_documents_that_fit_one_row_and_keeps_the_sets_disjoint()
    {
        // Context 8: framed lengths 4..9 are eligible (min 4); 3 and 10 are not.
        int[] lengths = [3, 4, 9, 10, 5, 6, 7, 8, 100, 4, 5];
        var split = LmBenchmarkSplit.Draw(lengths, context: 8, minTokens: 4, baseCount: 2, poolCount: 3, queryCount: 2, seed: 1);
        var all = split.Base.Concat(split.Pool).Concat(split.Queries).ToArray();
        Assert.Equal(7, all.Length);
        Assert.Equal(7, all.Distinct().Count());
        Assert.All(all, i => Assert.InRange(lengths[i], 4, 9));
        Assert.Equal(split, LmBenchmarkSplit.Draw(lengths, 8, 4, 2, 3, 2, seed: 1), new SplitComparer());
        var ex = Assert.Throws<ArgumentException>(() => LmBenchmarkSplit.Draw(lengths, 8, 4, 5, 3, 2, seed: 1));
        Assert.Contains("only 8 of 11", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_query_document_is_split_into_its_first_half_as_prompt_and_the_rest_as_completion()
    {
        var q = LmBenchmarkSplit.AsQuery([256, 10, 11, 12, 257]);
        Assert.Equal([256, 10, 11], q.Prompt);
        Assert.Equal([12, 257], q.Completion);
        var even = LmBenchmarkSplit.AsQuery([256, 10]);
        Assert.Equal([256], even.Prompt);
        Assert.Equal([10], even.Completion);
    }

    private sealed class SplitComparer : IEqualityComparer<LmBenchmarkSplit>
    {
        public bool Equals(LmBenchmarkSplit? x, LmBenchmarkSplit? y) =>
            x!.Base.SequenceEqual(y!.Base) && x.Pool.SequenceEqual(y.Pool) && x.Queries.SequenceEqual(y.Queries);

        public int GetHashCode(LmBenchmarkSplit obj) => obj.Pool.Length;
    }
}
