using Attribution.Attribution.Contamination;

namespace Attribution.Tests.Contamination;

/// <summary>The image analogue of the span index: a query's input against the flagged training items' inputs.</summary>
public sealed class FlaggedInputIndexTests
{
    // Two flagged items of 4 features: ids 501 and 502 of source 90.
    private static readonly float[] Items = [3, 4, 0, 0, 0, 0, 6, 8];
    private static readonly FlaggedInputIndex Index = new(Items, 4, [501, 502], [90, 90]);

    [Fact]
    public void An_exact_copy_matches_fully_and_names_its_item_a_near_copy_partly_a_different_input_not_at_all()
    {
        var exact = Index.Find([0, 0, 6, 8]);
        Assert.Equal((1, 502L, 90, 0.0, 1.0), (exact.Index, exact.DocumentId, exact.SourceId, exact.Distance, exact.Match));
        // ‖(3, 4.5, 0, 0) − (3, 4, 0, 0)‖ / ‖(3, 4, 0, 0)‖ = 0.5 / 5 = 0.1 ... at the tolerance: match 0; 0.25 / 5 = 0.05: match 0.5.
        Assert.Equal(0.05, Index.Find([3, 4.25f, 0, 0]).Distance, 9);
        Assert.Equal(0.5, Index.Find([3, 4.25f, 0, 0]).Match, 9);
        Assert.Equal(0, Index.Find([3, 4.5f, 0, 0]).Match, 9);
        Assert.Equal(0, Index.Find([1, 1, 1, 1]).Match);
        Assert.Same(InputMatch.None, Index.Find([3, 4, 0]));   // another width: not searched
        Assert.Equal(0, InputMatch.None.Match);
    }

    [Fact]
    public void The_match_is_a_policy_feature_and_names_the_item_among_stage_ones_documents()
    {
        var span = SpanEvidence.None(1) with { Input = Index.Find([3, 4, 0, 0]) };
        Assert.Equal(1.0, ContaminationFeatures.Of(span, AttributionEvidence.None)[ContaminationFeatures.Names.ToList().IndexOf("input_match")]);
        Assert.Equal([501L], span.AllDocuments.Select(d => d.Id));
        Assert.Empty((SpanEvidence.None(1) with { Input = Index.Find([1, 1, 1, 1]) }).AllDocuments);
        var policy = new ContaminationPolicy(new ContaminationPolicyOptions { Evidence = ContaminationEvidenceKind.Input, Weights = [0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0], Bias = -6 });
        Assert.True(policy.Assess(span, AttributionEvidence.None).Alert);
        Assert.False(policy.Assess(SpanEvidence.None(1), AttributionEvidence.None).Alert);
        Assert.Throws<ArgumentException>(() => new ContaminationPolicy(new ContaminationPolicyOptions { Evidence = ContaminationEvidenceKind.Attribution, Weights = [0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0] }));
    }

    [Fact]
    public void Bad_flagged_inputs_are_refused_with_what_is_wrong()
    {
        Assert.Contains("need 8 input values", Assert.Throws<ArgumentException>(() => new FlaggedInputIndex(Items.AsSpan(0, 7), 4, [501, 502])).Message);
        Assert.Contains("repeated", Assert.Throws<ArgumentException>(() => new FlaggedInputIndex(Items, 4, [501, 501])).Message);
        Assert.Contains("all zeros", Assert.Throws<ArgumentException>(() => new FlaggedInputIndex([0, 0, 0, 0], 4, [501])).Message);
        Assert.Contains("non-finite", Assert.Throws<ArgumentException>(() => new FlaggedInputIndex([float.NaN, 1, 0, 0], 4, [501])).Message);
    }
}
