using System.Diagnostics;
using System.Globalization;
using Attribution.Attribution.Contamination;
using Attribution.Contracts;
using Attribution.Downstream;
using Attribution.Downstream.Web;
using Attribution.Ingest;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Attribution.Transport.Kafka;
using Attribution.Transport.Messages;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Serilog;
using Serilog.Extensions.Logging;
using Spectre.Console;

namespace Attribution.Cli.Demo;

/// <summary>
/// <c>./pipeline demo</c>: the whole product in one process. Trains (or reuses) the FashionMNIST MLP, runs Ingest,
/// Simulator and Scorer as hosted services over the embedded event log (or a Kafka cluster), replays test images as
/// live queries, shows throughput, latency and top sources live, then writes every attribution event to an Arrow file
/// and explains a few of them.
/// </summary>
internal static class DemoRunner
{
    private static IReadOnlyList<string> ClassNames => Engine.Data.FashionMnist.ClassNames;

    public static async Task<int> RunAsync(DemoSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Validate() is { } error)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(error)}[/]");
            return 2;
        }

        AnsiConsole.Write(new Rule("[bold]Training-data attribution on live traffic[/]").LeftJustified());
        var outDir = Path.GetFullPath(settings.OutputDirectory);
        Directory.CreateDirectory(outDir);
        if (settings.KafkaBootstrap is { } bootstrap && await ProvisionKafkaAsync(bootstrap, settings.Console, outDir, cancellationToken) is { } failed)
        {
            return failed;
        }

        var run = DemoRun.EnsureTrained(settings);
        var runId = $"demo-{DateTime.UtcNow:yyyyMMddHHmmss}";
        using var host = BuildHost(settings, run, runId, outDir);
        var total = Stopwatch.StartNew();
        await host.StartAsync(cancellationToken);
        _ = host.Services.GetRequiredService<SimulatorInstruments>();
        RunningConsole? console = null;
        try
        {
            if (settings.Console)
            {
                console = await DemoConsole.StartAsync(settings, host, run.Directory, outDir, cancellationToken);
                AnsiConsole.MarkupLine($"Web console: [bold link]{console.WebUrl}[/] (live attributions, source ledger, alerts, SQL); Arrow Flight: {console.FlightUrl}");
            }

            // A console whose background service fails (e.g. its ledger topic is missing) ends the demo: exit 2 with why.
            return await DemoConsole.GuardAsync(console?.Failed, async token =>
            {
                var simulator = host.Services.GetRequiredService<SimulatorWorker>();
                var scorer = host.Services.GetRequiredService<ScorerWorker>();
                var log = host.Services.GetRequiredService<IEventLog>();
                var producer = host.Services.GetRequiredService<IEventProducer>();
                var alerts = host.Services.GetRequiredService<DemoAlertSink>();

                var step = run.Manifest.Metrics.Steps;
                var simulated = Math.Min(settings.Simulate, run.Manifest.Recipe.Data.TrainIds.Length);
                await WaitForProbesAsync(simulator, scorer, settings.Method, runId, step, simulated, token);

                var flagged = run.LeakedExampleIds.ToHashSet();
                var policies = settings.CalibrationQueries > 0 ? CalibrateAlerts(run, settings, scorer, $"{runId}@{step}", flagged) : null;
                var queries = BuildQueries(run, settings, runId, step);
                var results = await ReplayAsync(log, producer, scorer, alerts, run, queries, settings.Rate, token);
                if (policies is not null)
                {
                    // The served queries assessed again offline, under every fitted policy: which evidence catches which item.
                    var model = scorer.Index.Scorer!;
                    var items = scorer.Index.Flagged;
                    var allSelf = DemoAlertReport.AllSelfInfluence(model, run);
                    var rows = DemoAlertReport.Measure(model, scorer.Alerts, flagged, [.. queries.Select(q => new AlertQuery(q.Query, q.LeakedExampleId, "served"))], items, allSelf);
                    var evidencePath = Path.Combine(outDir, "alert-evidence.tsv");
                    foreach (var line in DemoAlertReport.Summarize(rows, policies, evidencePath))
                    {
                        AnsiConsole.MarkupLine(Markup.Escape(line));
                    }

                    foreach (var line in DemoAlertReport.Altered(model, flagged, [.. rows.Where(r => r.Leaked).Select(r => r.Query)], policies, 28, 0.05, settings.Seed + 13, items, allSelf))
                    {
                        AnsiConsole.MarkupLine(Markup.Escape(line));
                    }

                    if (items is not null)
                    {
                        AnsiConsole.MarkupLine(Markup.Escape(DemoAlertReport.InputMatchCost(items.Inputs, [.. rows.Select(r => r.Query)])));
                    }

                    AnsiConsole.MarkupLine($"Per-query evidence: {Markup.Escape(evidencePath)}.");
                }

                await ShowPoisonHandlingAsync(log, producer, scorer, runId, step, token);
                var arrowPath = Path.Combine(outDir, "attributions.arrow");
                WriteArrow(arrowPath, results.Values.OrderBy(r => r.QueryId, StringComparer.Ordinal).ToList());
                Explain(run, queries, results, alerts, arrowPath, total.Elapsed, settings);
                if (console is not null)
                {
                    var where = settings.Stay ? $"--url {console.WebUrl.ToString().TrimEnd('/')}" : $"--db {Path.GetRelativePath(Environment.CurrentDirectory, Path.Combine(outDir, "attributions.duckdb"))}";
                    AnsiConsole.MarkupLine($"SQL over this run: [bold]./pipeline query {Markup.Escape(where)} \"SELECT source_name, sum(score) FROM attribution_sources GROUP BY ALL ORDER BY 2 DESC\"[/]");
                    if (settings.Stay)
                    {
                        AnsiConsole.MarkupLine($"The console stays at [bold]{console.WebUrl}[/]; Ctrl+C ends the demo.");
                        await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
                    }
                }

                return results.Count == queries.Count ? 0 : 1;
            }, Console.Error, cancellationToken);
        }
        finally
        {
            if (console is not null)
            {
                await console.DisposeAsync();
            }

            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await host.StopAsync(stop.Token);
        }
    }

    /// <summary>
    /// Before anything is trained or started: the Kafka topics of the whole pipeline, created or found fitting
    /// (<see cref="TopicProvisioner"/>). An operator error (topics to create, a librdkafka that does not load, a cluster
    /// out of reach) is one line on the console and exit code 2 (1 when it may pass: a timeout); the full exception goes
    /// to demo.log.
    /// </summary>
    internal static async Task<int?> ProvisionKafkaAsync(string bootstrap, bool console, string outDir, CancellationToken cancellationToken)
    {
        using var serilog = new Serilog.LoggerConfiguration().MinimumLevel.Information()
            .WriteTo.Sink(new PlainFileSink(Path.Combine(outDir, "demo.log"))).CreateLogger();
        using var loggers = new SerilogLoggerFactory(serilog);
        var logger = loggers.CreateLogger("Attribution.Cli.Demo");
        try
        {
            await using var log = new KafkaEventLog(new KafkaOptions { BootstrapServers = bootstrap, ClientId = "pipeline-demo" }, loggers);
            // The demo runs every service with its default options: these are the topics they will ask for.
            await new TopicProvisioner(log, logger).EnsureAsync(
                [.. new IngestOptions().RequiredTopics(), .. new SimulatorOptions().RequiredTopics(), .. new ScorerOptions().RequiredTopics(),
                 .. console ? new DownstreamOptions().RequiredTopics() : []], cancellationToken);
            return null;
        }
        catch (Exception e) when (e is TopicProvisioningException or EventLogException or ArgumentException)
        {
            DemoLog.KafkaNotReady(logger, bootstrap, e);
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return e is EventLogException { IsTransient: true } ? 1 : 2;
        }
    }

    private static IHost BuildHost(DemoSettings settings, DemoRun run, string runId, string outDir)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        var kafka = settings.KafkaBootstrap is not null;
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Transport:Kind"] = kafka ? "kafka" : "embedded",
            ["Transport:Kafka:BootstrapServers"] = settings.KafkaBootstrap,
            ["Transport:Kafka:ClientId"] = "pipeline-demo",
            // Interactive traffic: a broker should answer a fetch as soon as records arrive, not after half a second.
            ["Transport:Kafka:FetchWaitMaxMs"] = kafka ? "10" : null,
            ["Ingest:RunDirectory"] = run.Directory,
            ["Ingest:RunId"] = runId,
            ["Ingest:Mode"] = "once",
            ["Simulator:MaxExamples"] = settings.Simulate.ToString(CultureInfo.InvariantCulture),
            ["Simulator:Horizon"] = settings.Horizon?.ToString(CultureInfo.InvariantCulture),
            ["Simulator:HorizonEpochs"] = settings.HorizonEpochs?.ToString(CultureInfo.InvariantCulture),
            ["Simulator:Method"] = settings.ServedMethod,
            ["Scorer:Method"] = settings.ServedMethod,
            ["Simulator:GroupId"] = $"simulator-{runId}",
            ["Scorer:GroupId"] = $"scorer-{runId}",
            ["Scorer:RunId"] = runId,
            ["Scorer:AlertThreshold"] = settings.AlertThreshold.ToString(CultureInfo.InvariantCulture),
        });
        if (settings.CalibrationQueries == 0)
        {
            builder.Configuration.AddInMemoryCollection([new("Scorer:FlaggedSources:0", DemoRun.LeakedSourceId.ToString(CultureInfo.InvariantCulture))]);
        }
        else
        {
            // The source-share rule (a fixed 50 %) stays off: the calibrated policy is the one rule whose threshold comes
            // from the calibration split (beside it, the source share raised 4 false alerts on 300 clean images, stop 21).
            // The image path of the two-stage policy: attribution evidence, the self-influence match and the input match
            // with the flagged items (Scorer:FlaggedExamples below: the Scorer reads their images from the run's batches
            // and their self-influence from its readout when the probe set loads); until the calibration before the replay
            // fits the weights (held-back leaked items vs clean images), one feature: the flagged items' share of the
            // query's positive relative influence.
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Scorer:ExampleLeadRatio"] = "0",
                ["Scorer:Contamination:Evidence"] = "input+attribution+self",
                ["Scorer:Contamination:Bias"] = "0",
            }.Concat(ContaminationFeatures.Names.Select((name, k) => new KeyValuePair<string, string?>($"Scorer:Contamination:Weights:{k}", name == "attr_flagged_share" ? "1" : "0"))));
        }

        // The leaked benchmark's items are flagged one by one too, so an answer resting on a few of them is caught.
        builder.Configuration.AddInMemoryCollection(run.LeakedExampleIds.Select((id, i) =>
            new KeyValuePair<string, string?>($"Scorer:FlaggedExamples:{i}", id.ToString(CultureInfo.InvariantCulture))));

        // Service logs go to a file beside the outputs so the live view stays readable; errors also reach the console.
        var serilog = new Serilog.LoggerConfiguration()
            .MinimumLevel.Information()
            .WriteTo.Logger(l => l.MinimumLevel.Error().WriteTo.Console(standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose))
            .WriteTo.Sink(new PlainFileSink(Path.Combine(outDir, "demo.log")))
            .CreateLogger();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new SerilogLoggerProvider(serilog, dispose: true));
        builder.Services.AddSingleton<DemoAlertSink>();
        builder.Services.AddSingleton<AlertFeed>();
        builder.Services.AddEventLog(builder.Configuration);
        builder.Services.AddAlertBus(builder.Configuration, x =>
        {
            x.AddConsumer<DemoAlertMonitor>();
            x.AddConsumer<AlertFeedConsumer>();
        });
        builder.Services.AddIngest(builder.Configuration);
        builder.Services.AddSimulator(builder.Configuration);
        builder.Services.AddScorer(builder.Configuration);
        return builder.Build();
    }

    private static async Task WaitForProbesAsync(SimulatorWorker simulator, ScorerWorker scorer, string method, string runId, long step, int examples, CancellationToken cancellationToken)
    {
        var complete = simulator.WhenProbeSetCompleteAsync(runId, step);
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask($"Simulator: {Markup.Escape(method)} probes for {examples:N0} examples + every source", maxValue: examples);
                while (!complete.IsCompleted)
                {
                    task.Value = Math.Min(examples, simulator.ProbesPublished);
                    await Task.WhenAny(complete, Task.Delay(250, cancellationToken));
                }

                task.Value = examples;
                var index = ctx.AddTask("Scorer: loading the probe index", maxValue: 1);
                await scorer.Index.Ready.WaitAsync(TimeSpan.FromMinutes(5), cancellationToken);
                while (scorer.Index.Scorer is not { } model || model.Version != $"{runId}@{step}")
                {
                    if (scorer.Index.LastError is { } indexError && indexError.Contains(runId, StringComparison.Ordinal))
                    {
                        throw new InvalidOperationException($"the Scorer rejected the probe set: {indexError}");
                    }

                    await Task.Delay(100, cancellationToken);
                }

                index.Value = 1;
            });
        var done = await complete;
        AnsiConsole.MarkupLine($"Probe set complete: [bold]{done.ExampleProbes:N0}[/] example probes (a source scores the sum of its examples) for run {Markup.Escape(runId)} at step {step}.");
    }

    /// <summary>
    /// The alert policy fitted on a calibration split, never on the queries: clean test images that are not among the
    /// queries, and the leaked benchmark items that are not served as queries (the leaked source holds more items than the
    /// demo replays); the weights by logistic fit, the threshold for at most 1 % false alerts on the clean ones
    /// (<see cref="ContaminationCalibration.ThresholdForFalseAlertRate"/>). Four policies are fitted on the same evidence:
    /// attribution evidence alone, attribution with the self-influence match (the query's score on a flagged item against
    /// the item's own), attribution with the input match against the flagged items' images (the image analogue of the
    /// span index: a copy of a flagged training image), and all three; the last is served. The flagged items are the
    /// Scorer's own (<see cref="ProbeIndex.Flagged"/>, from Scorer:FlaggedExamples). Without held-back leaked items only
    /// the threshold is calibrated. Returns the policies to compare on the served queries.
    /// </summary>
    private static (string Name, AlertPolicy Policy)[] CalibrateAlerts(DemoRun run, DemoSettings settings, ScorerWorker scorer, string version, HashSet<long> flagged)
    {
        var norm = run.Manifest.Recipe.Data.Normalization;
        var ids = run.Manifest.Recipe.Data.TestIds.Skip(settings.Queries).Take(settings.CalibrationQueries).ToArray();
        var images = run.Data.Test.Select(ids, norm);
        var clean = Enumerable.Range(0, images.Count).Select(i => new AlertQuery(new ModelQuery($"cal-{i:D5}", version, images.Inputs.AsSpan(i * images.Features, images.Features).ToArray(), null, DateTimeOffset.UtcNow), null, "calibration")).ToList();
        var heldBack = run.LeakedExampleIds.Skip(settings.LeakedQueries).Select(id => (int)id).ToArray();
        var leakedImages = run.Data.Train.Select(heldBack, norm);
        var leaked = Enumerable.Range(0, leakedImages.Count).Select(i => new AlertQuery(new ModelQuery($"cal-leak-{i:D3}", version, leakedImages.Inputs.AsSpan(i * leakedImages.Features, leakedImages.Features).ToArray(), null, DateTimeOffset.UtcNow), heldBack[i], "calibration")).ToList();

        // The flagged training items as the Scorer loaded them from configuration (Scorer:FlaggedExamples: their images
        // from the run's batches, their self-influence from the live readout), matched per query.
        var model = scorer.Index.Scorer!;
        var items = scorer.Index.Flagged is { } f && f.Version == model.Version ? f : throw new InvalidOperationException($"the Scorer has no flagged items for {model.Version}; see demo.log (Scorer:FlaggedExamples).");
        AnsiConsole.MarkupLine($"Flagged items loaded by the Scorer from Scorer:FlaggedExamples: {items.Inputs.Count} images, {items.Measured} with their self-influence.");
        var cleanRows = DemoAlertReport.Measure(model, scorer.Alerts, flagged, clean, items);
        var cleanEvidence = cleanRows.Select(r => (r.Span, r.Attribution)).ToList();
        AlertPolicy Reading(ContaminationEvidenceKind evidence) => scorer.Alerts.With(scorer.Alerts.Calibrated.Options with
        {
            Evidence = evidence,
            Weights = [.. scorer.Alerts.Calibrated.Options.Weights.Select((w, k) => ContaminationFeatures.Uses(evidence, k) ? w : 0)],
        });
        var rate = 0.01;
        (string, AlertPolicy)[] policies;
        double[] scores;
        if (leaked.Count > 0)
        {
            var leakedEvidence = DemoAlertReport.Measure(model, scorer.Alerts, flagged, leaked, items).Select(r => (r.Span, r.Attribution)).ToList();
            var fitted = new List<(string Name, AlertPolicy Policy)>();
            foreach (var (name, evidence) in new[]
            {
                ("attribution only", ContaminationEvidenceKind.Attribution),
                ("self-influence only", ContaminationEvidenceKind.SelfInfluence),
                ("attribution + self-influence", ContaminationEvidenceKind.Attribution | ContaminationEvidenceKind.SelfInfluence),
                ("attribution + input match", ContaminationEvidenceKind.Attribution | ContaminationEvidenceKind.Input),
                ("attribution + self-influence + input match (served)", ContaminationEvidenceKind.Attribution | ContaminationEvidenceKind.SelfInfluence | ContaminationEvidenceKind.Input),
            })
            {
                var (p, _, l) = AlertCalibration.Fit(Reading(evidence), cleanEvidence, leakedEvidence, rate);
                AnsiConsole.MarkupLine(Markup.Escape($"Alert policy ({name}) fitted on {leaked.Count} held-back leaked items (never served) and {clean.Count:N0} clean test images held out from the queries: weights ({string.Join(", ", p.Calibrated.Options.Weights.Select(w => w.ToString("G3", CultureInfo.InvariantCulture)))}), bias {p.Calibrated.Options.Bias.ToString("G3", CultureInfo.InvariantCulture)}, threshold {p.Calibrated.Options.Threshold.ToString("G4", CultureInfo.InvariantCulture)}; {l.Count(x => x > p.Calibrated.Options.Threshold)} of the held-back leaked items above the threshold."));
                fitted.Add((name, p));
            }

            policies = [.. fitted];
            scores = [.. cleanEvidence.Select(e => policies[^1].Item2.Calibrated.Score(e.Span, e.Attribution))];
        }
        else
        {
            var calibrated = scorer.Alerts.With(ContaminationCalibration.Calibrate(scorer.Alerts.Calibrated.Options, cleanEvidence, rate));
            scores = [.. cleanEvidence.Select(e => calibrated.Calibrated.Score(e.Span, e.Attribution))];
            policies = [("stated weights, calibrated threshold (served)", calibrated)];
        }

        var served = policies[^1].Item2;
        scorer.UseAlertPolicy(served);
        var enough = ContaminationCalibration.MinimumCleanQueries(rate);
        AnsiConsole.MarkupLine($"Alert threshold [bold]{served.Calibrated.Options.Threshold:G4}[/] chosen on {clean.Count:N0} clean test images held out from the queries ({scores.Count(x => x > served.Calibrated.Options.Threshold)} of them above it): " +
            (clean.Count >= enough
                ? $"a new clean query alerts with probability at most 1 %, with confidence {ContaminationCalibration.DefaultConfidence:P0} over the calibration draw."
                : $"[yellow]fewer than the {enough} clean images a 1 % bound with confidence {ContaminationCalibration.DefaultConfidence:P0} needs: the threshold is the largest clean score and the bound does not hold[/]."));
        return policies;
    }

    private sealed record DemoQuery(ModelQuery Query, int Label, long? LeakedExampleId);

    private static List<DemoQuery> BuildQueries(DemoRun run, DemoSettings settings, string runId, long step)
    {
        var norm = run.Manifest.Recipe.Data.Normalization;
        var testIds = run.Manifest.Recipe.Data.TestIds.Take(settings.Queries).ToArray();
        var test = run.Data.Test.Select(testIds, norm);
        var version = $"{runId}@{step}";
        var list = new List<DemoQuery>(settings.Queries + settings.LeakedQueries);
        for (int i = 0; i < test.Count; i++)
        {
            list.Add(new DemoQuery(new ModelQuery($"q-{i:D5}", version, test.Inputs.AsSpan(i * test.Features, test.Features).ToArray(), null, DateTimeOffset.UtcNow), test.Labels[i], null));
        }

        // Items of the leaked evaluation suite served as queries: attribution should point straight back at them.
        var leakedIds = run.LeakedExampleIds.Take(settings.LeakedQueries).Select(id => (int)id).ToArray();
        var leaked = run.Data.Train.Select(leakedIds, norm);
        for (int i = 0; i < leaked.Count; i++)
        {
            list.Add(new DemoQuery(new ModelQuery($"leak-{i:D3}", version, leaked.Inputs.AsSpan(i * leaked.Features, leaked.Features).ToArray(), null, DateTimeOffset.UtcNow), leaked.Labels[i], leakedIds[i]));
        }

        // Interleave the leaked items with ordinary traffic (seeded), as they would arrive in production.
        new Engine.Rng(settings.Seed + 11).Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list));
        return list;
    }

    private static async Task<Dictionary<string, AttributionResult>> ReplayAsync(IEventLog log, IEventProducer producer, ScorerWorker scorer, DemoAlertSink alerts,
        DemoRun run, List<DemoQuery> queries, double rate, CancellationToken cancellationToken)
    {
        var results = new Dictionary<string, AttributionResult>(StringComparer.Ordinal);
        var sourceMass = new Dictionary<long, double>();
        using var readerStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var reader = new AttributionReader(log);
        var readTask = Task.Run(async () =>
        {
            await foreach (var r in reader.ReadAsync(readerStop.Token))
            {
                lock (results)
                {
                    results[r.QueryId] = r;
                    for (int i = 0; i < r.SourceIds.Count; i++)
                    {
                        sourceMass[r.SourceIds[i]] = sourceMass.GetValueOrDefault(r.SourceIds[i]) + Math.Max(0, r.SourceScores[i]);
                    }
                }

                if (results.Count >= queries.Count)
                {
                    break;
                }
            }
        }, CancellationToken.None);

        var clock = Stopwatch.StartNew();
        var sending = Task.Run(async () =>
        {
            // Bounded in flight and paced, like a serving fleet publishing its traffic (0 = as fast as possible).
            using var window = new SemaphoreSlim(64);
            var pending = new List<Task>();
            var pace = Stopwatch.StartNew();
            for (int i = 0; i < queries.Count; i++)
            {
                var q = queries[i];
                if (rate > 0 && TimeSpan.FromSeconds(i / rate) - pace.Elapsed is { Ticks: > 0 } ahead)
                {
                    await Task.Delay(ahead, cancellationToken);
                }

                await window.WaitAsync(cancellationToken);
                var query = q.Query with { Timestamp = DateTimeOffset.UtcNow };
                pending.Add(producer.ProduceQueryAsync(query, cancellationToken)
                    .ContinueWith(_ => window.Release(), TaskScheduler.Default));
            }

            await Task.WhenAll(pending);
        }, cancellationToken);

        var table = new Table().Border(TableBorder.Rounded).AddColumns("Live traffic", "");
        await AnsiConsole.Live(table).AutoClear(false).StartAsync(async ctx =>
        {
            while (true)
            {
                int done;
                List<(long Id, double Mass)> top;
                lock (results)
                {
                    done = results.Count;
                    top = sourceMass.OrderByDescending(kv => kv.Value).Take(3).Select(kv => (kv.Key, kv.Value)).ToList();
                }

                var m = scorer.Metrics;
                var seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-3);
                table.Rows.Clear();
                table.AddRow("queries attributed", $"{done:N0} / {queries.Count:N0}");
                table.AddRow("throughput", $"{done / seconds:N0} queries/s");
                table.AddRow("latency p50 / p99 (query produced → attribution published)", $"{m.LatencyP50Micros / 1000.0:F2} ms / {m.LatencyP99Micros / 1000.0:F2} ms");
                table.AddRow("mean micro-batch", $"{m.MeanBatchSize:F1} queries");
                table.AddRow("dead-lettered (poison input)", $"{m.QueriesRejected:N0}");
                table.AddRow("duplicates skipped (id already attributed)", $"{m.DuplicatesSkipped:N0}");
                table.AddRow("contamination alerts", $"{alerts.Alerts.Count:N0}");
                table.AddRow("top sources (positive attribution mass)", string.Join(", ", top.Select(t => $"{Markup.Escape(run.SourceName(t.Id))} {t.Mass:F2}")));
                ctx.Refresh();
                if (done + m.QueriesRejected >= queries.Count || clock.Elapsed > TimeSpan.FromMinutes(5))
                {
                    break;
                }

                await Task.WhenAny(readTask, Task.Delay(200, cancellationToken));
            }
        });
        await sending;
        await readerStop.CancelAsync();
        await readTask;
        // Alerts travel over the bus after the attribution is published: give the last ones a moment to land.
        var settle = Stopwatch.StartNew();
        while (alerts.Alerts.Count < scorer.Metrics.AlertsRaised && settle.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(50, cancellationToken);
        }

        AnsiConsole.MarkupLine($"Attributed [bold]{results.Count:N0}[/] queries in {clock.Elapsed.TotalSeconds:F1} s ({results.Count / clock.Elapsed.TotalSeconds:N0} queries/s); latency p50 {scorer.Metrics.LatencyP50Micros / 1000.0:F2} ms, p99 {scorer.Metrics.LatencyP99Micros / 1000.0:F2} ms.");
        return results;
    }

    /// <summary>Sends malformed queries the way a buggy client would, and shows where they end up.</summary>
    private static async Task ShowPoisonHandlingAsync(IEventLog log, IEventProducer producer, ScorerWorker scorer, string runId, long step, CancellationToken cancellationToken)
    {
        var rejectedBefore = scorer.Metrics.QueriesRejected;
        var version = $"{runId}@{step}";
        var nan = new float[784];
        nan[300] = float.NaN;
        var poison = new (string Key, byte[] Value)[]
        {
            ("poison-nan", EventCodecs.Queries.Encode(new ModelQuery("poison-nan", version, nan, null, DateTimeOffset.UtcNow))),
            ("poison-width", EventCodecs.Queries.Encode(new ModelQuery("poison-width", version, new float[100], null, DateTimeOffset.UtcNow))),
            ("poison-bytes", "this is not an Arrow stream"u8.ToArray()),
        };
        foreach (var (key, value) in poison)
        {
            await producer.ProduceAsync(Topics.Queries, EventMessage.Create(key, value), cancellationToken);
        }

        var wait = Stopwatch.StartNew();
        while (scorer.Metrics.QueriesRejected - rejectedBefore < poison.Length && wait.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(50, cancellationToken);
        }

        var found = await DemoDeadLetters.CollectAsync(log, poison.Select(p => p.Key).ToArray(), TimeSpan.FromSeconds(10), cancellationToken);
        DemoDeadLetters.Show("Poison queries: dead-lettered with their error and original bytes, the stream went on", found, 110);
    }

    private static void WriteArrow(string path, IReadOnlyList<AttributionResult> results)
    {
        var tmp = path + ".tmp";
        File.WriteAllBytes(tmp, EventCodecs.Attributions.EncodeBatch(results));
        File.Move(tmp, path, overwrite: true);
    }

    private static void Explain(DemoRun run, List<DemoQuery> queries, Dictionary<string, AttributionResult> results,
        DemoAlertSink alerts, string arrowPath, TimeSpan elapsed, DemoSettings settings)
    {
        var trainLabels = run.Data.Train.Labels;
        var byId = queries.ToDictionary(q => q.Query.QueryId, StringComparer.Ordinal);
        var shown = queries.Where(q => q.LeakedExampleId is null).Take(3).Concat(queries.Where(q => q.LeakedExampleId is not null).Take(1));
        foreach (var q in shown)
        {
            if (!results.TryGetValue(q.Query.QueryId, out var r))
            {
                continue;
            }

            var title = q.LeakedExampleId is { } leakedId
                ? $"{q.Query.QueryId}: a leaked benchmark item (training example #{leakedId}), true label {ClassNames[q.Label]}"
                : $"{q.Query.QueryId}: test image, true label {ClassNames[q.Label]}";
            var t = new Table().Border(TableBorder.Simple).Title(Markup.Escape(title)).AddColumns("rank", "training example", "its label", "its source", "score");
            for (int i = 0; i < Math.Min(5, r.ExampleIds.Count); i++)
            {
                var id = r.ExampleIds[i];
                t.AddRow((i + 1).ToString(CultureInfo.InvariantCulture), $"#{id}", ClassNames[trainLabels[id]], Markup.Escape(run.SourceName(SourceOf(run, id))), r.Scores[i].ToString("E2", CultureInfo.InvariantCulture));
            }

            var topSources = Enumerable.Range(0, r.SourceIds.Count).OrderByDescending(i => r.SourceScores[i]).Take(3)
                .Select(i => $"{run.SourceName(r.SourceIds[i])} {r.SourceScores[i]:E2}");
            t.Caption($"top sources: {Markup.Escape(string.Join(", ", topSources))}");
            AnsiConsole.Write(t);
        }

        var leakedQueries = queries.Count(q => q.LeakedExampleId is not null);
        var byQuery = alerts.Alerts.GroupBy(a => a.QueryId, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var caught = queries.Count(q => q.LeakedExampleId is not null && byQuery.ContainsKey(q.Query.QueryId));
        var ownCopy = queries.Count(q => q.LeakedExampleId is { } own && byQuery.TryGetValue(q.Query.QueryId, out var a) && a.FlaggedExampleIds.Contains(own));
        var falseAlarms = byQuery.Keys.Count(id => byId.TryGetValue(id, out var q) && q.LeakedExampleId is null);
        AnsiConsole.MarkupLine($"Contamination alerts on the flagged benchmark '{Markup.Escape(run.SourceName(DemoRun.LeakedSourceId))}' ({settings.LeakedExamples:N0} of {settings.TrainSize:N0} training examples): " +
            $"[bold]{byQuery.Count}[/] alerts ({byQuery.Values.Count(a => a.Rule == AlertRule.SourceShare)} because the source carried at least {settings.AlertThreshold:P0} of the positive source attribution, " +
            $"{byQuery.Values.Count(a => a.Rule == AlertRule.ExampleLead)} because the training example the answer aligns with most specifically, by relative influence, is a flagged one, " +
            $"{byQuery.Values.Count(a => a.Rule == AlertRule.Calibrated)} by the calibrated two-stage score). " +
            $"[bold]{caught} of the {leakedQueries}[/] leaked items served as queries were caught ({ownCopy} pointing at the item's own training copy); [bold]{falseAlarms}[/] alerts on the {queries.Count - leakedQueries:N0} ordinary test images.");
        AnsiConsole.MarkupLine($"Wrote {results.Count:N0} attribution events to [bold]{Markup.Escape(arrowPath)}[/] (Arrow IPC stream; inspect it with ./pipeline arrow inspect {Markup.Escape(Path.GetRelativePath(Environment.CurrentDirectory, arrowPath))}).");
        AnsiConsole.MarkupLine($"[grey]Demo finished in {elapsed.TotalSeconds:F0} s; service logs in {Markup.Escape(Path.Combine(Path.GetDirectoryName(arrowPath)!, "demo.log"))}.[/]");
    }

    private static long SourceOf(DemoRun run, long exampleId) =>
        run.Sources.ExampleSources.TryGetValue(exampleId.ToString(CultureInfo.InvariantCulture), out var s) ? s : -1;
}

/// <summary>Stable-id log messages of the demo (to demo.log).</summary>
internal static partial class DemoLog
{
    [LoggerMessage(EventId = 1301, Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Kafka {Bootstrap} is not ready for the demo")]
    public static partial void KafkaNotReady(Microsoft.Extensions.Logging.ILogger logger, string bootstrap, Exception exception);
}
