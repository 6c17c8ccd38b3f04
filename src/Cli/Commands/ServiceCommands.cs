using System.CommandLine;
using Attribution.Cli.Services;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline ingest|simulate|score</c>: one service per process, and <c>./pipeline serve</c>: any of them together
/// in one process. All of them run against a Kafka cluster (the embedded log lives inside one process, which is what
/// <c>./pipeline demo</c> uses). Configuration: defaults, then <c>--config FILE</c> (JSON, the sections of
/// docs/SERVICES.md), then environment variables (<c>Transport__Kafka__BootstrapServers</c>), then the options below,
/// then <c>--set Section:Key=Value</c>.
/// </summary>
internal static class ServiceCommands
{
    public static Command CreateIngest()
    {
        var command = new Command("ingest", "Publish a training run's checkpoints and batch manifests to Kafka (once, or following the directory as a trainer writes it).");
        var common = new CommonOptions(command);
        var ingest = new IngestOptionsCli(command);
        command.SetAction((parse, token) => ServiceHost.RunAsync(ServiceRoles.Ingest, common.Read(parse), ingest.Read(parse), token));
        return command;
    }

    public static Command CreateSimulate()
    {
        var command = new Command("simulate", "Consume checkpoints and batches, run the forward-only simulation and publish influence probes.");
        var common = new CommonOptions(command);
        var simulate = new SimulateOptionsCli(command);
        command.SetAction((parse, token) => ServiceHost.RunAsync(ServiceRoles.Simulator, common.Read(parse), simulate.Read(parse), token));
        return command;
    }

    public static Command CreateScore()
    {
        var command = new Command("score", "Index the probe topic, attribute every live query (one Arrow event per query) and raise contamination alerts.");
        var common = new CommonOptions(command);
        var score = new ScoreOptionsCli(command);
        command.SetAction((parse, token) => ServiceHost.RunAsync(ServiceRoles.Scorer, common.Read(parse), score.Read(parse), token));
        return command;
    }

    public static Command CreateServe()
    {
        var command = new Command("serve", "Run several services in one process against Kafka: ingest, simulator, scorer (default: all three).");
        var roles = new Argument<string[]>("services")
        {
            Description = "Any of: ingest, simulator, scorer (default: all three).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        command.Arguments.Add(roles);
        var common = new CommonOptions(command);
        var ingest = new IngestOptionsCli(command);
        var simulate = new SimulateOptionsCli(command);
        var score = new ScoreOptionsCli(command);
        command.SetAction((parse, token) =>
        {
            if (!ServiceRolesParser.TryParse(parse.GetValue(roles) ?? [], out var selected, out var error))
            {
                Console.Error.WriteLine($"error: {error}");
                return Task.FromResult(2);
            }

            var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            foreach (var part in new[] { ingest.Read(parse), simulate.Read(parse), score.Read(parse) })
            {
                foreach (var (k, v) in part)
                {
                    settings[k] = v;
                }
            }

            return ServiceHost.RunAsync(selected, common.Read(parse), settings, token);
        });
        return command;
    }

    /// <summary>Options every service command takes.</summary>
    private sealed class CommonOptions
    {
        private readonly Option<string?> _kafka = new("--kafka") { Description = "Kafka bootstrap servers (host:port,...). Same as Transport__Kafka__BootstrapServers." };
        private readonly Option<string?> _rabbit = new("--rabbitmq") { Description = "RabbitMQ host[:port] for alerts and control events (default: in-process bus)." };
        private readonly Option<string?> _config = new("--config") { Description = "JSON configuration file with the Transport, Ingest, Simulator and Scorer sections (docs/SERVICES.md)." };
        private readonly Option<string[]> _set = new("--set") { Description = "Any setting as Section:Key=Value (repeatable), e.g. --set Scorer:MaxBatch=32.", AllowMultipleArgumentsPerToken = false };
        private readonly Option<int?> _health = new("--health-port") { Description = "Serve GET /health (JSON; 200 healthy, 503 otherwise) on this port." };
        private readonly Option<double> _status = new("--status-seconds") { Description = "Log the services' counters every N seconds (0 = never).", DefaultValueFactory = _ => 10 };
        private readonly Option<bool> _verbose = new("--verbose") { Description = "Debug-level logs." };

        public CommonOptions(Command command)
        {
            foreach (var o in new Option[] { _kafka, _rabbit, _config, _set, _health, _status, _verbose })
            {
                command.Options.Add(o);
            }
        }

        public ServiceHostSettings Read(ParseResult parse) => new()
        {
            KafkaBootstrap = parse.GetValue(_kafka),
            RabbitMq = parse.GetValue(_rabbit),
            ConfigFile = parse.GetValue(_config),
            Overrides = parse.GetValue(_set) ?? [],
            HealthPort = parse.GetValue(_health),
            StatusSeconds = parse.GetValue(_status),
            Verbose = parse.GetValue(_verbose),
        };
    }

    private sealed class IngestOptionsCli
    {
        private readonly Option<string?> _run = new("--run") { Description = "Run directory to publish (Ingest:RunDirectory): ./pipeline train output, or checkpoints/ + batches/ written by a trainer." };
        private readonly Option<string?> _runId = new("--run-id") { Description = "Run id (default: the directory's name)." };
        private readonly Option<bool> _follow = new("--follow") { Description = "Keep watching the directory for new checkpoints (default: publish what is there and exit)." };
        private readonly Option<int?> _sources = new("--sources") { Description = "Number of seeded data sources when the run has no sources.json (Ingest:SourceCount)." };

        public IngestOptionsCli(Command command)
        {
            foreach (var o in new Option[] { _run, _runId, _follow, _sources })
            {
                command.Options.Add(o);
            }
        }

        public Dictionary<string, string?> Read(ParseResult parse)
        {
            var d = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            Put(d, "Ingest:RunDirectory", parse.GetValue(_run) is { } run ? Path.GetFullPath(run) : null);
            Put(d, "Ingest:RunId", parse.GetValue(_runId));
            if (parse.GetValue(_follow))
            {
                d["Ingest:Mode"] = "follow";
            }

            Put(d, "Ingest:SourceCount", parse.GetValue(_sources)?.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return d;
        }
    }

    private sealed class SimulateOptionsCli
    {
        private readonly Option<int?> _horizon = new("--horizon") { Description = "Simulation horizon K in gradient steps (Simulator:Horizon; default: 4 epochs of mini-batches for an MLP's spectral propagation, 50 steps for a transformer's trajectory). Not with --horizon-epochs." };
        private readonly Option<double?> _horizonEpochs = new("--horizon-epochs") { Description = "Simulation horizon in epochs of the shared mini-batches, K = ceil(E·n/batch) (Simulator:HorizonEpochs). Not with --horizon." };
        private readonly Option<int?> _maxExamples = new("--max-examples") { Description = "Probe only the first N examples by id (Simulator:MaxExamples; every source is still probed whole)." };
        private readonly Option<string?> _precision = new("--precision") { Description = "Example probe precision: f16 (default) or f32 (Simulator:Precision)." };

        public SimulateOptionsCli(Command command)
        {
            foreach (var o in new Option[] { _horizon, _horizonEpochs, _maxExamples, _precision })
            {
                command.Options.Add(o);
            }
        }

        public Dictionary<string, string?> Read(ParseResult parse)
        {
            var d = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            Put(d, "Simulator:Horizon", parse.GetValue(_horizon)?.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Put(d, "Simulator:HorizonEpochs", parse.GetValue(_horizonEpochs)?.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Put(d, "Simulator:MaxExamples", parse.GetValue(_maxExamples)?.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Put(d, "Simulator:Precision", parse.GetValue(_precision));
            return d;
        }
    }

    private sealed class ScoreOptionsCli
    {
        private readonly Option<string?> _runId = new("--scorer-run-id") { Description = "Only use probe sets of this run (Scorer:RunId; default: the newest complete set)." };
        private readonly Option<int?> _topK = new("--top-k") { Description = "Training examples per attribution (Scorer:TopK, default 10)." };
        private readonly Option<long[]> _flagSource = new("--flag-source") { Description = "A source id whose share of a query's support raises an alert (repeatable; Scorer:FlaggedSources)." };
        private readonly Option<long[]> _flagExample = new("--flag-example") { Description = "A training example id to watch the same way (repeatable; Scorer:FlaggedExamples)." };
        private readonly Option<double?> _threshold = new("--alert-threshold") { Description = "Share of positive source attribution on flagged sources that raises an alert (Scorer:AlertThreshold, default 0.5); flagged examples alert by relative-influence lead (Scorer:ExampleLeadRatio)." };

        public ScoreOptionsCli(Command command)
        {
            foreach (var o in new Option[] { _runId, _topK, _flagSource, _flagExample, _threshold })
            {
                command.Options.Add(o);
            }
        }

        public Dictionary<string, string?> Read(ParseResult parse)
        {
            var inv = System.Globalization.CultureInfo.InvariantCulture;
            var d = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            Put(d, "Scorer:RunId", parse.GetValue(_runId));
            Put(d, "Scorer:TopK", parse.GetValue(_topK)?.ToString(inv));
            Put(d, "Scorer:AlertThreshold", parse.GetValue(_threshold)?.ToString(inv));
            var sources = parse.GetValue(_flagSource) ?? [];
            for (int i = 0; i < sources.Length; i++)
            {
                d[$"Scorer:FlaggedSources:{i}"] = sources[i].ToString(inv);
            }

            var examples = parse.GetValue(_flagExample) ?? [];
            for (int i = 0; i < examples.Length; i++)
            {
                d[$"Scorer:FlaggedExamples:{i}"] = examples[i].ToString(inv);
            }

            return d;
        }
    }

    private static void Put(Dictionary<string, string?> d, string key, string? value)
    {
        if (value is not null)
        {
            d[key] = value;
        }
    }
}
