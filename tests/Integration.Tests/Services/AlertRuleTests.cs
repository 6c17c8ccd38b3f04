using Attribution.Scorer;

namespace Attribution.Integration.Tests.Services;

/// <summary>The Scorer's example-level contamination rule: relative influence (score ÷ ‖response‖), flagged top, lead.</summary>
public sealed class AlertRuleTests
{
    private static readonly long[] Ids = [10, 11, 12, 13];

    [Fact]
    public void A_flagged_example_first_by_relative_influence_is_reported_with_its_lead_even_when_its_raw_score_is_not_the_largest()
    {
        // Raw scores rank example 11 first (a large response); per unit of response example 12 is 2.5x ahead of it.
        float[] scores = [1f, 8f, 5f, -3f];
        float[] norms = [1f, 4f, 1f, 1f];
        var lead = ScorerWorker.ExampleLead(scores, norms, Ids, [12]);
        Assert.NotNull(lead);
        Assert.Equal(12, lead.Value.ExampleId);
        Assert.Equal(2.5, lead.Value.Lead, 1e-9);
    }

    [Fact]
    public void No_lead_is_reported_when_the_top_example_is_not_flagged_or_nothing_is_positive()
    {
        float[] norms = [1f, 1f, 1f, 1f];
        Assert.Null(ScorerWorker.ExampleLead([1f, 9f, 5f, 0f], norms, Ids, [12]));
        Assert.Null(ScorerWorker.ExampleLead([-1f, -2f, -5f, 0f], norms, Ids, [10, 11, 12, 13]));
        Assert.Null(ScorerWorker.ExampleLead([1f, 9f, 5f, 0f], norms, Ids, []));
    }

    [Fact]
    public void A_unit_with_a_zero_response_is_skipped_and_a_lone_positive_example_leads_without_bound()
    {
        float[] scores = [0f, 3f, -1f, 7f];
        float[] norms = [1f, 1f, 1f, 0f];
        var lead = ScorerWorker.ExampleLead(scores, norms, Ids, [11]);
        Assert.Equal((11L, double.PositiveInfinity), lead);
    }
}
