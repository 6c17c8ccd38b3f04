using Attribution.Engine.Data;
using Attribution.Engine.IO;
using Attribution.Engine.Training;

namespace Attribution.Engine.Tests;

/// <summary>The MLP training loop, recipes and run directories, on real FashionMNIST subsets.</summary>
public sealed class TrainingTests : IDisposable
{
    private static readonly Lazy<FashionMnistData> Data = new(() => FashionMnist.Load());
    private readonly string _dir = Directory.CreateTempSubdirectory("train-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TrainingRecipe Small(int train = 2000, int epochs = 3, ulong seed = 1) =>
        TrainingRecipe.DefaultMlp(SubsetSelector.Select(60_000, train, 11), SubsetSelector.Select(10_000, 1000, 12), epochs, seed);

    [Fact]
    public void DefaultRecipeLearnsFashionMnistSubsetWellAboveChance()
    {
        var result = MlpTrainer.Train(Small(), Data.Value);
        Assert.Equal(3 * 16, result.Metrics.Steps);
        Assert.InRange(result.Metrics.TestAccuracy, 0.72, 1.0);
        Assert.InRange(result.Metrics.FinalTrainLoss, 0.0, 0.8);
    }

    [Fact]
    public void SameRecipeAndSeedGiveBitIdenticalParametersAndOtherSeedsDiffer()
    {
        var a = MlpTrainer.Train(Small(500, 2), Data.Value).Model.ToFlat();
        var b = MlpTrainer.Train(Small(500, 2), Data.Value).Model.ToFlat();
        var c = MlpTrainer.Train(Small(500, 2, seed: 2), Data.Value).Model.ToFlat();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void ProgressIsReportedEveryStepWithTheCosineRate()
    {
        var seen = new List<TrainingProgress>();
        var recipe = Small(300, 2);
        MlpTrainer.Train(recipe, Data.Value, new SyncProgress(seen.Add));
        Assert.Equal(6, seen.Count);
        Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i), seen.Select(p => p.Step));
        Assert.Equal(0.05f, seen[0].LearningRate, 6);
        Assert.Equal(0.05f * 0.5f * (1f + MathF.Cos(MathF.PI * 5 / 6)), seen[5].LearningRate, 6);
    }

    [Fact]
    public void DivergingLossStopsWithTheStepNamed()
    {
        var recipe = Small(512, 3) with { Optimizer = new OptimizerSpec { LearningRate = 1e12f, Momentum = 0.9f } };
        var e = Assert.Throws<TrainingDivergedException>(() => MlpTrainer.Train(recipe, Data.Value));
        Assert.Matches("at step [0-9]+ of 12", e.Message);
    }

    [Fact]
    public void RunDirectoryRoundTripsRecipeMetricsAndWeights()
    {
        var recipe = Small(300, 1);
        var result = MlpTrainer.Train(recipe, Data.Value);
        RunDirectory.Save(_dir, new RunManifest { Recipe = recipe, Metrics = result.Metrics, CreatedUtc = "2026-01-01T00:00:00Z" }, result.Model.Parameters);
        var (manifest, model) = RunDirectory.LoadMlp(_dir);
        Assert.Equal(recipe.Data.TrainIds, manifest.Recipe.Data.TrainIds);
        Assert.Equal(recipe.Data.TestIds, manifest.Recipe.Data.TestIds);
        Assert.Equal(recipe.Data.Normalization, manifest.Recipe.Data.Normalization);
        Assert.Equal(result.Metrics, manifest.Metrics);
        Assert.Equal(result.Model.ToFlat(), model.ToFlat());
        // Re-training from run.json alone reproduces the checkpoint.
        Assert.Equal(model.ToFlat(), MlpTrainer.Train(manifest.Recipe, Data.Value).Model.ToFlat());
    }

    [Fact]
    public void CheckpointThatDoesNotMatchTheRecipeWidthsIsRejectedByName()
    {
        var recipe = Small(300, 1);
        var result = MlpTrainer.Train(recipe, Data.Value);
        var wider = recipe with { Model = new ModelSpec { Widths = [784, 100, 64, 10] } };
        RunDirectory.Save(_dir, new RunManifest { Recipe = recipe, Metrics = result.Metrics }, result.Model.Parameters);
        File.WriteAllText(Path.Combine(_dir, RunDirectory.ManifestFile), new RunManifest { Recipe = wider }.ToJson());
        var e = Assert.Throws<SafetensorsException>(() => RunDirectory.LoadMlp(_dir));
        Assert.Equal("layers.0.weight", e.Tensor);
        Assert.Contains("[128, 784]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidRecipesAreRejectedNamingEveryBadField()
    {
        var e = Assert.Throws<RecipeException>(() => RunDirectory.ParseRecipe(
            """{"epochs": 0, "batchSize": -1, "optimizer": {"kind": "lion"}, "data": {"trainIds": [1, 1]}}""", "r.json"));
        Assert.Contains("r.json", e.Message, StringComparison.Ordinal);
        Assert.Contains("epochs", e.Message, StringComparison.Ordinal);
        Assert.Contains("batchSize", e.Message, StringComparison.Ordinal);
        Assert.Contains("optimizer.kind", e.Message, StringComparison.Ordinal);
        Assert.Contains("data.trainIds: id 1", e.Message, StringComparison.Ordinal);
        Assert.Contains("unknownField", Assert.Throws<RecipeException>(() => RunDirectory.ParseRecipe("""{"unknownField": 1}""", "r.json")).Message, StringComparison.Ordinal);
        Assert.Contains("r.json", Assert.Throws<RecipeException>(() => RunDirectory.ParseRecipe("{", "r.json")).Message, StringComparison.Ordinal);
        var missingDir = Path.Combine(_dir, "none");
        Assert.Contains("pipeline train", Assert.Throws<RecipeException>(() => RunDirectory.LoadManifest(missingDir)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckpointsAreSavedEveryNEpochsAndAtTheEnd_WithoutChangingTheTrainedModel()
    {
        // TracIn sums over these: they must be the model as it was after those epochs, and asking for them must not
        // perturb training (same parameters as a run that saved nothing).
        var recipe = Small(300, 3);
        var plain = MlpTrainer.Train(recipe, Data.Value).Model.ToFlat();
        var saved = new List<(int Epoch, long Step, float[] Theta)>();
        var withCheckpoints = MlpTrainer.Train(recipe, Data.Value, checkpoints: new CheckpointRequest(2, (e, s, m) => saved.Add((e, s, m.ToFlat())))).Model.ToFlat();
        Assert.Equal(plain, withCheckpoints);
        Assert.Equal([2, 3], saved.Select(c => c.Epoch));
        Assert.Equal([2 * 3, 3 * 3], saved.Select(c => c.Step)); // 300 examples in batches of 128: 3 steps per epoch
        Assert.Equal(plain, saved[^1].Theta);
        Assert.NotEqual(plain, saved[0].Theta);

        var manifest = new RunManifest { Recipe = recipe, TrainingCheckpoints = [.. saved.Select(c => RunDirectory.SaveTrainingCheckpoint(_dir, c.Epoch, c.Step, Load(recipe, c.Theta)))] };
        RunDirectory.Save(_dir, manifest, Load(recipe, plain));
        var reloaded = RunDirectory.LoadManifest(_dir);
        Assert.Equal(["training-checkpoints/epoch-0002.safetensors", "training-checkpoints/epoch-0003.safetensors"], reloaded.TrainingCheckpoints.Select(c => c.File.Replace('\\', '/')));
        var thetas = RunDirectory.LoadTrainingCheckpoints(_dir, reloaded);
        Assert.Equal(saved.Select(c => c.Theta), thetas);
    }

    private static IReadOnlyList<Parameter> Load(TrainingRecipe recipe, float[] theta)
    {
        var model = new Attribution.Engine.Models.Mlp(new Attribution.Engine.Models.MlpLayout(recipe.Model.Widths));
        model.LoadFrom(theta);
        return model.Parameters;
    }

    private sealed class SyncProgress(Action<TrainingProgress> action) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => action(value);
    }
}
