using Attribution.Attribution.Evaluation;

namespace Attribution.Tests.Evaluation;

public sealed class SourceLdsTests
{
    [Fact]
    public void Assignment_is_deterministic_covers_every_source_and_puts_about_half_of_a_class_in_its_own_source()
    {
        var labels = Enumerable.Range(0, 4000).Select(i => i % 10).ToArray();
        var a = SourceLds.Assign(labels, 10, 3);
        Assert.Equal(a, SourceLds.Assign(labels, 10, 3));
        Assert.NotEqual(a, SourceLds.Assign(labels, 10, 4));
        Assert.Equal(10, a.Distinct().Count());
        double own = Enumerable.Range(0, labels.Length).Count(i => a[i] == labels[i]) / (double)labels.Length;
        Assert.InRange(own, 0.5, 0.6); // half by class plus a tenth of the random half
    }

    [Fact]
    public void Expanded_plan_holds_exactly_the_members_of_each_subsets_sources_with_the_same_seeds()
    {
        int[] sourceIds = [2, 0, 1, 2, 0, 1, 1];
        var plan = new SubsetPlan(3, 0.5, 9, [[0, 2], [1]], [[5, 6], [7, 8]]);
        var expanded = SourceLds.Expand(plan, sourceIds);
        Assert.Equal([0, 1, 3, 4], expanded.Subsets[0]);
        Assert.Equal([2, 5, 6], expanded.Subsets[1]);
        Assert.Equal(plan.Seeds, expanded.Seeds);
        Assert.Equal(7, expanded.PoolSize);
        Assert.Throws<ArgumentException>(() => SourceLds.Expand(plan, [0, 3]));
    }

    [Fact]
    public void Source_lds_is_one_when_source_scores_predict_the_retrained_outputs_in_order_and_minus_one_reversed()
    {
        // 2 queries, 3 sources; subsets {0}, {1}, {2}, {0,1}: actual outputs increase with the summed scores for query 0
        // and decrease for query 1.
        var plan = new SubsetPlan(3, 0.5, 1, [[0], [1], [2], [0, 1]], [[1], [1], [1], [1]]);
        float[] scores = [1f, 2f, 4f, /* query 1 */ 1f, 2f, 4f];
        double[] actual = [0.1, 9, 0.2, 8, 0.4, 7, 0.3, 7.5];
        var lds = SourceLds.Compute(scores, 2, plan, actual);
        Assert.Equal(1.0, lds.PerQuery[0], 1e-9);
        Assert.Equal(-1.0, lds.PerQuery[1], 1e-9);
        Assert.Equal(0.0, lds.Mean, 1e-9);
        Assert.Equal(2, lds.Queries);
    }
}
