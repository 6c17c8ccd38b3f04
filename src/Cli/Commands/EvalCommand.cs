using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Attribution.Attribution;
using Attribution.Attribution.Evaluation;
using Attribution.Cli.Evaluation;
using Attribution.Engine.Data;
using Spectre.Console;

namespace Attribution.Cli.Commands;

/// <summary><c>./pipeline eval</c>: runs an attribution benchmark setting end to end and writes a report folder.</summary>
internal static class EvalCommand
{
    /// <summary>
    /// The issue's benchmark methods, baselines tuned (grids chosen on validation queries, see --tune-fraction):
    /// forward-only (both variants, one model, and a 5-model ensemble), TRAK-1 and TRAK-10 over projection size and
    /// damping, TracIn over training checkpoints, Grad-Dot, influence functions over damping.
    /// </summary>
    internal static readonly string[] DefaultMethods =
    [
        "forward-only", "forward-only-single", "forward-only:models=5",
        "trak:models=1,projector=sjlt,k=256|512|1024|2048|4096,damping=1e-4|1e-3|1e-2|1e-1|1|10",
        "trak:models=10,projector=sjlt,k=256|512|1024|2048|4096,damping=1e-4|1e-3|1e-2|1e-1|1|10",
        "tracin", "grad-dot", "if:solver=cg,iterations=10,lambda=1e-3|1e-2|1e-1|1",
    ];

    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "FashionMNIST IDX folder.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var train = new Option<int>("--train") { Description = "Training pool size (drawn from the train split, seeded).", DefaultValueFactory = _ => 5000 };
        var test = new Option<int>("--test") { Description = "Test queries (drawn from the test split, seeded).", DefaultValueFactory = _ => 500 };
        var hidden = new Option<string>("--hidden") { Description = "Hidden widths, comma separated.", DefaultValueFactory = _ => "128,64" };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs of the recipe (every model: full, subsets, removals).", DefaultValueFactory = _ => 20 };
        var subsets = new Option<int>("--subsets") { Description = "LDS subsets m.", DefaultValueFactory = _ => 100 };
        var alpha = new Option<double>("--alpha") { Description = "Subset fraction α.", DefaultValueFactory = _ => 0.5 };
        var sources = new Option<int>("--sources") { Description = "Sources the training pool is split into for the source-level LDS (half of each source's examples share a class; 0 or 1 = off).", DefaultValueFactory = _ => 10 };
        var sourceSubsets = new Option<int>("--source-subsets") { Description = "Source-level LDS subsets (random sets of round(α·sources) sources, retrained on all their examples; 0 = off).", DefaultValueFactory = _ => 50 };
        var seedsPerSubset = new Option<int>("--seeds-per-subset") { Description = "Models per subset averaged into the LDS target.", DefaultValueFactory = _ => 1 };
        var noNoise = new Option<bool>("--no-noise-ceiling") { Description = "Skip the second seed per subset (no noise ceiling; halves retraining)." };
        var methods = new Option<string[]>("--method")
        {
            Description = "Method spec, repeatable: name[:key=value,...], e.g. forward-only:horizon=50 or trak:models=10,k=8192. models=M averages over M independently trained full-data models (every method); tracin sums over checkpoints saved while training (--checkpoint-every); checkpoints=J averages a method over J of each model's saved checkpoints (e.g. stride:checkpoints=10, with models=M: M·J precomputes). A value written a|b|c is a grid: the configuration with the best LDS on validation queries is reported (--tune-fraction). Default: the issue's full list.",
            AllowMultipleArgumentsPerToken = true,
        };
        var loo = new Option<int>("--loo") { Description = "Leave-one-out: number of training examples removed one at a time (0 = off).", DefaultValueFactory = _ => 0 };
        var looSeeds = new Option<int>("--loo-seeds") { Description = "Seeds per LOO retrain (averaged).", DefaultValueFactory = _ => 1 };
        var topK = new Option<int>("--topk") { Description = "Top-k removal: k (0 = off).", DefaultValueFactory = _ => 0 };
        var topKQueries = new Option<int>("--topk-queries") { Description = "Queries sampled (seeded) for top-k removal.", DefaultValueFactory = _ => 10 };
        var latency = new Option<int>("--latency-queries") { Description = "Single-query calls timed per method.", DefaultValueFactory = _ => 50 };
        var batch = new Option<int>("--query-batch") { Description = "Queries per call for the batched latency and the score matrix.", DefaultValueFactory = _ => 64 };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Epochs between the training checkpoints TracIn sums over (saved while the full-data models train; the last epoch always).", DefaultValueFactory = _ => 2 };
        var tuneFraction = new Option<double>("--tune-fraction") { Description = "When a method spec has a grid (a value written a|b|c), the fraction of test queries (seeded by --seed) on which its configurations are compared; every method's LDS is then reported on the other queries only. Given explicitly, the split applies even without a grid (so runs that tune and runs that do not report on the same queries).", DefaultValueFactory = _ => 0.5 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of data selection, subset draw and training seeds.", DefaultValueFactory = _ => 0UL };
        var output = new Option<string>("--out") { Description = "Report folder (replaced if it holds an earlier report).", DefaultValueFactory = _ => "reports/eval" };
        var cache = new Option<string>("--cache") { Description = "Retrained-output cache folder (shared by runs of the same setting).", DefaultValueFactory = _ => ".cache/eval" };

        var command = new Command("eval", "Run an attribution benchmark (LDS with noise ceiling, optional LOO and top-k removal, latency and memory) and write a report folder.");
        foreach (var o in new Option[] { data, train, test, hidden, epochs, subsets, alpha, sources, sourceSubsets, seedsPerSubset, noNoise, methods, loo, looSeeds, topK, topKQueries, latency, batch, seed, output, cache, checkpointEvery, tuneFraction })
        {
            command.Options.Add(o);
        }

        command.Subcommands.Add(ContaminationEval.Create());
        command.SetAction((parseResult, cancellationToken) => Task.FromResult(Execute(parseResult, cancellationToken)));
        return command;

        int Execute(ParseResult parseResult, CancellationToken cancellationToken)
        {
            try
            {
                var widths = ParseWidths(parseResult.GetValue(hidden)!);
                int nTrain = parseResult.GetValue(train), nTest = parseResult.GetValue(test);
                Require(nTrain >= 10, "--train must be at least 10.");
                Require(nTest >= 1, "--test must be at least 1.");
                Require(parseResult.GetValue(subsets) >= 2, "--subsets must be at least 2.");
                Require(parseResult.GetValue(sources) >= 0 && parseResult.GetValue(sourceSubsets) >= 0, "--sources and --source-subsets must be >= 0.");
                Require(parseResult.GetValue(sourceSubsets) == 0 || parseResult.GetValue(sourceSubsets) >= 2, "--source-subsets must be 0 (off) or at least 2.");
                Require(parseResult.GetValue(seedsPerSubset) >= 1, "--seeds-per-subset must be at least 1.");
                Require(parseResult.GetValue(batch) >= 1 && parseResult.GetValue(latency) >= 1, "--query-batch and --latency-queries must be at least 1.");
                var specs = (parseResult.GetValue(methods) is { Length: > 0 } given ? given : DefaultMethods)
                    .SelectMany(s => s.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
                ulong s0 = parseResult.GetValue(seed);
                int ep = parseResult.GetValue(epochs);
                Require(ep >= 1, "--epochs must be at least 1.");
                Require(parseResult.GetValue(checkpointEvery) >= 1, "--checkpoint-every must be at least 1 epoch.");
                Require(parseResult.GetValue(tuneFraction) is > 0 and < 1, "--tune-fraction must lie strictly between 0 and 1.");

                var dir = parseResult.GetValue(data)!;
                if (!Directory.Exists(dir))
                {
                    throw new ArgumentException($"FashionMNIST folder {dir} does not exist; pass --data with the folder holding train-images-idx3-ubyte.gz.");
                }

                var raw = FashionMnist.Load(dir);
                Require(nTrain <= raw.Train.Count, $"--train {nTrain} exceeds the {raw.Train.Count} training images.");
                Require(nTest <= raw.Test.Count, $"--test {nTest} exceeds the {raw.Test.Count} test images.");
                var trainSet = raw.Train.Select(SubsetSelector.Select(raw.Train.Count, nTrain, s0), Normalization.FashionMnist);
                var testSet = raw.Test.Select(SubsetSelector.Select(raw.Test.Count, nTest, s0 + 1), Normalization.FashionMnist);
                var evalData = new EvalData(trainSet.Inputs, trainSet.Labels, trainSet.Ids, testSet.Inputs, testSet.Labels, testSet.Ids,
                    trainSet.Features, $"FashionMNIST ({Path.GetFullPath(dir)}), normalised (0.2860, 0.3530), selection seed {s0}");
                int[] layerWidths = [trainSet.Features, .. widths, FashionMnist.Classes];
                var recipe = BenchmarkRecipe.Standard(ep);
                var options = new EvalOptions(layerWidths, recipe.Key, parseResult.GetValue(subsets), parseResult.GetValue(alpha),
                    parseResult.GetValue(seedsPerSubset), !parseResult.GetValue(noNoise), s0, specs, parseResult.GetValue(loo),
                    parseResult.GetValue(looSeeds), parseResult.GetValue(topK), parseResult.GetValue(topKQueries),
                    parseResult.GetValue(latency), parseResult.GetValue(batch), parseResult.GetValue(cache)!,
                    parseResult.GetValue(sources), parseResult.GetValue(sourceSubsets), parseResult.GetValue(checkpointEvery), parseResult.GetValue(tuneFraction),
                    parseResult.GetResult(tuneFraction) is { Implicit: false });
                var runner = new EvalRunner(options, evalData, recipe.Trainer(layerWidths, trainSet), BenchmarkRecipe.CreateMethod);

                EvalOutcome? outcome = null;
                AnsiConsole.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                    .Start(ctx =>
                    {
                        var tasks = new Dictionary<string, ProgressTask>();
                        var progress = new SynchronousProgress<RetrainProgress>(p =>
                        {
                            var key = p.Stage.StartsWith("scoring", StringComparison.Ordinal) ? "methods" : p.Stage;
                            if (!tasks.TryGetValue(key, out var t))
                            {
                                t = tasks[key] = ctx.AddTask(Markup.Escape(key == "methods" ? "methods" : p.Stage), maxValue: Math.Max(1, p.Total));
                            }

                            t.MaxValue = Math.Max(1, p.Total);
                            t.Value = p.Done;
                            if (key == "methods")
                            {
                                t.Description = Markup.Escape(p.Stage);
                            }
                        });
                        outcome = runner.Run(progress, cancellationToken);
                        foreach (var t in tasks.Values)
                        {
                            t.Value = t.MaxValue;
                        }
                    });

                var outDir = parseResult.GetValue(output)!;
                EvalReport.Write(outcome!, outDir, "./pipeline " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
                    $"{Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture}, .NET {Environment.Version}");
                PrintSummary(outcome!, outDir);
                return 0;
            }
            catch (MethodOptionException e)
            {
                Console.Error.WriteLine($"eval: {e.Message}");
                return 2;
            }
            catch (Exception e) when (e is ArgumentException or IOException or DataFormatException or InvalidOperationException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"eval: {e.Message}");
                return 1;
            }
        }
    }

    private static void PrintSummary(EvalOutcome o, string outDir)
    {
        var inv = CultureInfo.InvariantCulture;
        if (o.Ceiling is { } c)
        {
            Console.WriteLine(string.Create(inv, $"noise ceiling {c.Mean:F3} ± {c.Ci95:F3}"));
        }

        foreach (var r in o.Methods)
        {
            Console.WriteLine(string.Create(inv, $"{r.Spec,-28} LDS {r.Lds.Mean:F3} ± {r.Lds.Ci95:F3} (skipped {r.Lds.Skipped})  precompute {r.PrecomputeSeconds:F1} s  single p50 {r.SingleP50Ms:F2} ms  batched p50 {r.BatchedP50Ms:F3} ms/query  state {r.StateBytes / 1048576.0:F1} MiB"));
        }

        Console.WriteLine($"models trained {o.ModelsTrained}, from cache {o.ModelsFromCache}; report: {Path.GetFullPath(Path.Combine(outDir, "report.md"))}");
    }

    private static int[] ParseWidths(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var widths = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out widths[i]) || widths[i] < 1)
            {
                throw new ArgumentException($"--hidden '{text}': '{parts[i]}' is not a positive width; write e.g. 128,64.");
            }
        }

        return widths;
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }

    /// <summary>Reports on the calling thread (System.Progress would post to the thread pool and reorder updates).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
