using System.CommandLine;
using Attribution.Cli.Demo;

namespace Attribution.Cli.Commands;

/// <summary><c>./pipeline demo</c>: the whole pipeline on one machine (embedded event log by default, or Kafka).</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var defaults = new DemoSettings();
        var model = new Option<string>("--model") { Description = "mlp: the FashionMNIST image classifier; gpt: a byte-level GPT on Debian text sources, with text queries.", DefaultValueFactory = _ => "mlp" };
        model.AcceptOnlyFromAmong("mlp", "gpt");
        var corpus = new Option<string>("--corpus") { Description = "Text sources the GPT is trained on (gpt; see ./pipeline train --help).", DefaultValueFactory = _ => DemoSettings.GptCorpus };
        var steps = new Option<int>("--steps") { Description = "GPT training steps (gpt).", DefaultValueFactory = _ => defaults.Steps };
        var method = new Option<string>("--method") { Description = "Attribution method served through the pipeline: forward-only, or stride[:key=value,...] (STRIDE: the Simulator trains the steering operators on the checkpoint and publishes them as probes, the Scorer serves them; gpt: plain 'stride' is the language-model LDS configuration).", DefaultValueFactory = _ => defaults.Method };
        var kafka = new Option<string?>("--kafka") { Description = "Kafka bootstrap servers (host:port,...); default: the embedded in-process event log." };
        var queries = new Option<int>("--queries") { Description = "Test images replayed as live queries (mlp; default 300), or text queries sent (gpt; default 8)." };
        var rate = new Option<double>("--rate") { Description = "Queries per second replayed (0 = as fast as possible, to see saturation throughput).", DefaultValueFactory = _ => defaults.Rate };
        var leaked = new Option<int>("--leaked-queries") { Description = "Items of the leaked benchmark source also served as queries (should raise alerts).", DefaultValueFactory = _ => defaults.LeakedQueries };
        var trainSize = new Option<int>("--train-size") { Description = "FashionMNIST training images for the model.", DefaultValueFactory = _ => defaults.TrainSize };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => defaults.Epochs };
        var simulate = new Option<int>("--simulate") { Description = "Training examples the Simulator probes individually (every source is probed whole).", DefaultValueFactory = _ => defaults.Simulate };
        var horizon = new Option<int?>("--horizon") { Description = "Forward-only simulation horizon K in gradient steps (default: the Simulator's, 4 epochs of mini-batches of 100 over the simulated examples). Not with --horizon-epochs." };
        var horizonEpochs = new Option<double?>("--horizon-epochs") { Description = "Forward-only simulation horizon in epochs of the shared mini-batches, K = ceil(E·n/batch) (Simulator:HorizonEpochs). Not with --horizon." };
        var threshold = new Option<double>("--alert-threshold") { Description = "Share of a query's positive source attribution on the flagged source that raises an alert (Scorer:AlertThreshold).", DefaultValueFactory = _ => defaults.AlertThreshold };
        var runDir = new Option<string>("--run-dir") { Description = "Where the trained model is cached.", DefaultValueFactory = _ => defaults.RunDirectory };
        var outDir = new Option<string>("--out") { Description = "Where attributions.arrow and demo.log are written.", DefaultValueFactory = _ => defaults.OutputDirectory };
        var noConsole = new Option<bool>("--no-console") { Description = "Do not serve the web console (and its ledger, SQL store and Flight feed) during the demo." };
        var consolePort = new Option<int>("--console-port") { Description = "Web console port (Arrow Flight takes the next one; 0 picks free ports).", DefaultValueFactory = _ => defaults.ConsolePort };
        var stay = new Option<bool>("--stay") { Description = "Keep the console serving after the demo finished, until Ctrl+C." };
        var calibrate = new Option<int>("--calibrate-alerts") { Description = "Image demo: raise alerts with the two-stage policy on attribution evidence, the self-influence match and the input match with the flagged items (Scorer:FlaggedExamples: the Scorer reads their images from the run's batches), its weights fitted on the held-back leaked items and its threshold chosen on this many clean test images held out from the queries (at most 1 % false alerts with confidence 0.9); writes alert-evidence.tsv (0 = the source-share and example-lead rules).", DefaultValueFactory = _ => defaults.CalibrationQueries };
        var seed = new Option<ulong>("--seed") { Description = "Seed for data subsets, training, sources and query order.", DefaultValueFactory = _ => defaults.Seed };

        var command = new Command("demo", "Run the whole product on one machine: train, ingest, simulate probes, attribute live queries, raise contamination alerts.");
        foreach (var o in new Option[] { model, kafka, queries, rate, leaked, trainSize, epochs, simulate, horizon, horizonEpochs, threshold, runDir, outDir, seed, noConsole, consolePort, stay, corpus, steps, method, calibrate })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, token) =>
        {
            bool gpt = parse.GetValue(model) == "gpt";
            // Options of the other model's demo cannot be honoured: say so (exit 2) rather than ignore them.
            var notHonoured = gpt
                ? new Option[] { rate, leaked, trainSize, epochs, simulate, horizon, horizonEpochs, threshold, consolePort, stay, calibrate }.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false })
                : new Option[] { corpus, steps }.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false });
            var horizonGiven = new Option[] { horizon, horizonEpochs }.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false });
            if (notHonoured is null && horizonGiven is not null && !parse.GetValue(method)!.StartsWith("forward-only", StringComparison.Ordinal))
            {
                await Console.Error.WriteLineAsync($"{horizonGiven.Name} configures forward-only's simulation; it does not apply to --method {parse.GetValue(method)}.");
                return 2;
            }

            if (notHonoured is not null)
            {
                await Console.Error.WriteLineAsync($"{notHonoured.Name} does not apply to --model {parse.GetValue(model)}.");
                return 2;
            }

            bool queriesGiven = parse.GetResult(queries) is { Implicit: false };
            var settings = new DemoSettings
            {
                Model = parse.GetValue(model)!,
                Corpus = parse.GetValue(corpus)!,
                Steps = parse.GetValue(steps),
                Method = parse.GetValue(method)!,
                KafkaBootstrap = parse.GetValue(kafka),
                Queries = queriesGiven ? parse.GetValue(queries) : gpt ? 8 : defaults.Queries,
                Rate = parse.GetValue(rate),
                LeakedQueries = parse.GetValue(leaked),
                TrainSize = parse.GetValue(trainSize),
                Epochs = parse.GetValue(epochs),
                Simulate = parse.GetValue(simulate),
                Horizon = parse.GetValue(horizon),
                HorizonEpochs = parse.GetValue(horizonEpochs),
                AlertThreshold = parse.GetValue(threshold),
                CalibrationQueries = parse.GetValue(calibrate),
                RunDirectory = parse.GetResult(runDir) is { Implicit: false } || !gpt ? parse.GetValue(runDir)! : Path.Combine("runs", "demo-gpt"),
                OutputDirectory = parse.GetResult(outDir) is { Implicit: false } || !gpt ? parse.GetValue(outDir)! : Path.Combine("runs", "demo-gpt-output"),
                Seed = parse.GetValue(seed),
                Console = !parse.GetValue(noConsole),
                ConsolePort = parse.GetValue(consolePort),
                Stay = parse.GetValue(stay),
            };
            if (gpt)
            {
                if (settings.Validate() is { } error)
                {
                    await Console.Error.WriteLineAsync(error);
                    return 2;
                }

                return await GptDemoRunner.RunAsync(settings, token);
            }

            return await DemoRunner.RunAsync(settings, token);
        });
        return command;
    }
}
