using Attribution.Attribution.Methods;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Tests.Methods;

public class LmBaselineMethodTests
{
    private static readonly GptConfig Config = new(VocabSize: 12, Context: 8, DModel: 8, Heads: 2, Layers: 1);

    // Framed documents (document start 11 first): d0 = [11 1 2], d1 = [11 1 1 3], d2 = [11 4]; sources 0, 1, 1.
    private static readonly int[][] Docs = [[11, 1, 2], [11, 1, 1, 3], [11, 4]];

    private static AttributionProblem Problem()
    {
        var theta = new float[new GptModel(new Gpt(Config, 0)).ParameterCount];
        new GptModel(new Gpt(Config, seed: 5)).CopyTo(theta);
        return AttributionProblem.ForGpt(Config, theta, Docs, [0, 1, 1], 2);
    }

    [Fact]
    public void Bm25_method_reads_whole_sequences_from_padded_rows()
    {
        var rows = Bm25Method.Sequences(AttributionProblem.Documents(Docs, 8));
        Assert.Equal(Docs, rows);
        var query = QueryBatch.Completions([new CompletionQuery([11, 1], [3])], 8);
        Assert.Equal([[11, 1, 3]], Bm25Method.Sequences(query.Batch));
    }

    [Fact]
    public void Bm25_method_scores_documents_and_sums_sources_with_hand_computed_values()
    {
        var method = new Bm25Method();
        method.Precompute(Problem());
        var s = method.Score(QueryBatch.Completions([new CompletionQuery([11], [3, 3])], 8));
        // Terms: 11 is in every document (df 3, idf ln(1 + 0.5/3.5)); 3 in d1 only (df 1, idf ln(1 + 2.5/1.5)), twice in
        // the query. Lengths 3, 4, 2, avgdl 3: K = 1.2·(0.25 + 0.75·|d|/3) = 1.2, 1.5, 0.9.
        double idf11 = Math.Log(1 + (0.5 / 3.5)), idf3 = Math.Log(1 + (2.5 / 1.5));
        double d0 = idf11 * 2.2 / 2.2, d1 = (idf11 * 2.2 / 2.5) + (2 * idf3 * 2.2 / 2.5), d2 = idf11 * 2.2 / 1.9;
        Assert.Equal(d0, s.Scores[0], 5);
        Assert.Equal(d1, s.Scores[1], 5);
        Assert.Equal(d2, s.Scores[2], 5);
        Assert.Equal(d0, s.SourceScores[0], 5);
        Assert.Equal(d1 + d2, s.SourceScores[1], 5);
    }

    [Fact]
    public void Repsim_gives_cosine_one_to_a_document_the_query_repeats_and_matches_the_hidden_state_cosine()
    {
        var problem = Problem();
        var method = new RepresentationSimilarityMethod();
        method.Precompute(problem);
        // The query's sequence is exactly d1: same positions, same hidden states, cosine 1.
        var s = method.Score(QueryBatch.Completions([new CompletionQuery([11, 1], [1, 3])], 8));
        Assert.Equal(1f, s.Scores[1], 5);
        var gpt = ((GptModel)problem.CreateModel()).Gpt;
        float[] Mean(int[] seq)
        {
            var h = gpt.HiddenStates(seq, 1, seq.Length);
            var m = new float[8];
            for (int p = 0; p < seq.Length; p++)
            {
                for (int k = 0; k < 8; k++)
                {
                    m[k] += h[(p * 8) + k] / seq.Length;
                }
            }

            return m;
        }

        // A row reads its inputs: the sequence without its last token.
        var q = Mean([11, 1, 1]);
        for (int i = 0; i < 3; i++)
        {
            var d = Mean(Docs[i][..^1]);
            double cos = q.Zip(d, (a, b) => (double)a * b).Sum() / Math.Sqrt(q.Sum(v => (double)v * v) * d.Sum(v => (double)v * v));
            Assert.Equal(cos, s.Scores[i], 4);
        }

        Assert.Equal(s.Scores[1] + s.Scores[2], s.SourceScores[1], 5);
        Assert.Equal(3 * 8 * 4, method.StateBytes);
    }

    [Fact]
    public void Lexical_and_representation_baselines_refuse_a_classifier()
    {
        var mlp = new AttributionProblem(new MlpLayout([2, 2]), new float[6], [0f, 1f], [1]);
        Assert.Throws<ArgumentException>(() => new Bm25Method().Precompute(mlp));
        Assert.Throws<ArgumentException>(() => new RepresentationSimilarityMethod().Precompute(mlp));
    }
}
