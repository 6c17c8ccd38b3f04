using System.Text;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Engine.Tests;

/// <summary>GptTrainer on a small TextCorpus: it learns, splits documents cleanly, and refuses inconsistent recipes.</summary>
public sealed class GptTrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gpt-trainer-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private TextCorpus Corpus()
    {
        var fortunes = Directory.CreateDirectory(Path.Combine(_dir, "fortunes")).FullName;
        var text = new StringBuilder();
        for (int i = 0; i < 60; i++)
        {
            text.Append(i % 2 == 0 ? "the cat sat on the mat\n%\n" : "a dog ran to the log\n%\n");
        }

        File.WriteAllText(Path.Combine(fortunes, "pets"), text.ToString());
        return TextCorpus.Load("fortunes", new CorpusLocations(fortunes, Path.Combine(_dir, "dictd")));
    }

    private static GptRecipe Recipe(TextCorpus corpus) => new()
    {
        Config = new GptConfig(VocabSize: ByteTokenizer.Size, Context: 16, DModel: 16, Heads: 2, Layers: 1),
        Corpus = corpus.Spec,
        Steps = 200,
        LearningRate = 1e-2f,
        BatchSize = 8,
        WarmupSteps = 5,
        Seed = 1,
    };

    [Fact]
    public void LearnsTheCorpusBelowUnigramAndTheCheckpointReopensWithTheSameLoss()
    {
        var corpus = Corpus();
        var r = GptTrainer.Train(Recipe(corpus), corpus);
        Assert.True(r.ValidationLoss < 0.7 * r.UnigramValidationLoss, $"validation {r.ValidationLoss} vs unigram {r.UnigramValidationLoss}");
        Assert.Equal(Enumerable.Range(0, corpus.Documents.Count), r.TrainDocumentIds.Concat(r.ValidationDocumentIds).Order());
        Assert.Equal(6, r.ValidationDocumentIds.Length);

        GptCheckpoint.Save(_dir, r.Model);
        var reopened = GptCheckpoint.Load(_dir);
        var val = ByteTokenizer.Instance.EncodeDocuments(r.ValidationDocumentIds.Select(i => corpus.Documents[i].Bytes));
        Assert.Equal(GptTrainer.ValidationLoss(r.Model, val, 17), GptTrainer.ValidationLoss(reopened, val, 17));
    }

    [Fact]
    public void InconsistentRecipesAreRefused()
    {
        var corpus = Corpus();
        var e = Assert.Throws<ArgumentException>(() => GptTrainer.Train(Recipe(corpus) with { Corpus = "fortunes,jargon" }, corpus));
        Assert.Contains("fortunes,jargon", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => GptTrainer.Train(Recipe(corpus) with { Tokenizer = "gpt2" }, corpus));
        Assert.Contains("50257", e.Message, StringComparison.Ordinal);
    }
}
