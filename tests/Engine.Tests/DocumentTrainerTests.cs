using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Engine.Tests;

public class DocumentTrainerTests
{
    private static readonly GptConfig Config = new(VocabSize: 12, Context: 8, DModel: 8, Heads: 2, Layers: 1);

    [Fact]
    public void Rows_shift_each_document_by_one_and_pad_with_ignored_targets()
    {
        var (inputs, targets, seqLen) = DocumentTrainer.Rows([[10, 1, 2, 3], [10, 5]]);
        Assert.Equal(3, seqLen);
        Assert.Equal([10, 1, 2, 10, 10, 10], inputs);
        Assert.Equal([1, 2, 3, 5, -1, -1], targets);
    }

    [Fact]
    public void Training_on_documents_lowers_their_loss_and_is_deterministic_per_seed()
    {
        int[][] docs = [[10, 1, 2, 3, 4, 11], [10, 5, 6, 7, 11], [10, 1, 2, 8, 11], [10, 9, 9, 9, 9, 9, 11]];
        var recipe = new DocumentTrainingRecipe { Epochs = 20, BatchSize = 2, LearningRate = 1e-2f };
        var (inputs, targets, seqLen) = DocumentTrainer.Rows(docs);
        var a = new Gpt(Config, seed: 1);
        float before = a.Loss(inputs, targets, docs.Length, seqLen);
        DocumentTrainer.Train(a, docs, recipe, seed: 7);
        float after = a.Loss(inputs, targets, docs.Length, seqLen);
        Assert.True(after < before * 0.6, $"loss {before} -> {after}");

        var b = new Gpt(Config, seed: 1);
        var epochs = new List<int>();
        DocumentTrainer.Train(b, docs, recipe, seed: 7, (e, _) => epochs.Add(e));
        Assert.Equal(Enumerable.Range(1, 20), epochs);
        Assert.Equal(a.Parameters[0].Data, b.Parameters[0].Data);
        var c = new Gpt(Config, seed: 1);
        DocumentTrainer.Train(c, docs, recipe, seed: 8);
        Assert.NotEqual(a.Parameters[0].Data, c.Parameters[0].Data);
    }

    [Fact]
    public void A_document_longer_than_the_context_is_refused()
    {
        var ex = Assert.Throws<ArgumentException>(() => DocumentTrainer.Train(new Gpt(Config, 1), [[10, 1, 2, 3, 4, 5, 6, 7, 8, 9]], new DocumentTrainingRecipe(), 0));
        Assert.Contains("2..9", ex.Message, StringComparison.Ordinal);
    }
}
