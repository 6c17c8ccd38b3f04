using Attribution.Attribution.Contamination;
using Attribution.Attribution.Spans;
using Attribution.Engine;

namespace Attribution.Tests.Contamination;

public sealed class ContaminationPolicyTests
{
    private static readonly long[] Ids = [100, 101, 102, 103, 104];
    private static readonly int[] Sources = [0, 0, 1, 1, 2];

    [Fact]
    public void SpanEvidence_TakesTheLongestMatch_ATieGoesToTheRarerOne()
    {
        var docsA = new[] { new SpanDocument(0, 100, 0), new SpanDocument(1, 101, 0) };
        var docsB = new[] { new SpanDocument(3, 103, 1) };
        var matches = new[]
        {
            new SpanMatch(0, 9, 5, docsA, false),
            new SpanMatch(4, 12, 2, docsA, false),
            new SpanMatch(20, 12, 1, docsB, false),
        };
        var e = SpanEvidence.From(matches, 40);
        Assert.Equal((20, 12, 1), (e.QueryStart, e.Length, e.Count));
        Assert.Equal(103, e.Documents.Single().Id);
        Assert.Equal(0.3, e.Coverage, 12);
        Assert.Equal(1.0, e.Rarity);
        Assert.Equal((0, 0.0, 0.0), (SpanEvidence.From([], 40).Length, SpanEvidence.From([], 40).Coverage, SpanEvidence.From([], 40).Rarity));
        Assert.Throws<ArgumentOutOfRangeException>(() => SpanEvidence.From(matches, 30));
    }

    [Fact]
    public void AttributionEvidence_SharesAreOfThePositiveInfluence_AndFlagsByDocumentOrSource()
    {
        float[] scores = [6, 2, -4, 2, 0];
        var byDoc = AttributionEvidence.From(scores, Ids, Sources, flaggedDocuments: new HashSet<long> { 101, 102 });
        Assert.Equal(0.6, byDoc.TopShare, 12);           // 6 / (6 + 2 + 2)
        Assert.Equal(0.2, byDoc.FlaggedShare, 12);       // 101 carries 2 of 10; 102 is negative
        Assert.Equal([101L], byDoc.FlaggedDocumentIds);
        Assert.Equal((100L, 0), (byDoc.TopDocumentId, byDoc.TopSourceId));
        // mean 1.2, population sd sqrt(((4.8)^2 + 0.8^2 + 5.2^2 + 0.8^2 + 1.2^2) / 5) = sqrt(10.56)
        Assert.Equal(4.8 / Math.Sqrt(10.56), byDoc.TopZ, 9);

        var bySource = AttributionEvidence.From(scores, Ids, Sources, flaggedSources: new HashSet<int> { 1 });
        Assert.Equal(0.2, bySource.FlaggedShare, 12);    // doc 103 (source 1) carries 2; doc 102 is negative
        Assert.Equal([103L], bySource.FlaggedDocumentIds);

        var flat = AttributionEvidence.From([1, 1, 1, 1, 1], Ids, Sources);
        Assert.Equal((0.2, 0.0, 0.0), (flat.TopShare, flat.TopZ, flat.FlaggedShare));

        // The flagged lead: best flagged 2 (101) against best unflagged 6 (100): ln(1/3), capped at -1; 3 (flagged 103)
        // against 2: ln(1.5); nothing flagged, or only a negative flagged score: -cap; only flagged documents positive:
        // +cap; none ran: 0.
        Assert.Equal(-AttributionEvidence.LeadCap, byDoc.FlaggedLead, 12);
        Assert.Equal(Math.Log(1.5), AttributionEvidence.From([1, 2, -4, 3, 0], Ids, Sources, flaggedDocuments: new HashSet<long> { 103 }).FlaggedLead, 12);
        Assert.Equal(-AttributionEvidence.LeadCap, flat.FlaggedLead);
        Assert.Equal(-AttributionEvidence.LeadCap, AttributionEvidence.From(scores, Ids, Sources, flaggedDocuments: new HashSet<long> { 102 }).FlaggedLead);
        Assert.Equal(AttributionEvidence.LeadCap, AttributionEvidence.From([-1, 3, -2, -1, 0], Ids, Sources, flaggedDocuments: new HashSet<long> { 101 }).FlaggedLead);
        Assert.Equal(0, AttributionEvidence.None.FlaggedLead);
        Assert.Throws<ArgumentException>(() => AttributionEvidence.From([1, float.NaN, 0, 0, 0], Ids, Sources));
        Assert.Throws<ArgumentException>(() => AttributionEvidence.From([1, 2], Ids, Sources));
    }

    [Fact]
    public void Policy_ScoresTheLogisticOfTheWeightedFeatures_AndAlertsStrictlyAboveTheThreshold()
    {
        var options = new ContaminationPolicyOptions { Weights = [2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0], Bias = -1, Threshold = 0.5 };
        var policy = new ContaminationPolicy(options);
        var span = new SpanEvidence(20, 0, 10, 1, [new SpanDocument(0, 100, 0)]);
        var attribution = new AttributionEvidence(0.5, 3, 0.5, 100, 0, [100]);
        var a = policy.Assess(span, attribution);
        Assert.Equal(1 / (1 + Math.Exp(-(-1 + (2 * 0.5) + 0.5))), a.Score, 12);
        Assert.True(a.Alert);
        Assert.Equal([100L], a.DocumentIds);
        Assert.Equal([0], a.SourceIds);

        // z = -1 + 2 * 0.25 + 0.5 = 0 exactly: score 0.5 is not above 0.5.
        var atThreshold = policy.Assess(span with { Length = 5 }, attribution);
        Assert.Equal(0.5, atThreshold.Score, 12);
        Assert.False(atThreshold.Alert);
    }

    [Fact]
    public void Options_RejectWeightsTheChosenEvidenceDoesNotRead_AndOutOfRangeValues()
    {
        Assert.Throws<ArgumentException>(() => new ContaminationPolicy(new ContaminationPolicyOptions { Evidence = ContaminationEvidenceKind.Span }));
        Assert.Throws<ArgumentException>(() => new ContaminationPolicy(new ContaminationPolicyOptions { Weights = [1, 2] }));
        Assert.Throws<ArgumentException>(() => new ContaminationPolicy(new ContaminationPolicyOptions { Threshold = 1.5 }));
        Assert.Throws<ArgumentException>(() => new ContaminationPolicy(new ContaminationPolicyOptions { Weights = [double.NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }));
        Assert.Throws<ArgumentException>(() => new ContaminationPolicy(new ContaminationPolicyOptions { MaxEvidenceDocuments = 0 }));
        Assert.Throws<ArgumentException>(() => new ContaminationPolicy(new ContaminationPolicyOptions { Evidence = 0 }));
        _ = new ContaminationPolicy(new ContaminationPolicyOptions { Evidence = ContaminationEvidenceKind.Span, Weights = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0] });
        // Exact spans alone may not weigh the normalised-text features; stage one (StageOne) may.
        Assert.Throws<ArgumentException>(() => new ContaminationPolicy(new ContaminationPolicyOptions { Evidence = ContaminationEvidenceKind.Span, Weights = [1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0] }));
        _ = new ContaminationPolicy(new ContaminationPolicyOptions { Evidence = ContaminationEvidenceKind.StageOne, Weights = [1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0] });
        Assert.Throws<ArgumentException>(() => new ContaminationPolicy(new ContaminationPolicyOptions { Evidence = (ContaminationEvidenceKind)8 }));
    }

    [Fact]
    public void Assess_CapsTheEvidenceDocuments()
    {
        var docs = Enumerable.Range(0, 10).Select(i => new SpanDocument(i, 100 + i, i % 2)).ToArray();
        var policy = new ContaminationPolicy(new ContaminationPolicyOptions { MaxEvidenceDocuments = 3 });
        var a = policy.Assess(new SpanEvidence(8, 0, 8, 10, docs), new AttributionEvidence(0.1, 1, 0.5, 100, 0, [105, 106, 107, 108]));
        Assert.Equal([100L, 101, 102], a.Span.Documents.Select(d => d.Id));
        Assert.Equal([105L, 106, 107], a.Attribution.FlaggedDocumentIds);
        Assert.Equal([100L, 101, 102, 105, 106, 107], a.DocumentIds);
    }

    [Theory]
    [InlineData(0.0, 99.0)]   // no clean query may alert: the threshold is the largest clean score
    [InlineData(0.01, 99.0)]  // 100 < 230 clean queries: no threshold holds 1 % with confidence 0.9, so the largest
    [InlineData(0.02, 99.0)]  // P(Bin(100, 0.02) <= 0) = 0.133 > 0.1: k = 0
    [InlineData(0.05, 98.0)]  // P(Bin(100, 0.05) <= 1) = 0.037, <= 2 = 0.118: k = 1, the second largest
    [InlineData(0.10, 94.0)]  // P(Bin(100, 0.1) <= 4) = 0.024, <= 5 = 0.058, <= 6 = 0.117: k = 5, the sixth largest
    public void Threshold_IsTheOrderStatisticTheBinomialBoundAllows(double rate, double expected)
    {
        var clean = Enumerable.Range(0, 100).Select(i => (double)i).Reverse().ToArray();
        Assert.Equal(expected, ContaminationCalibration.ThresholdForFalseAlertRate(clean, rate));
        Assert.Throws<ArgumentException>(() => ContaminationCalibration.ThresholdForFalseAlertRate([], 0.01));
        Assert.Throws<ArgumentException>(() => ContaminationCalibration.ThresholdForFalseAlertRate(clean, 1));
        Assert.Throws<ArgumentException>(() => ContaminationCalibration.ThresholdForFalseAlertRate(clean, 0.01, 1));
    }

    [Theory]
    [InlineData(1000, 0.01, 0.9)]
    [InlineData(300, 0.01, 0.9)]
    [InlineData(1800, 0.01, 0.95)]
    [InlineData(50, 0.1, 0.8)]
    public void AlertsAllowed_IsTheLargestKWhoseBinomialTailStaysWithinOneMinusConfidence(int n, double rate, double confidence)
    {
        // Independent check with the binomial pmf summed directly (no log space needed at these sizes).
        double Cdf(int k)
        {
            double term = Math.Pow(1 - rate, n), sum = term;
            for (int i = 0; i < k; i++)
            {
                term *= (double)(n - i) / (i + 1) * rate / (1 - rate);
                sum += term;
            }

            return sum;
        }

        int allowed = ContaminationCalibration.AlertsAllowed(n, rate, confidence);
        Assert.True(Cdf(allowed) <= 1 - confidence || allowed == 0, $"k = {allowed}: P = {Cdf(allowed)}");
        Assert.True(Cdf(allowed + 1) > 1 - confidence, $"k + 1 = {allowed + 1} would also hold: P = {Cdf(allowed + 1)}");
        Assert.Equal(230, ContaminationCalibration.MinimumCleanQueries(0.01, 0.9));
        Assert.Equal(0, ContaminationCalibration.AlertsAllowed(229, 0.01, 0.9));
        Assert.True(ContaminationCalibration.AlertsAllowed(230, 0.01, 0.9) == 0 && Math.Pow(0.99, 230) <= 0.1);
    }

    [Fact]
    public void Threshold_HoldsTheRateOnNewCleanQueries_InAtLeastConfidenceOfCalibrationDraws()
    {
        // The root of the 1.3 % measured at 2,000 documents: the plain conformal quantile (k + 1 = floor(rate (n + 1)))
        // bounds the rate only on average over calibration draws. Uniform clean scores: a threshold t lets 1 − t of new
        // clean queries alert. Over 400 draws of 1,000 clean queries, the plain rule's threshold is over 1 % in ~45 % of
        // draws; the rule with confidence 0.9 in at most ~10 % (here P(Bin(1000, 0.01) <= 5) = 0.067).
        var rng = new Random(20261205);
        int over = 0, plainOver = 0;
        const int Draws = 400, N = 1000;
        for (int d = 0; d < Draws; d++)
        {
            var clean = Enumerable.Range(0, N).Select(_ => rng.NextDouble()).ToArray();
            over += 1 - ContaminationCalibration.ThresholdForFalseAlertRate(clean, 0.01) > 0.01 ? 1 : 0;
            var sorted = clean.OrderDescending().ToArray();
            plainOver += 1 - sorted[(int)Math.Floor(0.01 * (N + 1)) - 1] > 0.01 ? 1 : 0;
        }

        Assert.InRange(over / (double)Draws, 0.02, 0.12);
        Assert.InRange(plainOver / (double)Draws, 0.3, 0.6);
    }

    [Fact]
    public void Fit_LearnsTheInformativeFeature_AndHoldsTheFalseAlertRateOnFreshCleanQueries()
    {
        // Leaked queries have long rare spans; clean ones short common spans; attribution is noise for both.
        var rng = new Rng(3);
        (List<(SpanEvidence, AttributionEvidence)> Evidence, List<bool> Labels) Draw(int leaked, int clean)
        {
            var evidence = new List<(SpanEvidence, AttributionEvidence)>();
            var labels = new List<bool>();
            for (int i = 0; i < leaked + clean; i++)
            {
                bool isLeak = i < leaked;
                int length = isLeak ? 24 + rng.NextInt(16) : rng.NextInt(14);
                int count = isLeak ? 1 + rng.NextInt(2) : 1 + rng.NextInt(40);
                var noise = new AttributionEvidence(rng.NextSingle(), (rng.NextSingle() * 4) - 2, rng.NextSingle(), 0, 0, []);
                evidence.Add((new SpanEvidence(40, 0, length, length == 0 ? 0 : count, []), noise));
                labels.Add(isLeak);
            }

            return (evidence, labels);
        }

        var (calibration, calibrationLabels) = Draw(100, 400);
        var options = ContaminationCalibration.Fit(calibration, calibrationLabels, ContaminationEvidenceKind.Combined, 0.01);
        Assert.True(options.Weights[0] > 0, $"span coverage weight {options.Weights[0]} should be positive");
        var policy = new ContaminationPolicy(options);
        var calScores = calibration.Select(e => policy.Score(e.Item1, e.Item2)).ToArray();
        Assert.True(AlertMetrics.AlertRate(calScores, calibrationLabels, options.Threshold, ofLeaked: false) <= 0.01);

        var (test, testLabels) = Draw(100, 2000);
        var scores = test.Select(e => policy.Score(e.Item1, e.Item2)).ToArray();
        Assert.True(AlertMetrics.Auroc(scores, testLabels) > 0.99);
        Assert.True(AlertMetrics.AlertRate(scores, testLabels, options.Threshold, ofLeaked: true) > 0.95);
        Assert.True(AlertMetrics.AlertRate(scores, testLabels, options.Threshold, ofLeaked: false) < 0.03);

        var spanOnly = ContaminationCalibration.Fit(calibration, calibrationLabels, ContaminationEvidenceKind.Span, 0.01);
        Assert.Equal([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], spanOnly.Weights.Skip(3));
        Assert.Throws<ArgumentException>(() => ContaminationCalibration.Fit(calibration, [.. calibrationLabels.Select(_ => false)], ContaminationEvidenceKind.Span, 0.01));
    }

    [Fact]
    public void SelfMatch_IsOneWhenTheQueryScoresAFlaggedItemAsTheItemScoresItself_AndFallsWithTheRatiosDistanceFromOne()
    {
        long[] ids = [1, 2, 3];
        int[] sources = [0, 0, 0];
        var flagged = new HashSet<long> { 1, 3 };
        // Self-influences 2 and 8 for the flagged items (item 2 unknown): a query scoring them 2 and 4 copies item 1.
        var copy = AttributionEvidence.From([2f, 1f, 4f], ids, sources, flagged, selfInfluence: [2f, float.NaN, 8f]);
        Assert.Equal((1.0, 1.0), (copy.SelfRatio, copy.SelfMatch));
        // Scores 1.5x both self-influences: the ratio says 1.5, the match −log10(0.5) ÷ 6; within 1 %: 1/3; off by 2x: 0.
        var above = AttributionEvidence.From([3f, 1f, 12f], ids, sources, flagged, selfInfluence: [2f, float.NaN, 8f]);
        Assert.Equal(1.5, above.SelfRatio);
        Assert.Equal(-Math.Log10(0.5) / 6, above.SelfMatch, 12);
        Assert.Equal(1.0 / 3, AttributionEvidence.From([1.01f, 1f, 4f], ids, sources, flagged, selfInfluence: [1f, float.NaN, 1f]).SelfMatch, 4);
        Assert.Equal(0.0, AttributionEvidence.From([4f, 1f, 16f], ids, sources, flagged, selfInfluence: [2f, float.NaN, 8f]).SelfMatch);
        // A negative self-influence (training on the item lowered the margin it is asked about) divides alike.
        var negative = AttributionEvidence.From([-2f, 1f, 4f], ids, sources, flagged, selfInfluence: [-2f, float.NaN, 0f]);
        Assert.Equal((1.0, 1.0), (negative.SelfRatio, negative.SelfMatch));
        // Unflagged documents and zero self-influences are not read; without self-influences the features are 0.
        var unread = AttributionEvidence.From([2f, 9f, 4f], ids, sources, flagged, selfInfluence: [float.NaN, 9f, 0f]);
        Assert.Equal((0.0, 0.0), (unread.SelfRatio, unread.SelfMatch));
        Assert.Equal(0.0, AttributionEvidence.From([2f, 1f, 4f], ids, sources, flagged).SelfMatch);
        Assert.Equal(1.0, ContaminationFeatures.Of(SpanEvidence.None(1), copy)[^1]);
        Assert.Throws<ArgumentException>(() => AttributionEvidence.From([2f, 1f, 4f], ids, sources, flagged, selfInfluence: [1f]));
    }

    [Fact]
    public void Fit_GivesAConstantFeatureNoWeight_AndStaysFiniteOnSeparableData()
    {
        var evidence = new List<(SpanEvidence, AttributionEvidence)>();
        var labels = new List<bool>();
        for (int i = 0; i < 40; i++)
        {
            bool leak = i % 2 == 0;
            evidence.Add((new SpanEvidence(10, 0, leak ? 10 : 0, leak ? 1 : 0, []), AttributionEvidence.None));
            labels.Add(leak);
        }

        var o = ContaminationCalibration.Fit(evidence, labels, ContaminationEvidenceKind.Combined, 0);
        Assert.All(o.Weights, w => Assert.True(double.IsFinite(w)));
        Assert.Equal([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], o.Weights.Skip(3));
        var policy = new ContaminationPolicy(o);
        Assert.True(policy.Score(evidence[0].Item1, evidence[0].Item2) > policy.Score(evidence[1].Item1, evidence[1].Item2));
    }

    [Fact]
    public void Auroc_IsTheRankProbability_WithTiesCountingHalf()
    {
        Assert.Equal(1.0, AlertMetrics.Auroc([0.9, 0.8, 0.1, 0.2], [true, true, false, false]));
        Assert.Equal(0.0, AlertMetrics.Auroc([0.1, 0.2, 0.9, 0.8], [true, true, false, false]));
        Assert.Equal(0.5, AlertMetrics.Auroc([0.5, 0.5, 0.5, 0.5], [true, false, true, false]));
        Assert.Equal(0.75, AlertMetrics.Auroc([0.9, 0.3, 0.5, 0.1], [true, true, false, false]));
        Assert.True(double.IsNaN(AlertMetrics.Auroc([0.9, 0.3], [true, true])));
    }
}

public sealed class ContaminationCrossFitTests
{
    [Fact]
    public void CrossFit_NeverUsesAQuerysOwnLabel()
    {
        var rng = new Rng(11);
        var evidence = new List<(SpanEvidence, AttributionEvidence)>();
        var labels = new List<bool>();
        for (int i = 0; i < 200; i++)
        {
            bool leak = i % 3 == 0; // both folds (i % 2) hold leaked and clean queries
            int length = leak ? 10 + rng.NextInt(30) : rng.NextInt(20);
            evidence.Add((new SpanEvidence(40, 0, length, length == 0 ? 0 : 1 + rng.NextInt(5), []), new AttributionEvidence(rng.NextSingle(), rng.NextSingle() * 3, rng.NextSingle(), 0, 0, [])));
            labels.Add(leak);
        }

        var folds = Enumerable.Range(0, 200).Select(i => i % 2).ToArray();
        var (scores, thresholds) = ContaminationCalibration.CrossFit(evidence, labels, folds, ContaminationEvidenceKind.Combined, 0.01);
        // Flip the labels of fold 0: fold 0's own scores and thresholds do not move; fold 1's (fitted on fold 0) do.
        var flipped = labels.Select((l, i) => folds[i] == 0 ? !l : l).ToArray();
        var (scores2, thresholds2) = ContaminationCalibration.CrossFit(evidence, flipped, folds, ContaminationEvidenceKind.Combined, 0.01);
        for (int i = 0; i < 200; i++)
        {
            if (folds[i] == 0)
            {
                Assert.Equal(scores[i], scores2[i]);
                Assert.Equal(thresholds[i], thresholds2[i]);
            }
        }

        Assert.Contains(Enumerable.Range(0, 200), i => folds[i] == 1 && scores[i] != scores2[i]);
        // Each fold's threshold lets at most 1 % of the other fold's clean queries through.
        for (int f = 0; f < 2; f++)
        {
            var other = Enumerable.Range(0, 200).Where(i => folds[i] != f).ToArray();
            var options = ContaminationCalibration.Fit([.. other.Select(i => evidence[i])], [.. other.Select(i => labels[i])], ContaminationEvidenceKind.Combined, 0.01);
            Assert.Equal(options.Threshold, thresholds[Array.IndexOf(folds, f)]);
        }

        Assert.Throws<ArgumentException>(() => ContaminationCalibration.CrossFit(evidence, labels, [.. folds.Select(_ => 0)], ContaminationEvidenceKind.Combined, 0.01));
    }
}
