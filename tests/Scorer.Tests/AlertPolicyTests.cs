using Attribution.Transport.Messages;

namespace Attribution.Scorer.Tests;

/// <summary>The contamination policy: the source-share rule, then the example-lead rule by relative influence, as typed verdicts.</summary>
public sealed class AlertPolicyTests
{
    private static readonly long[] Ids = [10, 11, 12, 13];
    private static readonly long[] Sources = [0, 1, 2];
    private static readonly float[] UnitNorms = [1f, 1f, 1f, 1f];

    [Fact]
    public void A_flagged_example_first_by_relative_influence_is_reported_with_its_lead_even_when_its_raw_score_is_not_the_largest()
    {
        // Raw scores rank example 11 first (a large response); per unit of response example 12 is 2.5x ahead of it.
        float[] scores = [1f, 8f, 5f, -3f];
        float[] norms = [1f, 4f, 1f, 1f];
        var lead = AlertPolicy.ExampleLead(scores, norms, Ids, [12]);
        Assert.NotNull(lead);
        Assert.Equal(12, lead.Value.ExampleId);
        Assert.Equal(2.5, lead.Value.Lead, 1e-9);
    }

    [Fact]
    public void No_lead_is_reported_when_the_top_example_is_not_flagged_or_nothing_is_positive()
    {
        Assert.Null(AlertPolicy.ExampleLead([1f, 9f, 5f, 0f], UnitNorms, Ids, [12]));
        Assert.Null(AlertPolicy.ExampleLead([-1f, -2f, -5f, 0f], UnitNorms, Ids, [10, 11, 12, 13]));
        Assert.Null(AlertPolicy.ExampleLead([1f, 9f, 5f, 0f], UnitNorms, Ids, []));
    }

    [Fact]
    public void A_unit_with_a_zero_response_is_skipped_and_a_lone_positive_example_leads_without_bound()
    {
        float[] scores = [0f, 3f, -1f, 7f];
        float[] norms = [1f, 1f, 1f, 0f];
        Assert.Equal((11L, double.PositiveInfinity), AlertPolicy.ExampleLead(scores, norms, Ids, [11]));
    }

    [Fact]
    public void The_flagged_share_counts_only_positive_mass_and_names_the_flagged_contributors()
    {
        var contributors = new List<long>();
        // Positive mass 3 + 1 = 4 (the -6 does not count); flagged source 2 holds 1 of it; flagged source 1 is negative.
        var share = AlertPolicy.FlaggedShare([3f, -6f, 1f], Sources, [1, 2], contributors);
        Assert.Equal(0.25, share, 1e-12);
        Assert.Equal([2L], contributors);
        Assert.Equal(0, AlertPolicy.FlaggedShare([-1f, -2f, -3f], Sources, [0], []));
    }

    [Fact]
    public void Source_share_at_the_threshold_fires_with_the_typed_rule_and_the_flagged_sources()
    {
        var policy = new AlertPolicy([2], [], shareThreshold: 0.5, leadRatio: 1.05);
        var verdict = policy.Evaluate([1f, 0f, 1f], Sources, [1f, 2f, 3f, 4f], UnitNorms, Ids);
        Assert.NotNull(verdict);
        Assert.Equal(AlertRule.SourceShare, verdict.Rule);
        Assert.Equal(0.5, verdict.Score, 1e-12);
        Assert.Equal(0.5, verdict.Threshold);
        Assert.Equal([2L], verdict.FlaggedSourceIds);
        Assert.Empty(verdict.FlaggedExampleIds);
        Assert.Null(policy.Evaluate([1.01f, 0f, 1f], Sources, [1f, 2f, 3f, 4f], UnitNorms, Ids));
    }

    [Fact]
    public void Below_the_share_threshold_a_leading_flagged_example_fires_the_example_rule()
    {
        var policy = new AlertPolicy([2], [13], shareThreshold: 0.9, leadRatio: 1.5);
        // Example 13 leads the runner-up (example 12, 4) by 8/4 = 2 >= 1.5.
        var verdict = policy.Evaluate([1f, 0f, 1f], Sources, [1f, 2f, 4f, 8f], UnitNorms, Ids);
        Assert.NotNull(verdict);
        Assert.Equal(AlertRule.ExampleLead, verdict.Rule);
        Assert.Equal(2.0, verdict.Score, 1e-6);
        Assert.Equal([13L], verdict.FlaggedExampleIds);
        Assert.Empty(verdict.FlaggedSourceIds);
        // A lead under the ratio is no alert.
        Assert.Null(policy.Evaluate([1f, 0f, 1f], Sources, [1f, 2f, 6f, 8f], UnitNorms, Ids));
    }

    [Fact]
    public void A_policy_with_nothing_flagged_and_no_span_never_fires()
    {
        var policy = AlertPolicy.From(new ScorerOptions());
        Assert.Null(policy.Evaluate([5f, 0f, 0f], Sources, [9f, 0f, 0f, 0f], UnitNorms, Ids));
    }
}
