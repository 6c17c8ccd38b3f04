using System.Security.Cryptography;
using Attribution.Attribution;
using Attribution.Attribution.Contamination;
using Attribution.Attribution.Spans;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Transport.Messages;

namespace Attribution.Scorer.Tests;

/// <summary>
/// The two-stage contamination rule as the Scorer runs it: a text query's longest span in the training corpus's span
/// index plus its attribution evidence become one calibrated score, and the alert carries the matched span, the
/// documents with their sources and the attribution share; the span index is loaded only when it is intact and fits.
/// </summary>
public sealed class ContaminationAlertTests : IDisposable
{
    private static readonly GptConfig Config = new(VocabSize: ByteTokenizer.Size, Context: 24, DModel: 16, Heads: 2, Layers: 1);
    private static readonly string[] Documents = ["the cat sat on the mat", "zyx wvu tsr", "0123456789", "the dog ran", "Hello, world!"];
    private static readonly int[] DocumentSources = [0, 1, 1, 0, 2];
    private static readonly long[] DocumentIds = [1001, 1002, 1003, 1004, 1005];
    private static readonly long[] SourceIds = [70, 71, 72];
    private readonly string _dir = Directory.CreateTempSubdirectory("spancat-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (LanguageModelScorer Scorer, SpanIndex Index) Build()
    {
        var model = new GptModel(new Gpt(Config, seed: 3));
        var theta = new float[model.ParameterCount];
        model.CopyTo(theta);
        var framed = Documents.Select(d => ByteTokenizer.Instance.EncodeDocument(System.Text.Encoding.UTF8.GetBytes(d))).ToArray();
        var method = MethodFactory.Create("grad-dot");
        method.Precompute(AttributionProblem.ForGpt(Config, theta, framed, DocumentSources, sourceCount: 3));
        var scorer = new LanguageModelScorer("gpt-run@300", method, Config, ByteTokenizer.Instance, DocumentIds, DocumentSources, SourceIds, ["a", "b", "c"]);
        var index = SpanIndex.Build(framed, DocumentIds, [.. DocumentSources.Select(s => (int)SourceIds[s])]);
        return (scorer, index);
    }

    private static ContaminationVerdict? Evaluate(AlertPolicy policy, LanguageModelScorer scorer, SpanIndex index, ModelQuery query)
    {
        var scores = scorer.Score([query]);
        var spans = new SpanLookup(scorer, new CorpusMatcher(index, ByteTokenizer.Instance), new CorpusMatchOptions(MinTokens: 8)).Find(query);
        return policy.Evaluate(scores.SourceRow(0).Span, scorer.SourceIds, scores.ExampleRow(0).Span, scorer.ExampleNorms.Span, scorer.ExampleIds, scorer.ExampleSourceIds, spans);
    }

    [Fact]
    public void A_query_copying_a_training_document_alerts_with_the_span_its_document_source_and_attribution_share()
    {
        var (scorer, index) = Build();
        var policy = AlertPolicy.From(new ScorerOptions());
        var verdict = Evaluate(policy, scorer, index, ModelQuery.FromText("leak", "gpt-run@300", "bytes", "the cat ", "sat on the mat", default));

        Assert.NotNull(verdict);
        Assert.Equal(AlertRule.Calibrated, verdict.Rule);
        Assert.True(verdict.Score > verdict.Threshold && verdict.Threshold == 0.5, $"score {verdict.Score}");
        var e = verdict.Evidence!;
        // The whole query (22 bytes) is document 1001's text, found once in the corpus.
        Assert.Equal(("the cat sat on the mat", 0, 22, 1), (e.MatchedSpan, e.SpanStart, e.SpanLength, e.SpanCount));
        Assert.Equal(System.Text.Encoding.UTF8.GetBytes("the cat sat on the mat").Select(b => (int)b), e.MatchedTokenIds);
        Assert.Equal(1001L, e.DocumentIds[0]);
        Assert.Equal(70L, e.DocumentSourceIds[0]);
        Assert.InRange(e.AttributionShare, 0, 1);
        Assert.Equal(ContaminationFeatures.Count, policy.Calibrated.Options.Weights.Count);

        // The message monitoring receives carries the same evidence.
        var message = AttributionPublisher.ToMessage(new AttributionResult("leak", "gpt-run@300", "grad-dot", [1001], [1f], [70], [1f], 0), verdict, default);
        Assert.Same(e, message.Evidence);
    }

    [Fact]
    public void A_query_sharing_no_span_with_the_corpus_raises_nothing()
    {
        var (scorer, index) = Build();
        var verdict = Evaluate(AlertPolicy.From(new ScorerOptions()), scorer, index, ModelQuery.FromText("clean", "gpt-run@300", "bytes", "qq", "kkkk jjjj", default));
        Assert.Null(verdict);
    }

    [Fact]
    public void The_span_only_policy_reads_no_attribution_and_a_higher_threshold_silences_a_partial_copy()
    {
        var (scorer, index) = Build();
        Assert.Equal([12.0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0], new ScorerOptions { Contamination = { Evidence = "span" } }.Contamination.ToPolicyOptions().Weights);
        // Stage one with a calibrated weight on the normalised-text overlap.
        var spanOnly = new ScorerOptions { Contamination = { Evidence = "span", Weights = [12, 0, 2, 0, 0, 0, 0, 12, 0, 0, 0] } };
        // 11 of 21 tokens copied (exact coverage 0.52, found once); the text is "zzzzzzzzzzthe dog ran" (prompt and
        // completion joined as sent), whose normalised words dog and ran document 1004 holds: overlap by rarity
        // 2 ln(6/2) over that plus ln(6/1) for the unknown first word (5 documents).
        double held = 2 * Math.Log(3), overlap = held / (held + Math.Log(6));
        var partial = ModelQuery.FromText("half", "gpt-run@300", "bytes", "zzzzzzzzzz", "the dog ran", default);
        var verdict = Evaluate(AlertPolicy.From(spanOnly), scorer, index, partial);
        Assert.NotNull(verdict);
        double z = -8 + (12 * 11.0 / 21) + 2 + (12 * overlap);
        Assert.Equal(1 / (1 + Math.Exp(-z)), verdict.Score, 9);
        Assert.Contains(1004L, verdict.Evidence!.DocumentIds);
        Assert.Null(Evaluate(AlertPolicy.From(new ScorerOptions { Contamination = { Evidence = "span", Weights = [12, 0, 2, 0, 0, 0, 0, 12, 0, 0, 0], Threshold = 0.9999 } }), scorer, index, partial));
        Assert.Contains("does not read it", Assert.Throws<ArgumentException>(() => new ScorerOptions { Contamination = { Evidence = "exact", Weights = [12, 0, 2, 0, 0, 0, 0, 12, 0, 0, 0] } }.Contamination.ToPolicyOptions()).Message);
        // The stated rule (and exact spans alone) weigh no text feature: z = -8 + 12·0.52 + 2 = 0.29, score 0.57.
        var exact = Evaluate(AlertPolicy.From(new ScorerOptions { Contamination = { Evidence = "exact" } }), scorer, index, partial);
        Assert.Equal(1 / (1 + Math.Exp(-(-8 + (12 * 11.0 / 21) + 2))), exact!.Score, 9);
    }

    [Fact]
    public void An_image_query_whose_flagged_example_stands_out_by_relative_influence_alerts_on_attribution_alone()
    {
        // Attribution-only weights: the flagged share of positive relative influence decides.
        var calibrated = new ContaminationPolicyOptions { Evidence = ContaminationEvidenceKind.Attribution, Weights = [0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0], Bias = -5, Threshold = 0.5 };
        var policy = new AlertPolicy([], [12], 0.5, 1.05, calibrated);
        long[] ids = [10, 11, 12, 13];
        // Relative influence 1, 2, 6, 1 (example 11's raw 8 has a response of norm 4): flagged 12 holds 6/10.
        var verdict = policy.Evaluate([1f], [0], [1f, 8f, 6f, 1f], [1f, 4f, 1f, 1f], ids);
        Assert.NotNull(verdict);
        Assert.Equal((AlertRule.Calibrated, 0.6), (verdict.Rule, verdict.Evidence!.AttributionShare));
        Assert.Equal([12L], verdict.FlaggedExampleIds);
        Assert.Equal("", verdict.Evidence.MatchedSpan);
        // Flagged 12 at 2 of 6: share 1/3, below the threshold's 0.5.
        Assert.Null(policy.Evaluate([1f], [0], [1f, 8f, 2f, 1f], [1f, 4f, 1f, 1f], ids));
    }

    // A tiny image model (4 features, 3 hidden, 2 classes) with four probed examples 100..103 of sources 70 and 80.
    private static AttributionModelScorer ImageScorer()
    {
        var format = new Attribution.Probes.ProbeFormat([4, 3, 2], 0, ProbePrecision.Float32);
        var rng = new Random(7);
        var floats = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, format.FloatsPerUnit).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()).ToArray();
        var theta = Enumerable.Range(0, format.Layout.ParameterCount).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        return new AttributionModelScorer(new AttributionModel("run", 3, theta, format, [100, 101, 102, 103], floats, [70, 80], [0, 0, 1, 1]));
    }

    private static readonly float[][] ImageInputs = [[0.5f, -1f, 2f, 0.25f], [1f, 0.5f, -0.5f, 1.5f], [-1f, 2f, 0.5f, -0.75f], [0.25f, 0.25f, 1f, -2f]];

    private static ContaminationVerdict? EvaluateImage(AlertPolicy policy, IQueryScorer scorer, float[] input, FlaggedItems? flagged)
    {
        var scores = scorer.Score([new ModelQuery("q", scorer.Version, input, null, DateTimeOffset.UnixEpoch)]);
        return policy.Evaluate(scores.SourceRow(0).Span, scorer.SourceIds, scores.ExampleRow(0).Span, scorer.ExampleNorms.Span, scorer.ExampleIds, scorer.ExampleSourceIds, null, input, flagged);
    }

    [Fact]
    public void The_flagged_items_self_influence_is_the_readouts_score_of_each_items_own_input_at_its_own_column()
    {
        var scorer = ImageScorer();
        // Flagged: 101 and 103 (probed), 999 (not probed: input match only).
        var inputs = new FlaggedInputIndex([.. ImageInputs[1], .. ImageInputs[3], 9f, 9f, 9f, 9f], 4, [101, 103, 999], [70, 80, 80]);
        var items = FlaggedItems.Measure(scorer, inputs, batch: 1);
        Assert.Equal(("run@3", 2), (items.Version, items.Measured));
        foreach (var (id, column) in new[] { (101L, 1), (103L, 3) })
        {
            var own = scorer.Score([new ModelQuery("x", "run@3", ImageInputs[column], null, DateTimeOffset.UnixEpoch)]).ExampleRow(0).Span[column];
            Assert.Equal(own, items.SelfInfluence[column]);
            Assert.NotEqual(0f, own);
        }

        Assert.True(float.IsNaN(items.SelfInfluence[0]) && float.IsNaN(items.SelfInfluence[2]));
        Assert.Throws<ArgumentException>(() => FlaggedItems.Measure(scorer, new FlaggedInputIndex(new float[] { 1, 2, 3 }, 3, [101])));
    }

    [Fact]
    public void A_copy_of_a_flagged_item_scores_it_as_the_item_scores_itself_and_alerts_on_the_self_influence_match_alone()
    {
        var scorer = ImageScorer();
        var items = FlaggedItems.Measure(scorer, new FlaggedInputIndex([.. ImageInputs[1], .. ImageInputs[3]], 4, [101, 103], [70, 80]));
        // Self-influence evidence only: score = logistic(40 · self_match − 30), an alert above 0.5 = a match above 0.75 (within 3·10⁻⁵).
        var selfOnly = new ScorerOptions { FlaggedExamples = [101, 103], ExampleLeadRatio = 0, Contamination = { Evidence = "self", Weights = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40], Bias = -30 } };
        var policy = AlertPolicy.From(selfOnly);
        var verdict = EvaluateImage(policy, scorer, ImageInputs[3], items);
        Assert.NotNull(verdict);
        Assert.Equal(AlertRule.Calibrated, verdict.Rule);
        Assert.Equal(1 / (1 + Math.Exp(-10)), verdict.Score, 9);
        Assert.Contains(103L, verdict.FlaggedExampleIds);
        // The same query's evidence: s(q,103) = s(103,103), so its ratio and match are 1.
        var scores = scorer.Score([new ModelQuery("q", "run@3", ImageInputs[3], null, DateTimeOffset.UnixEpoch)]);
        var a = policy.Assess(scores.ExampleRow(0).Span, scorer.ExampleNorms.Span, scorer.ExampleIds, scorer.ExampleSourceIds, null, ImageInputs[3], items);
        Assert.Equal(1, a.Attribution.SelfMatch, 5);
        // Another image scores the flagged items away from their self-influence: no alert; without the items no evidence at all.
        var other = policy.Assess(scorer.Score([new ModelQuery("o", "run@3", ImageInputs[0], null, DateTimeOffset.UnixEpoch)]).ExampleRow(0).Span, scorer.ExampleNorms.Span, scorer.ExampleIds, scorer.ExampleSourceIds, null, ImageInputs[0], items);
        Assert.True(other.Attribution.SelfMatch < 0.75, $"self match {other.Attribution.SelfMatch}");
        Assert.Null(EvaluateImage(policy, scorer, ImageInputs[0], items));
        Assert.Null(EvaluateImage(policy, scorer, ImageInputs[3], null));
        // Items read on a scorer of another size are refused, not misaligned.
        Assert.Throws<ArgumentException>(() => policy.Assess(new float[3], new float[3], [100, 101, 102], null, null, ImageInputs[3], items));
    }

    [Fact]
    public void A_feature_query_copying_a_flagged_training_input_alerts_on_the_input_match_and_names_the_item()
    {
        var scorer = ImageScorer();
        // Flagged example 102 (source 80): input match weighted 12, bias −8; the attribution features weigh 0.
        var items = FlaggedItems.Measure(scorer, new FlaggedInputIndex(ImageInputs[2], 4, [102], [80]));
        var options = new ContaminationPolicyOptions { Evidence = ContaminationEvidenceKind.Input | ContaminationEvidenceKind.Attribution, Weights = [0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0], Bias = -8, Threshold = 0.5 };
        var policy = new AlertPolicy([], [102], 0.5, 0, options);
        var verdict = EvaluateImage(policy, scorer, ImageInputs[2], items);
        Assert.NotNull(verdict);
        Assert.Equal(AlertRule.Calibrated, verdict.Rule);
        Assert.Equal(1 / (1 + Math.Exp(-4)), verdict.Score, 9);
        Assert.Equal(102L, verdict.Evidence!.DocumentIds[0]);
        Assert.Equal([102L], verdict.FlaggedExampleIds);
        // Another image (far past the 0.1 relative tolerance), or no flagged items: no alert.
        Assert.Null(EvaluateImage(policy, scorer, ImageInputs[0], items));
        Assert.Null(EvaluateImage(policy, scorer, ImageInputs[2], null));
        Assert.Equal(ContaminationEvidenceKind.Input | ContaminationEvidenceKind.Attribution | ContaminationEvidenceKind.SelfInfluence,
            new ScorerOptions { Contamination = { Evidence = "input+attribution+self" } }.Contamination.ToPolicyOptions().Evidence);
        Assert.Contains("MaxFlaggedInputs must be 1..1000000", new ScorerOptions { Contamination = { MaxFlaggedInputs = 0 } }.Validate(), StringComparison.Ordinal);
    }

    [Fact]
    public void AlertCalibration_fits_attribution_weights_on_held_back_leaked_queries_and_the_threshold_on_clean_ones()
    {
        var (scorer, _) = Build();
        // Documents 1001 and 1004 are the flagged (leaked) items; the policy starts from one feature, the flagged share.
        var start = new ContaminationPolicyOptions { Evidence = ContaminationEvidenceKind.Attribution, Weights = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0], Bias = 0 };
        var policy = new AlertPolicy([], [1001, 1004], 0.5, 0, start);
        var leaked = new List<ModelQuery>();
        foreach (var (doc, cuts) in new[] { (Documents[0], new[] { 4, 8, 12, 16 }), (Documents[3], new[] { 3, 5, 7 }) })
        {
            leaked.AddRange(cuts.Select(c => ModelQuery.FromText($"leak-{leaked.Count}", "gpt-run@300", "bytes", doc[..c], doc[c..], default)));
        }

        var rng = new Engine.Rng(5);
        var clean = Enumerable.Range(0, 39).Select(i =>
        {
            var text = new string([.. Enumerable.Range(0, 12 + rng.NextInt(8)).Select(_ => "abcdefghijklmnopqrstuvwxyz  "[rng.NextInt(28)])]);
            return ModelQuery.FromText($"clean-{i}", "gpt-run@300", "bytes", text[..6], text[6..], default);
        }).ToList();

        var (fitted, cleanScores, leakedScores) = AlertCalibration.Fit(scorer, policy, clean, leaked, 0.05);
        var o = fitted.Calibrated.Options;
        Assert.Equal(ContaminationEvidenceKind.Attribution, o.Evidence);
        Assert.All(Enumerable.Range(0, ContaminationFeatures.Count).Where(k => ContaminationFeatures.Kinds[k] != ContaminationEvidenceKind.Attribution), k => Assert.Equal(0, o.Weights[k]));
        Assert.Contains(o.Weights, w => w != 0);
        // Conformal threshold: k = ⌊0.05 · 40⌋ − 1 = 1 clean calibration score may lie above it.
        Assert.True(cleanScores.Count(x => x > o.Threshold) <= 1, $"{cleanScores.Count(x => x > o.Threshold)} clean above {o.Threshold}");
        Assert.Equal(ContaminationCalibration.ThresholdForFalseAlertRate(cleanScores, 0.05), o.Threshold, 12);
        // Copies of the flagged documents score above the random strings on average under the fitted weights.
        Assert.True(leakedScores.Average() > cleanScores.Average(), $"leaked {leakedScores.Average()} vs clean {cleanScores.Average()}");
    }

    private SpanIndexPublished Write(SpanIndex index, string? checksum = null)
    {
        var bytes = SpanIndexFormat.Write(index);
        var path = Path.Combine(_dir, "r-300.spans");
        File.WriteAllBytes(path, bytes);
        return new SpanIndexPublished("gpt-run", 300, new Uri(path).AbsoluteUri, checksum ?? "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)),
            index.DocumentCount, index.TokenCount, bytes.Length, "bytes");
    }

    [Fact]
    public void A_published_index_loads_under_its_version_only_when_its_checksum_matches_and_it_fits_the_limit()
    {
        var (_, index) = Build();
        var reference = Write(index);
        var loaded = SpanIndexCatalog.Load(reference, 1L << 20);
        Assert.Equal(("gpt-run@300", "bytes", 5), (loaded.Version, loaded.Tokenizer, loaded.Index.DocumentCount));
        // The normalised-text index is derived from the same documents ("0123456789" has no word).
        Assert.Equal((5, 14L), (loaded.Matcher.Text.DocumentCount, loaded.Matcher.Text.WordCount));
        Assert.Contains("tokenizer 'nope'", Assert.Throws<SpanIndexLoadException>(() => SpanIndexCatalog.Load(reference with { Tokenizer = "nope" }, 1L << 20)).Message);
        var catalog = new SpanIndexCatalog();
        catalog.Add(loaded);
        Assert.Same(loaded, catalog.For("gpt-run@300"));
        Assert.Null(catalog.For("gpt-run@200"));

        Assert.Contains("checksum", Assert.Throws<SpanIndexLoadException>(() => SpanIndexCatalog.Load(Write(index, "sha256:00"), 1L << 20)).Message);
        Assert.Contains("MaxSpanIndexBytes", Assert.Throws<SpanIndexLoadException>(() => SpanIndexCatalog.Load(reference, 100)).Message);
        Assert.Contains("file://", Assert.Throws<SpanIndexLoadException>(() => SpanIndexCatalog.Load(reference with { Uri = "https://x/y.spans" }, 1L << 20)).Message);
        File.WriteAllBytes(new Uri(reference.Uri).LocalPath, [1, 2, 3]);
        Assert.Contains("checksum", Assert.Throws<SpanIndexLoadException>(() => SpanIndexCatalog.Load(reference, 1L << 20)).Message);
    }
}
