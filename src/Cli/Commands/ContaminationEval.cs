using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Attribution.Attribution;
using Attribution.Cli.Evaluation;
using Attribution.Engine;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline eval contamination</c>: the contamination benchmark of issue 13 (<see cref="ContaminationRunner"/>,
/// <see cref="ContaminationTable"/>): recall at a calibrated false-alert rate and AUROC per form, rate, multiplicity
/// and evidence (span alone, each attribution method alone, span + each method).
/// </summary>
internal static class ContaminationEval
{
    /// <summary>The methods measured by default: BM25, TRAK and forward-only at settings that fit a shared 2-core machine.</summary>
    public const string DefaultMethods = "bm25:ngram=3;trak:k=256,damping=3;forward-only:horizon=2,batch=4";

    public static Command Create()
    {
        var corpus = new Option<string>("--corpus") { Description = "Training corpus (TextCorpus spec).", DefaultValueFactory = _ => "fortunes,foldoc,jargon,devil" };
        var dictionary = new Option<string>("--dictionary") { Description = "dictd index the held-out benchmark items are built from (not in the training corpus).", DefaultValueFactory = _ => "/usr/share/dictd/gcide.index" };
        var train = new Option<int>("--train") { Description = "Training documents before injection (the same in every run).", DefaultValueFactory = _ => 1000 };
        var clean = new Option<int>("--clean") { Description = "Clean (never injected) benchmark items queried in every run.", DefaultValueFactory = _ => 200 };
        var rates = new Option<string>("--rates") { Description = "Injection rates: distinct leaked items per form / training documents (comma separated).", DefaultValueFactory = _ => "0.001,0.01" };
        var multiplicities = new Option<string>("--multiplicities") { Description = "Copies of each leaked item (comma separated).", DefaultValueFactory = _ => "1,4,16" };
        var dModel = new Option<int>("--d-model") { Description = "Residual width.", DefaultValueFactory = _ => 32 };
        var layers = new Option<int>("--layers") { Description = "Transformer blocks.", DefaultValueFactory = _ => 2 };
        var heads = new Option<int>("--heads") { Description = "Attention heads.", DefaultValueFactory = _ => 2 };
        var context = new Option<int>("--context") { Description = "Context in byte tokens (documents and items must fit).", DefaultValueFactory = _ => 64 };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs per run.", DefaultValueFactory = _ => 3 };
        var lr = new Option<float>("--lr") { Description = "AdamW peak learning rate (warm-up 20 steps, cosine to 0).", DefaultValueFactory = _ => 3e-3f };
        var minSpan = new Option<int>("--min-span") { Description = "Shortest span reported by the span stage (tokens).", DefaultValueFactory = _ => 10 };
        var minWords = new Option<int>("--min-words") { Description = "Shortest run of normalised words reported by the span stage.", DefaultValueFactory = _ => 3 };
        var dedup = new Option<int>("--dedup-span") { Description = "Drop a drawn item whose canonical text shares a span this long with the clean training corpus.", DefaultValueFactory = _ => 24 };
        var methods = new Option<string>("--methods") { Description = "Semicolon-separated attribution method specs (name:key=value,...).", DefaultValueFactory = _ => DefaultMethods };
        var falseAlerts = new Option<double>("--false-alert-rate") { Description = "Target false-alert rate the thresholds are calibrated for.", DefaultValueFactory = _ => 0.01 };
        var folds = new Option<int>("--folds") { Description = "Item folds for cross-fitting (each query's policy is fitted on the other folds).", DefaultValueFactory = _ => 2 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the corpus sample, the item draw and training.", DefaultValueFactory = _ => 0UL };
        var output = new Option<string>("--out") { Description = "Report folder.", DefaultValueFactory = _ => "reports/contamination" };
        var cache = new Option<string>("--cache") { Description = "Trained-model cache folder.", DefaultValueFactory = _ => ".cache/contamination" };
        var command = new Command("contamination", "Contamination benchmark: inject held-out Q/A items (verbatim, reformatted, paraphrased) at rates x multiplicities into GPT training, then recall at a calibrated false-alert rate and AUROC for span, attribution and combined evidence.");
        foreach (var o in new Option[] { corpus, dictionary, train, clean, rates, multiplicities, dModel, layers, heads, context, epochs, lr, minSpan, minWords, dedup, methods, falseAlerts, folds, seed, output, cache })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, cancellationToken) => Task.FromResult(Execute(parse, cancellationToken)));
        return command;

        int Execute(ParseResult parse, CancellationToken cancellationToken)
        {
            ContaminationOptions options;
            try
            {
                var config = new GptConfig(VocabSize: ByteTokenizer.Instance.VocabSize, Context: parse.GetValue(context), DModel: parse.GetValue(dModel),
                    Heads: parse.GetValue(heads), Layers: parse.GetValue(layers));
                config.Validate();
                var recipe = new DocumentTrainingRecipe { Epochs = parse.GetValue(epochs), LearningRate = parse.GetValue(lr), BatchSize = 16, WarmupSteps = 20 };
                recipe.Validate();
                var specs = parse.GetValue(methods)!.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                Require(specs.Length >= 1, "--methods needs at least one method spec.");
                foreach (var s in specs)
                {
                    var (name, o) = EvalRunner.ParseSpec(s);
                    _ = MethodFactory.Create(name, o);
                }

                options = new ContaminationOptions(parse.GetValue(corpus)!, parse.GetValue(dictionary)!, config, recipe, parse.GetValue(train), parse.GetValue(clean),
                    ParseList(parse.GetValue(rates)!, "--rates", double.Parse), ParseList(parse.GetValue(multiplicities)!, "--multiplicities", int.Parse),
                    parse.GetValue(minSpan), parse.GetValue(minWords), parse.GetValue(dedup), specs, parse.GetValue(falseAlerts), parse.GetValue(folds), parse.GetValue(seed), parse.GetValue(cache)!);
                Require(options.TrainDocuments >= 100, "--train must be at least 100.");
                Require(options.CleanItems >= 20, "--clean must be at least 20 (the false-alert threshold needs clean calibration queries).");
                Require(options.Rates.Count > 0 && options.Multiplicities.Count > 0, "--rates and --multiplicities need at least one value each.");
                Require(options.Rates.All(r => r is > 0 and < 1), "--rates must lie strictly between 0 and 1.");
                Require(options.Multiplicities.All(m => m >= 1), "--multiplicities must be at least 1.");
                Require(options.MinSpan >= 1 && options.MinWords >= 1 && options.DedupSpan >= 1, "--min-span, --min-words and --dedup-span must be at least 1.");
                Require(options.FalseAlertRate is >= 0 and < 1, "--false-alert-rate must lie in [0, 1).");
                Require(options.Folds >= 2, "--folds must be at least 2.");
                Require(File.Exists(options.Dictionary), $"--dictionary {options.Dictionary} does not exist; install dict-gcide (apt-get install dict-gcide) or name another dictd .index file.");
            }
            catch (Exception e) when (e is ArgumentException or MethodOptionException or FormatException)
            {
                Console.Error.WriteLine($"eval contamination: {e.Message}");
                return 2;
            }

            try
            {
                Blas.SetThreads(1);
                var data = new ContaminationRunner(options).Run(Console.WriteLine, cancellationToken);
                var columns = ContaminationTable.Columns(data, options);
                var outDir = parse.GetValue(output)!;
                Directory.CreateDirectory(outDir);
                var report = ContaminationTable.Report(data, options, columns, "./pipeline " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
                    $"{Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}, load average {LoadAverage()}");
                File.WriteAllText(Path.Combine(outDir, "report.md"), report);
                Console.WriteLine(report);
                Console.WriteLine($"report: {Path.GetFullPath(Path.Combine(outDir, "report.md"))}");
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or IOException or DataFormatException or InvalidOperationException or UnauthorizedAccessException or TrainingDivergedException or NotSupportedException)
            {
                Console.Error.WriteLine($"eval contamination: {e.Message}");
                return 1;
            }
        }
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static T[] ParseList<T>(string text, string option, Func<string, IFormatProvider, T> parse) =>
        [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p =>
        {
            try
            {
                return parse(p, CultureInfo.InvariantCulture);
            }
            catch (FormatException)
            {
                throw new ArgumentException($"{option} '{text}': '{p}' is not a number.");
            }
        })];

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }
}
