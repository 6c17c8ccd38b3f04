using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Attribution.Attribution.Evaluation;
using Attribution.Cli.Evaluation;
using Attribution.Engine;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline bench lm-lds</c>: the language-model LDS table (issue 11): ground truth by fine-tuning a shared base GPT
/// on random document subsets (cached), then every method's document- and source-level LDS, latency and memory.
/// </summary>
internal static class LmLdsBench
{
    public static Command Create()
    {
        var corpus = new Option<string>("--corpus") { Description = "Text sources (comma-separated: fortunes, fortunes/<file>, foldoc, jargon, devil).", DefaultValueFactory = _ => "fortunes,foldoc,jargon,devil" };
        var tokenizer = new Option<string>("--tokenizer") { Description = "bytes or gpt2.", DefaultValueFactory = _ => ByteTokenizer.TokenizerName };
        tokenizer.AcceptOnlyFromAmong([.. Tokenizers.Names]);
        var dModel = new Option<int>("--d-model") { Description = "Residual width.", DefaultValueFactory = _ => 32 };
        var layers = new Option<int>("--layers") { Description = "Transformer blocks.", DefaultValueFactory = _ => 2 };
        var heads = new Option<int>("--heads") { Description = "Attention heads.", DefaultValueFactory = _ => 2 };
        var context = new Option<int>("--context") { Description = "Context (documents longer than context + 1 framed tokens are not used).", DefaultValueFactory = _ => 64 };
        var minTokens = new Option<int>("--min-tokens") { Description = "Shortest document used (framed tokens).", DefaultValueFactory = _ => 16 };
        var baseDocs = new Option<int>("--base-docs") { Description = "Documents the shared base model is trained on (disjoint from the pool).", DefaultValueFactory = _ => 2000 };
        var pool = new Option<int>("--pool") { Description = "Attribution pool: documents the subsets are drawn from (the LDS units).", DefaultValueFactory = _ => 256 };
        var queries = new Option<int>("--queries") { Description = "Held-out query documents (prompt = first half, completion = the rest).", DefaultValueFactory = _ => 50 };
        var subsets = new Option<int>("--subsets") { Description = "Document-level LDS subsets m.", DefaultValueFactory = _ => 40 };
        var sourceSubsets = new Option<int>("--source-subsets") { Description = "Source-level LDS subsets (random α-sets of the pool's sources; 0 = off).", DefaultValueFactory = _ => 20 };
        var alpha = new Option<double>("--alpha") { Description = "Subset fraction α.", DefaultValueFactory = _ => 0.5 };
        var seeds = new Option<int>("--seeds-per-subset") { Description = "Fine-tuning seeds (data orders) per subset; 2 gives the noise ceiling.", DefaultValueFactory = _ => 2 };
        var baseEpochs = new Option<int>("--base-epochs") { Description = "Epochs of base training.", DefaultValueFactory = _ => 4 };
        var epochs = new Option<int>("--epochs") { Description = "Fine-tuning epochs (every subset model and the full-pool model).", DefaultValueFactory = _ => 3 };
        var lr = new Option<float>("--lr") { Description = "Fine-tuning peak learning rate (AdamW, cosine to 0).", DefaultValueFactory = _ => 1e-3f };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the split, the base model, the subset draw and the fine-tuning seeds.", DefaultValueFactory = _ => 0UL };
        var methods = new Option<string[]>("--method") { Description = "Method spec, repeatable: name[:key=value,...]. Default: every method on the transformer.", AllowMultipleArgumentsPerToken = true };
        var latency = new Option<int>("--latency-queries") { Description = "Single-query calls timed per method.", DefaultValueFactory = _ => 20 };
        var batch = new Option<int>("--query-batch") { Description = "Queries per call for the batched latency.", DefaultValueFactory = _ => 25 };
        var cache = new Option<string>("--cache") { Description = "Ground-truth cache folder.", DefaultValueFactory = _ => ".cache/lm-lds" };
        var output = new Option<string>("--out") { Description = "Report folder.", DefaultValueFactory = _ => "reports/lm-lds" };
        var calibrationFraction = new Option<double>("--calibration-fraction") { Description = "Fraction of the queries (seeded by --seed) held out as calibration queries: a method that tunes itself on ground truth (stride:combine=blend, combine-weight=auto) chooses on them, and every method's LDS is reported on the other queries only. 0 = off.", DefaultValueFactory = _ => 0.0 };
        var scaleDocs = new Option<string>("--scale-documents") { Description = "Also time every method's queries over the pool's documents replicated by each of these factors (comma-separated, e.g. 4,16: n = 256, 1,024, 4,096), every method at every n alternated in the same passes, to split per-query CPU into a fixed part (intercept) and a per-document part (slope, ± its standard error over the passes); empty = off.", DefaultValueFactory = _ => string.Empty };
        var scalePasses = new Option<int>("--scale-passes") { Description = "Timed passes of every query per method and n for --scale-documents (the slope's standard error is over the passes).", DefaultValueFactory = _ => 5 };
        var energyDocs = new Option<int>("--energy-documents") { Description = "Precompute the first forward-only method on this many base documents and report how much of the responses' energy a fitted basis of k = 32..1024 keeps (in-sample and held out); 0 = off.", DefaultValueFactory = _ => 0 };
        var readoutDocs = new Option<string>("--readout-documents") { Description = "Also time every method's per-document part apart from its fixed part: queries prepared once (gradient, projection), then only the method's own readout over the pool's documents repeated by each of these factors (comma-separated, e.g. 16,64,256: n up to 65,536), every (method, n, batch) alternated in --scale-passes passes; CPU µs per document = slope. Methods without a split (BM25, TracIn, ...) are not timed this way. Empty = off.", DefaultValueFactory = _ => string.Empty };
        var readoutBatches = new Option<string>("--readout-batches") { Description = "Query batch sizes for --readout-documents (comma-separated).", DefaultValueFactory = _ => "1,32" };
        var readoutMax = new Option<int>("--readout-max-mib") { Description = "--readout-documents skips an n whose repeated document state would exceed this many MiB (the full forward-only readout holds 33,440 floats per document).", DefaultValueFactory = _ => 2048 };
        var truthOnly = new Option<bool>("--truth-only") { Description = "Build (or read) the ground truth and print the noise ceiling; score no method." };

        var command = new Command("lm-lds", "Language-model LDS: fine-tune a shared base GPT on random document subsets (two seeds each), then every method's document- and source-level LDS with the noise ceiling, latency and memory.");
        foreach (var o in new Option[] { corpus, tokenizer, dModel, layers, heads, context, minTokens, baseDocs, pool, queries, subsets, sourceSubsets, alpha, seeds, baseEpochs, epochs, lr, seed, methods, latency, batch, cache, output, calibrationFraction, truthOnly, scaleDocs, scalePasses, energyDocs, readoutDocs, readoutBatches, readoutMax })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, cancellationToken) => Task.FromResult(Execute(parse, cancellationToken)));
        return command;

        int Execute(ParseResult parse, CancellationToken cancellationToken)
        {
            try
            {
                Blas.SetThreads(1);
                var tok = Tokenizers.Create(parse.GetValue(tokenizer)!);
                var config = new GptConfig(VocabSize: tok.VocabSize, Context: parse.GetValue(context), DModel: parse.GetValue(dModel),
                    Heads: parse.GetValue(heads), Layers: parse.GetValue(layers));
                config.Validate();
                Require(parse.GetValue(subsets) >= 2, "--subsets must be at least 2.");
                Require(parse.GetValue(seeds) >= 1, "--seeds-per-subset must be at least 1.");
                Require(parse.GetValue(latency) >= 1 && parse.GetValue(batch) >= 1, "--latency-queries and --query-batch must be at least 1.");
                Require(parse.GetValue(calibrationFraction) is >= 0 and < 1, "--calibration-fraction must lie in [0, 1).");
                var fineTune = new DocumentTrainingRecipe { Epochs = parse.GetValue(epochs), LearningRate = parse.GetValue(lr), BatchSize = 16 };
                var baseRecipe = new DocumentTrainingRecipe { Epochs = parse.GetValue(baseEpochs), LearningRate = 3e-3f, BatchSize = 16, WarmupSteps = 20 };
                fineTune.Validate();
                baseRecipe.Validate();
                var specs = (parse.GetValue(methods) is { Length: > 0 } given ? given : LmLdsTable.DefaultMethods)
                    .SelectMany(s => s.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
                var options = new LmLdsOptions(parse.GetValue(corpus)!, tok.Name, config, parse.GetValue(minTokens), parse.GetValue(baseDocs),
                    parse.GetValue(pool), parse.GetValue(queries), baseRecipe, fineTune, parse.GetValue(subsets), parse.GetValue(alpha),
                    parse.GetValue(seeds), parse.GetValue(sourceSubsets), parse.GetValue(seed), parse.GetValue(cache)!, specs,
                    parse.GetValue(latency), parse.GetValue(batch), parse.GetValue(calibrationFraction), ScaleFactors(parse.GetValue(scaleDocs)!, "--scale-documents"), parse.GetValue(energyDocs), parse.GetValue(scalePasses),
                    ScaleFactors(parse.GetValue(readoutDocs)!, "--readout-documents"), ScaleFactors(parse.GetValue(readoutBatches)!, "--readout-batches"), parse.GetValue(readoutMax));
                Require(options.ScaleDocuments!.All(f => f >= 2) && options.ScaleDocuments!.Distinct().Count() == options.ScaleDocuments!.Count, "--scale-documents must list distinct replication factors of at least 2 (e.g. 4,16), or be empty (off).");
                Require(options.ReadoutDocuments!.All(f => f >= 2) && options.ReadoutDocuments!.Distinct().Count() == options.ReadoutDocuments!.Count, "--readout-documents must list distinct repetition factors of at least 2 (e.g. 16,64,256), or be empty (off).");
                Require(options.ReadoutBatches!.Count >= 1 && options.ReadoutBatches!.All(b => b >= 1), "--readout-batches must list query batch sizes of at least 1 (e.g. 1,32).");
                Require(options.ReadoutMaxMiB >= 1, "--readout-max-mib must be at least 1.");
                Require(options.ScalePasses >= 2, "--scale-passes must be at least 2 (the slope's standard error is over the passes).");
                Require(options.EnergyDocuments >= 0, "--energy-documents must be 0 (off) or a document count.");
                bool onlyTruth = parse.GetValue(truthOnly);
                if (!onlyTruth)
                {
                    LmLdsTable.Validate(specs);
                }

                var data = LmLdsData.Load(options);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"lm-lds: {config}; base {data.BaseDocuments.Length} docs, pool {data.PoolDocuments.Length} docs from {data.SourcesPresent.Length} sources, {data.Queries.Length} queries; m = {options.Subsets} x {options.SeedsPerSubset} seeds, alpha {options.Alpha}"));
                var runner = new LmLdsRunner(options, data);
                int last = -1;
                var progress = new Progress(p =>
                {
                    int pct = p.Total == 0 ? 100 : p.Done * 100 / p.Total;
                    if (pct / 10 != last || p.Done == p.Total)
                    {
                        last = pct / 10;
                        Console.WriteLine($"  {p.Stage}: {p.Done}/{p.Total}");
                    }

                    if (p.Done == p.Total)
                    {
                        last = -1;
                    }
                });
                var truth = runner.RunGroundTruth(progress, cancellationToken);
                var inv = CultureInfo.InvariantCulture;
                Console.WriteLine(string.Create(inv, $"ground truth: {truth.ModelsTrained} models trained, {truth.ModelsFromCache} from cache, {truth.Seconds:F1} s ({truth.SecondsPerFineTune:F2} s per fine-tune); setting {truth.SettingHash}"));
                Console.WriteLine(string.Create(inv, $"mean query log-likelihood: base {truth.BaseOutputs.Average():F2}, full-pool fine-tune {truth.FullOutputs.Average():F2} nats"));
                if (truth.Examples.NoiseCeiling() is { } c)
                {
                    Console.WriteLine(string.Create(inv, $"document-level noise ceiling {c.Mean:F3} ± {c.Ci95:F3}"));
                }

                if (truth.Sources?.NoiseCeiling() is { } sc)
                {
                    Console.WriteLine(string.Create(inv, $"source-level noise ceiling {sc.Mean:F3} ± {sc.Ci95:F3}"));
                }

                if (onlyTruth)
                {
                    return 0;
                }

                var table = LmLdsTable.Run(options, data, runner, truth, cancellationToken);
                var outDir = parse.GetValue(output)!;
                LmLdsTable.WriteReport(table, options, data, truth, outDir, "./pipeline " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
                    $"{Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture}, .NET {Environment.Version}");
                foreach (var r in table)
                {
                    Console.WriteLine(LmLdsTable.Line(r));
                }

                foreach (var line in LmLdsTable.Comparison(table))
                {
                    Console.WriteLine(line);
                }

                if (options.EnergyDocuments > 0)
                {
                    var fo = specs.FirstOrDefault(s => s.StartsWith("forward-only", StringComparison.OrdinalIgnoreCase))
                        ?? throw new ArgumentException("--energy-documents needs a forward-only method in --method.");
                    var energy = LmLdsTable.EnergyScaling(options, data, truth, fo, options.EnergyDocuments, cancellationToken);
                    foreach (var line in energy)
                    {
                        Console.WriteLine(line);
                    }

                    File.AppendAllText(Path.Combine(outDir, "report.md"), "\n" + string.Join('\n', energy) + "\n");
                }

                Console.WriteLine($"report: {Path.GetFullPath(Path.Combine(outDir, "report.md"))}");
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or IOException or DataFormatException or InvalidOperationException or UnauthorizedAccessException or TrainingDivergedException)
            {
                Console.Error.WriteLine($"bench lm-lds: {e.Message}");
                return 2;
            }
        }
    }

    // "4,16" -> [4, 16]; empty -> none.
    private static int[] ScaleFactors(string text, string option) =>
        [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(t => int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out int f)
            ? f : throw new ArgumentException($"{option}: '{t}' is not a whole number; write them comma-separated, e.g. 4,16."))];

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }

    private sealed class Progress(Action<RetrainProgress> report) : IProgress<RetrainProgress>
    {
        public void Report(RetrainProgress value) => report(value);
    }
}
