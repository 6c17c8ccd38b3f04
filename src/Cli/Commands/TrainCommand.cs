using System.CommandLine;
using Attribution.Engine;
using Attribution.Engine.Data;
using Attribution.Engine.IO;
using Attribution.Engine.Models;
using Attribution.Engine.Training;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Attribution.Cli.Commands;

internal static class TrainCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model to train: mlp (FashionMNIST) or gpt (a text corpus, see --corpus).", DefaultValueFactory = _ => "mlp" };
        model.AcceptOnlyFromAmong("mlp", "gpt");
        var output = new Option<string>("--out") { Description = "Run directory to write (run.json + model.safetensors).", Required = true };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training set (mlp).", DefaultValueFactory = _ => 8 };
        var trainSize = new Option<int>("--train-size") { Description = "Training examples (a seeded subset; 60000 = all of FashionMNIST).", DefaultValueFactory = _ => 60_000 };
        var testSize = new Option<int>("--test-size") { Description = "Test examples (a seeded subset; 10000 = all).", DefaultValueFactory = _ => 10_000 };
        var seed = new Option<ulong>("--seed") { Description = "Seed for subset selection, initialisation and shuffling.", DefaultValueFactory = _ => 0UL };
        var threads = new Option<int>("--threads") { Description = "OpenBLAS threads (0 = library default).", DefaultValueFactory = _ => 1 };
        var steps = new Option<int>("--steps") { Description = "Optimiser steps (gpt).", DefaultValueFactory = _ => 1200 };
        var data = new Option<string>("--data") { Description = "FashionMNIST directory.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var corpus = new Option<string>("--corpus") { Description = "Text sources (gpt), comma-separated: fortunes, fortunes/<file>, foldoc, jargon, devil.", DefaultValueFactory = _ => "fortunes" };
        var tokenizer = new Option<string>("--tokenizer") { Description = "Tokenizer (gpt): bytes (tiny models) or gpt2 (GPT-2's BPE, vocabulary 50257).", DefaultValueFactory = _ => ByteTokenizer.TokenizerName };
        tokenizer.AcceptOnlyFromAmong([.. Tokenizers.Names]);
        var saveEvery = new Option<int>("--save-every") { Description = "Also save a checkpoint every N epochs and after the last (mlp; training-checkpoints/, listed in run.json): what TracIn sums over. 0 = only the final model.", DefaultValueFactory = _ => 0 };

        var command = new Command("train", "Train a model and write a reproducible run directory (run.json with the full recipe + model.safetensors).");
        foreach (var o in new Option[] { model, output, epochs, steps, trainSize, testSize, seed, threads, data, corpus, tokenizer, saveEvery })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse =>
        {
            using var factory = CliLogging.CreateFactory();
            var log = factory.CreateLogger("train");
            try
            {
                if (parse.GetValue(threads) > 0)
                {
                    Blas.SetThreads(parse.GetValue(threads));
                }

                bool gpt = parse.GetValue(model) == "gpt";
                var notHonoured = gpt
                    ? new Option[] { epochs, trainSize, testSize, data, saveEvery }.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false })
                    : new Option[] { steps, corpus, tokenizer }.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false });
                if (notHonoured is not null)
                {
                    Console.Error.WriteLine($"{notHonoured.Name} does not apply to --model {parse.GetValue(model)}.");
                    return 2;
                }

                if (parse.GetValue(saveEvery) < 0)
                {
                    Console.Error.WriteLine($"--save-every must be 0 (off) or a number of epochs (got {parse.GetValue(saveEvery)}).");
                    return 2;
                }

                return gpt
                    ? GptTraining.Run(log, parse.GetValue(output)!, parse.GetValue(seed), parse.GetValue(steps), parse.GetValue(corpus)!, parse.GetValue(tokenizer)!)
                    : TrainMlp(log, parse.GetValue(output)!, parse.GetValue(epochs), parse.GetValue(trainSize), parse.GetValue(testSize), parse.GetValue(seed), parse.GetValue(data)!, parse.GetValue(saveEvery));
            }
            catch (Exception e) when (e is IOException or DataFormatException or RecipeException or SafetensorsException or TrainingDivergedException or ArgumentException or UnauthorizedAccessException)
            {
                TrainLog.TrainingFailed(log, e.Message);
                return 1;
            }
        });
        return command;
    }

    private static int TrainMlp(ILogger log, string outDir, int epochs, int trainSize, int testSize, ulong seed, string dataDir, int saveEvery)
    {
        if (trainSize is < 1 or > 60_000 || testSize is < 0 or > 10_000 || epochs < 1)
        {
            throw new ArgumentException($"--train-size must be 1..60000 (got {trainSize}), --test-size 0..10000 (got {testSize}), --epochs >= 1 (got {epochs}).");
        }

        TrainLog.LoadingData(log, "fashion-mnist", dataDir);
        var data = FashionMnist.Load(dataDir);
        var recipe = TrainingRecipe.DefaultMlp(
            SubsetSelector.Select(data.Train.Count, trainSize, seed),
            SubsetSelector.Select(data.Test.Count, testSize, seed + 1),
            epochs,
            seed);
        TrainLog.TrainingStarted(log, "mlp", string.Join('-', recipe.Model.Widths), trainSize, testSize, epochs, recipe.BatchSize, seed, recipe.TotalSteps);

        MlpTrainingResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("epoch 1", maxValue: recipe.TotalSteps);
                var progress = InlineProgress.Create(p =>
                {
                    task.Value = p.Step;
                    if (p.Step % 10 == 0 || p.Step == p.TotalSteps)
                    {
                        task.Description = $"epoch {p.Epoch + 1}/{recipe.Epochs} step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} lr {p.LearningRate:F4}";
                    }
                });
                result = TrainAndSave(recipe, data, outDir, saveEvery, progress);
            });

        var m = result!.Metrics;
        TrainLog.TrainingFinished(log, m.TrainSeconds, m.FinalTrainLoss, m.TestLoss, m.TestAccuracy);
        TrainLog.WroteRun(log, outDir);
        Console.WriteLine($"test accuracy {m.TestAccuracy:P2}  test loss {m.TestLoss:F4}  final train loss {m.FinalTrainLoss:F4}  ({m.Steps} steps, {m.TrainSeconds:F1} s)");
        return 0;
    }

    /// <summary>
    /// Trains an MLP recipe and writes its run directory; with <paramref name="saveEvery"/> &gt; 0 also the checkpoints
    /// along training (every N epochs and the last), listed in run.json. Shared by <c>train</c> and <c>attribute</c>'s
    /// ensemble members.
    /// </summary>
    internal static MlpTrainingResult TrainAndSave(TrainingRecipe recipe, FashionMnistData data, string outDir, int saveEvery, IProgress<TrainingProgress>? progress = null)
    {
        var saved = new List<TrainingCheckpoint>();
        var request = saveEvery > 0 ? new CheckpointRequest(saveEvery, (epoch, step, model) => saved.Add(RunDirectory.SaveTrainingCheckpoint(outDir, epoch, step, model.Parameters))) : null;
        var result = MlpTrainer.Train(recipe, data, progress, checkpoints: request);
        RunDirectory.Save(outDir, new RunManifest { Recipe = recipe, Metrics = result.Metrics, CreatedUtc = DateTime.UtcNow.ToString("O"), TrainingCheckpoints = saved }, result.Model.Parameters);
        return result;
    }
}

/// <summary>An IProgress that runs its callback synchronously on the reporting thread (no SynchronizationContext hop).</summary>
internal sealed class InlineProgress<T>(Action<T> action) : IProgress<T>
{
    public void Report(T value) => action(value);
}

internal static class InlineProgress
{
    public static InlineProgress<TrainingProgress> Create(Action<TrainingProgress> action) => new(action);
}

internal static class GptTraining
{
    public static int Run(ILogger log, string outDir, ulong seed, int steps, string corpusSpec, string tokenizerName)
    {
        if (steps < 1)
        {
            throw new ArgumentException($"--steps must be >= 1 (got {steps}).");
        }

        TrainLog.LoadingData(log, corpusSpec, "Debian text packages");
        var corpus = TextCorpus.Load(corpusSpec);
        var tokenizer = Tokenizers.Create(tokenizerName);
        var defaults = new GptRecipe();
        var recipe = defaults with
        {
            Seed = seed,
            Steps = steps,
            Corpus = corpus.Spec,
            Tokenizer = tokenizer.Name,
            Config = defaults.Config with { VocabSize = tokenizer.VocabSize },
        };
        TrainLog.TrainingStarted(log, "gpt", recipe.Config.ToString(), corpus.Documents.Count, 0, 1, recipe.BatchSize, seed, recipe.Steps);
        GptTrainingResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("gpt", maxValue: recipe.Steps);
                result = GptTrainer.Train(recipe, corpus, InlineProgress.Create(p =>
                {
                    task.Value = p.Step;
                    task.Description = $"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} lr {p.LearningRate:F5}";
                }));
            });
        var r = result!;
        TrainLog.GptFinished(log, recipe.Config.ToString(), r.ValidationLoss, r.UnigramValidationLoss, recipe.Steps, r.Seconds);
        Directory.CreateDirectory(outDir);
        GptCheckpoint.Save(outDir, r.Model);
        var manifest = System.Text.Json.JsonSerializer.Serialize(new
        {
            recipe,
            data = new
            {
                corpus = corpus.Spec,
                tokenizer = tokenizer.Name,
                documentIds = "stable 63-bit ids: FNV-1a-64 of the UTF-8 of source name, newline, key (fortune ordinal in its file, or dictionary headword), top bit cleared",
                sources = corpus.Sources.Select(s => new { s.Id, s.Name, s.Package, s.Licence, documents = corpus.Documents.Count(d => d.SourceId == s.Id) }),
                trainDocumentIds = r.TrainDocumentIds.Select(i => corpus.Documents[i].Id),
                validationDocumentIds = r.ValidationDocumentIds.Select(i => corpus.Documents[i].Id),
            },
            metrics = new { validationLoss = r.ValidationLoss, unigramValidationLoss = r.UnigramValidationLoss, seconds = r.Seconds },
            checkpoint = GptCheckpoint.WeightsFile,
            checkpointLayout = "huggingface-gpt2 (config.json + model.safetensors)",
        }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        var tmp = Path.Combine(outDir, RunDirectory.ManifestFile + ".tmp");
        File.WriteAllText(tmp, manifest);
        File.Move(tmp, Path.Combine(outDir, RunDirectory.ManifestFile), overwrite: true);
        TrainLog.WroteRun(log, outDir);
        Console.WriteLine($"validation loss {r.ValidationLoss:F4} nats/token vs unigram {r.UnigramValidationLoss:F4} ({(r.ValidationLoss < r.UnigramValidationLoss ? "beats" : "does NOT beat")} unigram)");
        return r.ValidationLoss < r.UnigramValidationLoss ? 0 : 3;
    }
}
