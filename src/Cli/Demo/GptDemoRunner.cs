using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Attribution.Cli.Commands;
using Attribution.Cli.Evaluation;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Ingest;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Serilog;
using Serilog.Extensions.Logging;
using Spectre.Console;

namespace Attribution.Cli.Demo;

/// <summary>
/// <c>./pipeline demo --model gpt</c>: language-model traffic through the pipeline in one process. Trains (or reuses)
/// a tiny byte-level GPT on Debian text sources, then runs the three services over the embedded event log (or a Kafka
/// cluster): <b>Ingest</b> publishes the run (its documents' token ids in the batches, the checkpoint by reference),
/// the <b>Simulator</b> publishes forward-only probes (one per training document, one per source simulated as one
/// unit; with <c>--method stride</c> STRIDE's subset ids and operator tensors instead), and the <b>Scorer</b> imports
/// them into the method object (<c>attribute</c> and <c>eval</c> score with the same class and state) and attributes text queries: a prompt cut from a held-out document and the
/// model's own greedy completion. Each attribution is shown as it arrives: the prompt, the completion, the top training
/// documents as text with their sources and scores, and the sources' scores. Poison queries land in the dead-letter
/// topic; every attribution is written to an Arrow file.
/// </summary>
internal static class GptDemoRunner
{
    private const int PromptBytes = 28;
    private const int CompletionTokens = 24;

    /// <summary>Completions with fewer distinct non-space characters than this are a degenerate loop, sent only when too few others.</summary>
    private const int MinDistinctCharacters = 4;

    /// <summary>
    /// The Simulator's forward-only settings for the demo: the best forward-only configuration of the language-model LDS
    /// table (spectral propagation, horizon 100: 0.650 vs 0.595 at horizon 10; docs/benchmarks/language-models.md). The
    /// probes keep the Simulator's default rank 8 rather than that row's full layers: rank 0 vs 8 made no LDS difference
    /// there (0.595 vs 0.594), and full layers of the demo's width-64 model would be ~0.5 MB per document probe.
    /// </summary>
    internal const int Horizon = 100;

    /// <summary>Mini-batch rows per simulated step (with <see cref="Horizon"/>).</summary>
    internal const int SimulationBatch = 8;

    /// <summary>
    /// Training rows the spectral operator's Hessian is averaged over: its 32 Lanczos steps cost 2 gradients of this
    /// many rows each, most of the simulation at the default 1,000 (64,000 row passes against one per document); 256 is
    /// the LDS table's setting (its pool has 256 documents).
    /// </summary>
    internal const int OperatorSample = 256;

    /// <summary>
    /// Completions repeat no byte 4-gram (<see cref="GreedyDecoder"/>): plain greedy decoding of the 2,000-step model
    /// ends 6 of 8 demo prompts in "the world the world the" (the same output, so the same top documents); with 8-grams
    /// barred it still loops ("the world the would the"), with 4-grams the completions differ per prompt (e.g. "that.⏎
    /// -- Lao Tse, "Ta"). Top-k sampling was tried too: it gives non-words ("perver, insersionar") at this model size.
    /// </summary>
    internal const int NoRepeatNgram = 4;

    public static async Task<int> RunAsync(DemoSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Validate() is { } error)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(error)}[/]");
            return 2;
        }

        AnsiConsole.Write(new Rule("[bold]Training-data attribution on live language-model traffic[/]").LeftJustified());
        var total = Stopwatch.StartNew();
        var cpu = new PhaseClock();
        var outDir = Path.GetFullPath(settings.OutputDirectory);
        Directory.CreateDirectory(outDir);
        if (settings.KafkaBootstrap is { } bootstrap && await DemoRunner.ProvisionKafkaAsync(bootstrap, console: false, outDir, cancellationToken) is { } failed)
        {
            return failed;
        }

        using var factory = CliLogging.CreateFactory();
        if (EnsureTrained(settings, factory.CreateLogger("demo")) is { } untrained)
        {
            return untrained;
        }

        cpu.Mark("training (or loading the cached model)");

        var run = LanguageModelRun.Load(settings.RunDirectory);
        var model = new Gpt(run.Config, seed: 0);
        new GptModel(model).LoadFrom(run.Theta);
        var training = run.TrainDocuments.Select(i => run.Corpus.Documents[i]).ToArray();
        AnsiConsole.MarkupLine($"Model: GPT {Markup.Escape(run.Config.ToString()!)}, {model.ParameterCount:N0} parameters, trained on {training.Length:N0} documents from {run.Corpus.Sources.Count} sources ({Markup.Escape(run.Corpus.Spec)}).");

        var runId = $"demo-gpt-{DateTime.UtcNow:yyyyMMddHHmmss}";
        var version = $"{runId}@{settings.Steps}";
        var held = new GptDemoRun(model, [.. run.ValidationDocuments.Select(i => run.Corpus.Documents[i])], training);
        var queries = BuildQueries(held, settings, version);
        cpu.Mark("completions (greedy decoding)");
        if (queries.Count == 0)
        {
            AnsiConsole.MarkupLine("[red]No held-out document gives a prompt the model completes (it ends every prompt at once); train longer (--steps) or on more text (--corpus).[/]");
            return 1;
        }

        using var host = BuildHost(settings, runId, outDir);
        await host.StartAsync(cancellationToken);
        try
        {
            var simulator = host.Services.GetRequiredService<SimulatorWorker>();
            var worker = host.Services.GetRequiredService<ScorerWorker>();
            var log = host.Services.GetRequiredService<IEventLog>();
            var producer = host.Services.GetRequiredService<IEventProducer>();
            var scorer = await WaitForProbesAsync(simulator, worker, settings.Method, runId, settings.Steps, training.Length, cancellationToken);
            cpu.Mark("simulation (probes) and the Scorer's import");
            AnsiConsole.MarkupLine($"Scorer serves [bold]{Markup.Escape(scorer.Method)}[/] from the probe set of {Markup.Escape(scorer.Version)}: {scorer.ExampleIds.Count:N0} documents, {scorer.SourceIds.Count} sources.");
            var results = await ReplayAsync(log, producer, worker, held, queries, cancellationToken);
            var poisoned = await ShowPoisonHandlingAsync(log, producer, worker, version, run.Config.Context, cancellationToken);
            cpu.Mark("scoring the queries and the poison records");
            var arrowPath = Path.Combine(outDir, "attributions.arrow");
            var tmp = arrowPath + ".tmp";
            await File.WriteAllBytesAsync(tmp, EventCodecs.Attributions.EncodeBatch([.. results.OrderBy(r => r.QueryId, StringComparer.Ordinal)]), cancellationToken);
            File.Move(tmp, arrowPath, overwrite: true);
            AnsiConsole.MarkupLine($"Wrote {results.Count} attribution events to [bold]{Markup.Escape(Path.GetRelativePath(Environment.CurrentDirectory, arrowPath))}[/] (./pipeline arrow inspect reads it); service logs in {Markup.Escape(Path.Combine(outDir, "demo.log"))}.");
            AnsiConsole.MarkupLine($"[grey]Demo finished in {total.Elapsed.TotalSeconds:F0} s. {Markup.Escape(cpu.Summary())}[/]");
            return results.Count == queries.Count && poisoned ? 0 : 1;
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await host.StopAsync(stop.Token);
        }
    }

    /// <summary>Shows the Simulator's progress until the probe set is complete, then waits for the Scorer to serve it.</summary>
    private static async Task<IQueryScorer> WaitForProbesAsync(SimulatorWorker simulator, ScorerWorker worker, string method, string runId, long step, int documents, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var complete = simulator.WhenProbeSetCompleteAsync(runId, step);
        IQueryScorer? live = null;
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask($"Simulator: {Markup.Escape(method)} probes for {documents:N0} documents + every source", maxValue: documents);
                while (!complete.IsCompleted)
                {
                    task.Value = Math.Min(documents, simulator.ProbesPublished);
                    await Task.WhenAny(complete, Task.Delay(250, cancellationToken));
                }

                await complete; // a failed simulation surfaces here
                task.Value = documents;
                var index = ctx.AddTask($"Scorer: importing the probe set into {Markup.Escape(method)}", maxValue: 1);
                using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                limit.CancelAfter(TimeSpan.FromMinutes(5));
                while ((live = worker.Index.Scorer) is null || live.Version != $"{runId}@{step}")
                {
                    if (worker.Index.LastError is { } indexError && indexError.Contains(runId, StringComparison.Ordinal))
                    {
                        throw new InvalidOperationException($"the Scorer rejected the probe set: {indexError}");
                    }

                    await Task.Delay(100, limit.Token);
                }

                index.Value = 1;
            });
        var done = await complete;
        AnsiConsole.MarkupLine($"Probe set complete: [bold]{done.ExampleProbes:N0}[/] document probes (a source scores the sum of its documents) for run {Markup.Escape(runId)} at step {step} ({clock.Elapsed.TotalSeconds:F1} s).");
        return live!;
    }

    /// <summary>The trained run in <see cref="DemoSettings.RunDirectory"/>: reused when its recipe matches, trained otherwise. Null when ready.</summary>
    private static int? EnsureTrained(DemoSettings settings, Microsoft.Extensions.Logging.ILogger log)
    {
        var manifest = Path.Combine(settings.RunDirectory, "run.json");
        var corpus = TextCorpus.Load(settings.Corpus).Spec;
        if (File.Exists(manifest) && File.Exists(Path.Combine(settings.RunDirectory, GptCheckpoint.WeightsFile)))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(manifest));
            var recipe = doc.RootElement.GetProperty("recipe");
            if (recipe.GetProperty("corpus").GetString() == corpus && recipe.GetProperty("steps").GetInt32() == settings.Steps
                && recipe.GetProperty("seed").GetUInt64() == settings.Seed && recipe.GetProperty("tokenizer").GetString() == ByteTokenizer.TokenizerName)
            {
                AnsiConsole.MarkupLine($"Reusing the trained model in [bold]{Markup.Escape(settings.RunDirectory)}[/].");
                return null;
            }
        }

        AnsiConsole.MarkupLine($"Training a byte-level GPT on [bold]{Markup.Escape(corpus)}[/] for {settings.Steps} steps (cached in {Markup.Escape(settings.RunDirectory)})…");
        var rc = GptTraining.Run(log, settings.RunDirectory, settings.Seed, settings.Steps, corpus, ByteTokenizer.TokenizerName);
        return rc == 0 ? null : 1;
    }

    /// <summary>
    /// Prompts cut from held-out documents (whole words, ASCII), each completed greedily by the model itself; prompts
    /// whose completion is empty are skipped, and those whose completion is a degenerate loop are sent only when too few
    /// prompts give anything else (counted on the console).
    /// </summary>
    private static List<ModelQuery> BuildQueries(GptDemoRun run, DemoSettings settings, string version)
    {
        var rng = new Random(unchecked((int)settings.Seed) + 7);
        var candidates = run.Validation.Where(d => d.Bytes.Length >= 24 && d.Bytes.All(b => b is >= 32 and < 127 or (byte)'\n' or (byte)'\t')).OrderBy(_ => rng.Next()).ToList();
        var queries = new List<ModelQuery>();
        var degenerate = new List<(string Prompt, string Completion)>();
        foreach (var d in candidates)
        {
            if (queries.Count == settings.Queries)
            {
                break;
            }

            var text = string.Join(' ', System.Text.Encoding.ASCII.GetString(d.Bytes).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
            int limit = Math.Min(PromptBytes, text.Length / 2);
            var cut = text.LastIndexOf(' ', limit);
            var prompt = text[..(cut > 4 ? cut : limit)];
            int[] promptIds = [ByteTokenizer.Bos, .. ByteTokenizer.Instance.Encode(prompt)];
            var completion = ByteTokenizer.Instance.Decode(GreedyDecoder.Complete(run.Model, promptIds, CompletionTokens, [ByteTokenizer.Eos, ByteTokenizer.Bos, ByteTokenizer.Pad], NoRepeatNgram));
            if (completion.Length == 0)
            {
                continue; // the model ended the document right after the prompt: nothing to attribute
            }

            if (completion.Where(c => !char.IsWhiteSpace(c)).Distinct().Count() < MinDistinctCharacters)
            {
                degenerate.Add((prompt, completion));
                continue; // " t t t t": the tiny model's loop explains little a reader can follow; kept in reserve
            }

            queries.Add(ModelQuery.FromText($"gpt-q-{queries.Count + 1:D3}", version, ByteTokenizer.TokenizerName, prompt, completion, DateTimeOffset.UtcNow));
        }

        int reserve = Math.Min(degenerate.Count, settings.Queries - queries.Count);
        foreach (var (prompt, completion) in degenerate.Take(reserve))
        {
            queries.Add(ModelQuery.FromText($"gpt-q-{queries.Count + 1:D3}", version, ByteTokenizer.TokenizerName, prompt, completion, DateTimeOffset.UtcNow));
        }

        if (degenerate.Count > 0)
        {
            AnsiConsole.MarkupLine($"[grey]{degenerate.Count} prompt(s) the model completes with a degenerate loop (fewer than {MinDistinctCharacters} distinct characters, e.g. \" t t t t\"): {reserve} sent, for want of others.[/]");
        }

        if (queries.Count < settings.Queries)
        {
            AnsiConsole.MarkupLine($"[yellow]Only {queries.Count} held-out documents give a prompt and a non-empty completion; sending those.[/]");
        }

        return queries;
    }

    private static IHost BuildHost(DemoSettings settings, string runId, string outDir)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        var kafka = settings.KafkaBootstrap is not null;
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Transport:Kind"] = kafka ? "kafka" : "embedded",
            ["Transport:Kafka:BootstrapServers"] = settings.KafkaBootstrap,
            ["Transport:Kafka:ClientId"] = "pipeline-demo-gpt",
            ["Transport:Kafka:FetchWaitMaxMs"] = kafka ? "10" : null,
            ["Ingest:RunDirectory"] = settings.RunDirectory,
            ["Ingest:RunId"] = runId,
            ["Ingest:Mode"] = "once",
            ["Simulator:GroupId"] = $"simulator-{runId}",
            ["Simulator:Horizon"] = Horizon.ToString(CultureInfo.InvariantCulture),
            ["Simulator:Propagation"] = "Spectral", // 3.1x less CPU than the trajectory on the transformer, LDS not lower (language-models.md)
            ["Simulator:OperatorRank"] = "32",
            ["Simulator:OperatorSample"] = OperatorSample.ToString(CultureInfo.InvariantCulture),
            ["Simulator:BatchSize"] = SimulationBatch.ToString(CultureInfo.InvariantCulture),
            ["Simulator:Method"] = settings.ServedMethod,
            ["Scorer:Method"] = settings.ServedMethod,
            ["Scorer:GroupId"] = $"scorer-{runId}",
            ["Scorer:RunId"] = runId,
            ["Scorer:MaxBatch"] = "8",
            ["Scorer:Normalize"] = settings.GptScorerNormalize, // forward-only: relative influence, readable (see Show)
        });
        var serilog = new Serilog.LoggerConfiguration()
            .MinimumLevel.Information()
            .WriteTo.Logger(l => l.MinimumLevel.Error().WriteTo.Console(standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose))
            .WriteTo.Sink(new PlainFileSink(Path.Combine(outDir, "demo.log")))
            .CreateLogger();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new SerilogLoggerProvider(serilog, dispose: true));
        builder.Services.AddEventLog(builder.Configuration);
        builder.Services.AddIngest(builder.Configuration);
        builder.Services.AddSimulator(builder.Configuration);
        builder.Services.AddScorer(builder.Configuration);
        return builder.Build();
    }

    private static async Task<List<AttributionResult>> ReplayAsync(IEventLog log, IEventProducer producer, ScorerWorker worker, GptDemoRun run,
        List<ModelQuery> queries, CancellationToken cancellationToken)
    {
        var byId = queries.ToDictionary(q => q.QueryId, StringComparer.Ordinal);
        var documents = run.Training.ToDictionary(d => d.Id);
        var results = new List<AttributionResult>();
        var clock = Stopwatch.StartNew();
        foreach (var q in queries)
        {
            await producer.ProduceQueryAsync(q with { Timestamp = DateTimeOffset.UtcNow }, cancellationToken);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(3));
        await foreach (var r in new AttributionReader(log).ReadAsync(timeout.Token))
        {
            if (!byId.TryGetValue(r.QueryId, out var q))
            {
                continue;
            }

            results.Add(r);
            Show(q, r, documents);
            if (results.Count == queries.Count)
            {
                break;
            }
        }

        var m = worker.Metrics;
        AnsiConsole.MarkupLine($"Attributed [bold]{results.Count}[/] of {queries.Count} text queries in {clock.Elapsed.TotalSeconds:F1} s; latency p50 {m.LatencyP50Micros / 1000.0:F1} ms, p99 {m.LatencyP99Micros / 1000.0:F1} ms (query produced → attribution published), mean micro-batch {m.MeanBatchSize:F1}.");
        return results;
    }

    /// <summary>
    /// One attribution, readable: the query's text, its top documents as text with their scores and each source's score.
    /// Forward-only: relative influence (score ÷ ‖response‖: the Scorer serves <c>normalize=relative</c>, so documents with
    /// large updates do not top every query) and each source's share of the positive relative influence; STRIDE: its
    /// recovered scores and per-source sums.
    /// </summary>
    private static void Show(ModelQuery q, AttributionResult r, Dictionary<long, TextDocument> documents)
    {
        var names = r.SourceNames ?? [];
        var t = new Table().Border(TableBorder.Simple).HideHeaders().AddColumns("", "", "", "")
            .Title($"[bold]{Markup.Escape(r.QueryId)}[/]  [grey]{Markup.Escape(r.Method)}{(r.Method.StartsWith("forward-only", StringComparison.Ordinal) ? " (relative influence)" : "")}, {r.LatencyMicros / 1000.0:F0} ms[/]");
        t.AddRow(new Markup("[grey]prompt[/]"), new Markup($"[bold]{Markup.Escape(q.Prompt ?? "")}[/]"), new Text(""), new Text(""));
        t.AddRow(new Markup("[grey]model's completion[/]"), new Markup($"[green]\"{Markup.Escape((q.Completion ?? "").Replace("\n", "⏎", StringComparison.Ordinal))}\"[/]"), new Text(""), new Text(""));
        for (int i = 0; i < Math.Min(3, r.ExampleIds.Count); i++)
        {
            var source = r.ExampleSourceIds is { } es ? SourceName(r, es[i]) : "?";
            var text = documents.TryGetValue(r.ExampleIds[i], out var d) ? Snippet(System.Text.Encoding.UTF8.GetString(d.Bytes)) : "(not in this corpus)";
            t.AddRow(new Markup($"[grey]#{i + 1}[/]"), new Text(text), new Markup($"[blue]{Markup.Escape(source)}[/]"), new Text(r.Scores[i].ToString("G3", CultureInfo.InvariantCulture)));
        }

        var perSource = Enumerable.Range(0, r.SourceIds.Count).Where(i => r.SourceScores[i] > 0).OrderByDescending(i => r.SourceScores[i]).Take(5)
            .Select(i => $"{(i < names.Count ? names[i] : r.SourceIds[i].ToString(CultureInfo.InvariantCulture))} {r.SourceScores[i].ToString("P0", CultureInfo.InvariantCulture)}").ToArray();
        t.Caption(perSource.Length == 0 ? "no training document raised this completion's likelihood"
            : $"share of the positive influence by source: {Markup.Escape(string.Join(", ", perSource))}");
        AnsiConsole.Write(t);
    }

    private static string SourceName(AttributionResult r, long sourceId)
    {
        for (int i = 0; i < r.SourceIds.Count; i++)
        {
            if (r.SourceIds[i] == sourceId && r.SourceNames is { } names)
            {
                return names[i];
            }
        }

        return sourceId.ToString(CultureInfo.InvariantCulture);
    }

    private static string Snippet(string text)
    {
        var flat = string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return flat.Length <= 80 ? flat : flat[..79] + "…";
    }

    /// <summary>Malformed text queries a buggy client might send; each must land in the dead-letter topic with its error.</summary>
    private static async Task<bool> ShowPoisonHandlingAsync(IEventLog log, IEventProducer producer, ScorerWorker worker, string version, int context, CancellationToken cancellationToken)
    {
        var now = DateTimeOffset.UtcNow;
        var poison = new (string Key, byte[] Value)[]
        {
            ("poison-tokenizer", EventCodecs.Queries.Encode(ModelQuery.FromText("poison-tokenizer", version, "llama3", "The answer is", " 42", now))),
            ("poison-empty", EventCodecs.Queries.Encode(ModelQuery.FromText("poison-empty", version, ByteTokenizer.TokenizerName, "The answer is", "", now))),
            ("poison-vocab", EventCodecs.Queries.Encode(ModelQuery.FromTokens("poison-vocab", version, ByteTokenizer.TokenizerName, [72, 105], [33, 50_000], now))),
            ("poison-context", EventCodecs.Queries.Encode(ModelQuery.FromText("poison-context", version, ByteTokenizer.TokenizerName, new string('a', context + 8), " b", now))),
            ("poison-image", EventCodecs.Queries.Encode(new ModelQuery("poison-image", version, new float[784], null, now))),
        };
        var rejectedBefore = worker.Metrics.QueriesRejected;
        foreach (var (key, value) in poison)
        {
            await producer.ProduceAsync(Topics.Queries, EventMessage.Create(key, value), cancellationToken);
        }

        var found = await DemoDeadLetters.CollectAsync(log, poison.Select(p => p.Key).ToArray(), TimeSpan.FromSeconds(30), cancellationToken);
        DemoDeadLetters.Show("Poison text queries: dead-lettered with their error, the stream went on", found, 150);
        return found.Count == poison.Length && worker.Metrics.QueriesRejected - rejectedBefore == poison.Length;
    }

    /// <summary>What the queries and the display need: the model (greedy completions), held-out and training documents.</summary>
    private sealed record GptDemoRun(Gpt Model, TextDocument[] Validation, TextDocument[] Training);
}

/// <summary>The process's CPU time per demo phase (all threads: the hosted services run on the pool), for the closing line.</summary>
internal sealed class PhaseClock
{
    private readonly Process _process = Process.GetCurrentProcess();
    private readonly List<(string Phase, double Seconds)> _phases = [];
    private TimeSpan _last;

    public PhaseClock() => _last = Now();

    /// <summary>Ends the current phase under <paramref name="phase"/>.</summary>
    public void Mark(string phase)
    {
        var now = Now();
        _phases.Add((phase, (now - _last).TotalSeconds));
        _last = now;
    }

    /// <summary>"CPU time: phase 1.2 s, …, total 3.4 s".</summary>
    public string Summary() => "CPU time: " + string.Join(", ", _phases.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Phase} {p.Seconds:F1} s")))
        + string.Create(CultureInfo.InvariantCulture, $", total {_phases.Sum(p => p.Seconds):F1} s.");

    private TimeSpan Now()
    {
        _process.Refresh();
        return _process.TotalProcessorTime;
    }
}
