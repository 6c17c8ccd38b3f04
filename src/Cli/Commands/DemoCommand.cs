using System.CommandLine;
using Attribution.Cli.Demo;

namespace Attribution.Cli.Commands;

/// <summary><c>./pipeline demo</c>: the whole pipeline on one machine (embedded event log by default, or Kafka).</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var defaults = new DemoSettings();
        var kafka = new Option<string?>("--kafka") { Description = "Kafka bootstrap servers (host:port,...); default: the embedded in-process event log." };
        var queries = new Option<int>("--queries") { Description = "Test images replayed as live queries.", DefaultValueFactory = _ => defaults.Queries };
        var rate = new Option<double>("--rate") { Description = "Queries per second replayed (0 = as fast as possible, to see saturation throughput).", DefaultValueFactory = _ => defaults.Rate };
        var leaked = new Option<int>("--leaked-queries") { Description = "Items of the leaked benchmark source also served as queries (should raise alerts).", DefaultValueFactory = _ => defaults.LeakedQueries };
        var trainSize = new Option<int>("--train-size") { Description = "FashionMNIST training images for the model.", DefaultValueFactory = _ => defaults.TrainSize };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => defaults.Epochs };
        var simulate = new Option<int>("--simulate") { Description = "Training examples the Simulator probes individually (every source is probed whole).", DefaultValueFactory = _ => defaults.Simulate };
        var horizon = new Option<int>("--horizon") { Description = "Forward-only simulation horizon K (gradient steps).", DefaultValueFactory = _ => defaults.Horizon };
        var threshold = new Option<double>("--alert-threshold") { Description = "Share of a query's positive source attribution on the flagged source that raises an alert (Scorer:AlertThreshold).", DefaultValueFactory = _ => defaults.AlertThreshold };
        var runDir = new Option<string>("--run-dir") { Description = "Where the trained model is cached.", DefaultValueFactory = _ => defaults.RunDirectory };
        var outDir = new Option<string>("--out") { Description = "Where attributions.arrow and demo.log are written.", DefaultValueFactory = _ => defaults.OutputDirectory };
        var noConsole = new Option<bool>("--no-console") { Description = "Do not serve the web console (and its ledger, SQL store and Flight feed) during the demo." };
        var consolePort = new Option<int>("--console-port") { Description = "Web console port (Arrow Flight takes the next one; 0 picks free ports).", DefaultValueFactory = _ => defaults.ConsolePort };
        var stay = new Option<bool>("--stay") { Description = "Keep the console serving after the demo finished, until Ctrl+C." };
        var seed = new Option<ulong>("--seed") { Description = "Seed for data subsets, training, sources and query order.", DefaultValueFactory = _ => defaults.Seed };

        var command = new Command("demo", "Run the whole product on one machine: train, ingest, simulate probes, attribute live queries, raise contamination alerts.");
        foreach (var o in new Option[] { kafka, queries, rate, leaked, trainSize, epochs, simulate, horizon, threshold, runDir, outDir, seed, noConsole, consolePort, stay })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, token) =>
        {
            var settings = new DemoSettings
            {
                KafkaBootstrap = parse.GetValue(kafka),
                Queries = parse.GetValue(queries),
                Rate = parse.GetValue(rate),
                LeakedQueries = parse.GetValue(leaked),
                TrainSize = parse.GetValue(trainSize),
                Epochs = parse.GetValue(epochs),
                Simulate = parse.GetValue(simulate),
                Horizon = parse.GetValue(horizon),
                AlertThreshold = parse.GetValue(threshold),
                RunDirectory = parse.GetValue(runDir)!,
                OutputDirectory = parse.GetValue(outDir)!,
                Seed = parse.GetValue(seed),
                Console = !parse.GetValue(noConsole),
                ConsolePort = parse.GetValue(consolePort),
                Stay = parse.GetValue(stay),
            };
            return await DemoRunner.RunAsync(settings, token);
        });
        return command;
    }
}
