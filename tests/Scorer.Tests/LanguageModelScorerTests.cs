using Attribution.Attribution;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Models;

namespace Attribution.Scorer.Tests;

/// <summary>
/// Text queries scored through a real attribution method on a real (tiny, untrained) GPT: the scorer must give exactly
/// the scores of the method object the offline benchmarks use, per document and per source, with each document's source.
/// </summary>
public sealed class LanguageModelScorerTests
{
    private static readonly GptConfig Config = new(VocabSize: ByteTokenizer.Size, Context: 24, DModel: 16, Heads: 2, Layers: 1);
    private static readonly string[] Documents = ["the cat sat on the mat", "zyx wvu tsr", "0123456789", "the dog ran", "Hello, world!"];
    private static readonly int[] DocumentSources = [0, 1, 1, 0, 2];
    private static readonly long[] DocumentIds = [1001, 1002, 1003, 1004, 1005];

    private static (LanguageModelScorer Scorer, IAttributionMethod Method) Build()
    {
        var model = new GptModel(new Gpt(Config, seed: 3));
        var theta = new float[model.ParameterCount];
        model.CopyTo(theta);
        var framed = Documents.Select(d => ByteTokenizer.Instance.EncodeDocument(System.Text.Encoding.UTF8.GetBytes(d))).ToArray();
        var problem = AttributionProblem.ForGpt(Config, theta, framed, DocumentSources, sourceCount: 3);
        var method = MethodFactory.Create("grad-dot");
        method.Precompute(problem);
        var scorer = new LanguageModelScorer("gpt-run@300", method, Config, ByteTokenizer.Instance, DocumentIds, DocumentSources, [70, 71, 72], ["fortunes/a", "fortunes/b", "devil"]);
        return (scorer, method);
    }

    [Fact]
    public void Text_queries_get_the_methods_own_scores_per_document_and_per_source()
    {
        var (scorer, method) = Build();
        ModelQuery[] queries = [ModelQuery.FromText("q1", "v", "bytes", "the ", "cat sat", default), ModelQuery.FromTokens("q2", "v", "bytes", [], [48, 49, 50], default)];
        var scores = scorer.Score(queries);

        var expected = method.Score(QueryBatch.Completions([CompletionQuery.FromText(ByteTokenizer.Instance, "the ", "cat sat"), new CompletionQuery([ByteTokenizer.Bos], [48, 49, 50])], Config.Context));
        Assert.Equal(expected.Scores, scores.Examples);
        Assert.Equal(expected.SourceScores, scores.Sources);
        for (int q = 0; q < 2; q++)
        {
            var row = scores.ExampleRow(q).ToArray();
            Assert.All(row, v => Assert.True(float.IsFinite(v)));
            for (int s = 0; s < 3; s++)
            {
                var sum = Enumerable.Range(0, Documents.Length).Where(d => DocumentSources[d] == s).Sum(d => (double)row[d]);
                Assert.Equal(sum, scores.SourceRow(q).Span[s], 3);
            }
        }

        Assert.Equal([70L, 71, 71, 70, 72], scorer.ExampleSourceIds);
        Assert.Equal(("grad-dot", CompletionQuery.OutputFunction), (scorer.Method, scorer.OutputFunction));
    }

    [Fact]
    public void A_query_repeating_a_training_document_ranks_that_document_first()
    {
        // Grad-Dot: a completion equal to a document's text has (nearly) that document's log-likelihood gradient.
        var (scorer, _) = Build();
        var queries = Documents.Select((d, i) => ModelQuery.FromText($"q{i}", "v", "bytes", "", d, default)).ToArray();
        var scores = scorer.Score(queries);
        for (int q = 0; q < queries.Length; q++)
        {
            Assert.Equal(q, scorer.TopK(scores, q, 1)[0].Example);
        }
    }

    [Fact]
    public void The_scorer_validates_against_its_own_tokenizer_and_context()
    {
        var (scorer, _) = Build();
        Assert.Contains("this model reads 'bytes'", Assert.Throws<QueryRejectedException>(() => scorer.Validate(ModelQuery.FromText("q", "v", "gpt2", "a", "b", default))).Message, StringComparison.Ordinal);
        Assert.Contains("context is 24 tokens", Assert.Throws<QueryRejectedException>(() => scorer.Validate(ModelQuery.FromText("q", "v", "bytes", "", new string('x', 25), default))).Message, StringComparison.Ordinal);
        scorer.Validate(ModelQuery.FromText("q", "v", "bytes", "", new string('x', 24), default));
    }

    [Fact]
    public void Forward_only_is_served_with_source_scores_that_are_the_sums_of_its_documents()
    {
        // Sources are defined once (as on the MLP path and offline): a source's score is the sum of its documents'
        // scores, which is what the method's ScoreSources returns.
        var model = new GptModel(new Gpt(Config, seed: 3));
        var theta = new float[model.ParameterCount];
        model.CopyTo(theta);
        var framed = Documents.Select(d => ByteTokenizer.Instance.EncodeDocument(System.Text.Encoding.UTF8.GetBytes(d))).ToArray();
        var problem = AttributionProblem.ForGpt(Config, theta, framed, DocumentSources, sourceCount: 3);
        var method = MethodFactory.Create("forward-only", new Dictionary<string, string> { ["horizon"] = "2", ["eta"] = "0.01", ["batch"] = "2", ["rank"] = "2" });
        method.Precompute(problem);
        var scorer = new LanguageModelScorer("gpt-run@300", method, Config, ByteTokenizer.Instance, DocumentIds, DocumentSources, [70, 71, 72], ["fortunes/a", "fortunes/b", "devil"]);
        var scores = scorer.Score([ModelQuery.FromText("q1", "v", "bytes", "the ", "cat sat", default)]);
        var batch = QueryBatch.Completions([CompletionQuery.FromText(ByteTokenizer.Instance, "the ", "cat sat")], Config.Context);
        var expected = method.Score(batch);
        Assert.Equal(expected.Scores, scores.Examples);
        Assert.Equal(method.ScoreSources(batch), scores.Sources);
        Assert.Equal(expected.SourceScores, scores.Sources);
        for (int s = 0; s < 3; s++)
        {
            float sum = 0;
            for (int d = 0; d < DocumentSources.Length; d++)
            {
                sum += DocumentSources[d] == s ? expected.Scores[d] : 0f;
            }

            Assert.Equal(sum, scores.Sources[s], 1e-5f * Math.Max(1f, Math.Abs(sum)));
        }
    }

    [Fact]
    public void A_negative_compress_or_compress_with_another_method_than_forward_only_fails_validation_saying_why()
    {
        // The Scorer's options are validated at start (the service exits with the message); k > documents is only
        // known at load and rejects that set (ServiceTests).
        Assert.Null(new ScorerOptions { Compress = 128 }.Validate());
        Assert.Null(new ScorerOptions { Compress = 128, Normalize = "relative" }.Validate());
        Assert.Contains("Scorer:Compress must be 0 (the full readout) or the basis size k >= 1", new ScorerOptions { Compress = -1 }.Validate(), StringComparison.Ordinal);
        Assert.Contains("Scorer:Compress = 8 applies to forward-only", new ScorerOptions { Compress = 8, Method = "stride" }.Validate(), StringComparison.Ordinal);
    }
}
