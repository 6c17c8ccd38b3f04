using Attribution.Attribution.Methods;

namespace Attribution.Attribution.Tests.Methods;

public class Bm25IndexTests
{
    // d0 = [1 2], d1 = [1 1 3], d2 = [4]: lengths 2, 3, 1, avgdl 2; k1 = 1.2, b = 0.75.
    private static readonly int[][] Docs = [[1, 2], [1, 1, 3], [4]];

    [Fact]
    public void Bm25_scores_match_hand_computed_values_for_a_shared_term()
    {
        var index = new Bm25Index(Docs);
        var s = new float[3];
        index.Score([1], s);
        // idf(1) = ln(1 + (3 − 2 + 0.5)/(2 + 0.5)) = ln 1.6; d0: tf 1, K = 1.2·(0.25 + 0.75·2/2) = 1.2 → 2.2/2.2 = 1;
        // d1: tf 2, K = 1.2·(0.25 + 0.75·3/2) = 1.65 → 4.4/3.65.
        Assert.Equal(Math.Log(1.6), s[0], 5);
        Assert.Equal(Math.Log(1.6) * 4.4 / 3.65, s[1], 5);
        Assert.Equal(0f, s[2]);
        Assert.Equal(2.0, index.AverageLength, 12);
    }

    [Fact]
    public void Bm25_counts_a_repeated_query_term_once_per_occurrence()
    {
        var index = new Bm25Index(Docs);
        var s = new float[3];
        index.Score([3, 3, 9], s);
        // idf(3) = ln(1 + 2.5/1.5); qtf 2; d1: tf 1, K = 1.65 → 2.2/2.65; the unseen term 9 adds nothing.
        Assert.Equal(2 * Math.Log(1 + (2.5 / 1.5)) * 2.2 / 2.65, s[1], 5);
        Assert.Equal(0f, s[0]);
        Assert.Equal(0f, s[2]);
    }

    [Fact]
    public void Bm25_bigrams_are_ordered_token_pairs()
    {
        var index = new Bm25Index([[1, 2, 1, 2], [2, 1]], ngram: 2);
        var terms = index.Terms([1, 2, 1, 2]);
        Assert.Equal(2, terms.Count);
        Assert.Equal([1, 2], terms.Values.Order());
        var s = new float[2];
        index.Score([1, 2], s);
        // Only d0 holds (1,2) (twice): df 1, idf = ln(1 + 1.5/1.5) = ln 2; |d0| = 3, |d1| = 1, avgdl 2:
        // K = 1.2·(0.25 + 0.75·1.5) = 1.65 → 2·2.2/3.65.
        Assert.Equal(Math.Log(2) * 4.4 / 3.65, s[0], 5);
        Assert.Equal(0f, s[1]);
        Assert.Empty(index.Terms([7]));
    }
}
