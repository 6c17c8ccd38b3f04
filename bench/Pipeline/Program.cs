using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Training;
using Attribution.MockKafka;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Attribution.Transport.Embedded;
using Attribution.Transport.Kafka;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

// End-to-end Scorer benchmark: queries produced → Scorer instance(s) in one consumer group → attributions consumed, on
// the embedded log and over librdkafka's mock Kafka cluster (3 brokers, loopback TCP), against the bare compute of
// AttributionModel.Score on the same batch sizes. Usage in docs/benchmarks/pipeline.md.
if (args.Length > 0 && args[0] == ScorerProcess.Flag)
{
    await ScorerProcess.ServeAsync(args[1..]);
    return 0;
}

Args opt;
try
{
    opt = Args.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine($"pipeline bench: {e.Message}");
    return 2;
}

Console.WriteLine($"# pipeline bench: {opt}; {Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Trim()}");

if (opt.Pin is { } pinned)
{
    // Every thread of this process now, and (inherited) every thread it starts later: load generator, reader, brokers.
    using var taskset = Process.Start(new ProcessStartInfo("taskset", ["-a", "-p", "-c", pinned.Bench, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)]) { RedirectStandardOutput = true })!;
    await taskset.WaitForExitAsync();
    if (taskset.ExitCode != 0)
    {
        Console.Error.WriteLine($"pipeline bench: taskset could not pin this process to CPUs {pinned.Bench} (exit {taskset.ExitCode}).");
        return 2;
    }
}

var data = FashionMnist.Load();
if (opt.ReadoutProfile.Length > 0 && opt.ProbeCache is { } cached && Directory.Exists(cached))
{
    var (cachedTheta, cachedSet) = ReadoutProfile.Load(cached);
    Console.WriteLine($"# probe set and θ from {cached}");
    var cachedQueries = data.Test.Select([.. Enumerable.Range(0, 10_000)], TrainingRecipe.DefaultMlp([0], [0]).Data.Normalization).Inputs;
    if (opt.Checkpoints > 1)
    {
        ReadoutProfile.Checkpoints(() => ReadoutProfile.Build(cachedSet, cachedTheta, opt.Sources), cachedQueries, opt.ReadoutProfile, opt.Checkpoints, opt.Queries);
        return 0;
    }

    ReadoutProfile.Run(ReadoutProfile.Build(cachedSet, cachedTheta, opt.Sources), cachedQueries, opt.ReadoutProfile, opt.Queries);
    return 0;
}

PoolSampler.Start();
var root = Path.Combine(Path.GetTempPath(), "pipeline-bench-" + Guid.NewGuid().ToString("N"));
var runDir = Path.Combine(root, Bench.RunId);
var watch = Stopwatch.StartNew();
var recipe = TrainingRecipe.DefaultMlp([.. Enumerable.Range(0, opt.Train)], [.. Enumerable.Range(0, 500)], epochs: opt.Epochs, seed: 1);
var trained = MlpTrainer.Train(recipe, data);
var manifest = new RunManifest { Recipe = recipe, Metrics = trained.Metrics, CreatedUtc = "2026-01-01T00:00:00Z" };
RunDirectory.Save(runDir, manifest, trained.Model.Parameters);
Console.WriteLine($"# trained {string.Join('-', recipe.Model.Widths)} on {opt.Train} FashionMNIST images, {opt.Epochs} epoch(s), in {watch.Elapsed.TotalSeconds:F1} s");

watch.Restart();
var simulationCpu = Process.GetCurrentProcess().TotalProcessorTime;
var probeSet = await Bench.SimulatedProbeSetAsync(recipe, Path.Combine(runDir, manifest.Checkpoint), data, opt.Examples, opt.Sources, opt.Horizon);
var queries = data.Test.Select([.. Enumerable.Range(0, 10_000)], recipe.Data.Normalization).Inputs;
Console.WriteLine($"# probe set: {opt.Examples} example probes ({probeSet.ExampleBytes / 1e6:F1} MB) in {opt.Sources} sources (sums of their examples), " +
    $"simulated by the Simulator service (its defaults, K = {opt.Horizon}) in {watch.Elapsed.TotalSeconds:F1} s, {(Process.GetCurrentProcess().TotalProcessorTime - simulationCpu).TotalSeconds:F1} CPU-s");

if (opt.ReadoutProfile.Length > 0)
{
    if (opt.ProbeCache is { } cache)
    {
        ReadoutProfile.Save(cache, manifest, trained.Model.Parameters, probeSet);
    }

    if (opt.Checkpoints > 1)
    {
        ReadoutProfile.Checkpoints(() => ReadoutProfile.Build(probeSet, trained.Model.ToFlat(), opt.Sources), queries, opt.ReadoutProfile, opt.Checkpoints, opt.Queries);
    }
    else
    {
        ReadoutProfile.Run(ReadoutProfile.Build(probeSet, trained.Model.ToFlat(), opt.Sources), queries, opt.ReadoutProfile, opt.Queries);
    }

    Directory.Delete(root, recursive: true);
    return 0;
}

Console.WriteLine();
Console.WriteLine("| transport | Scorers | saturation q/s | bare Score q/s, same batch | pipeline adds | p50 / p99 ms at saturation (window) | mean batch | q/s at half | mean batch at half | p50 / p99 ms at half | of which to scored, p50 / p99 ms |");
Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
var batchSizes = new List<double>();
AttributionModel? model = null;
try
{
    // Each round runs every variant once, in order, so variants are compared under the same (noisy) conditions.
    for (int round = 1; round <= opt.Rounds; round++)
    {
        foreach (var variant in opt.Variants)
        {
            var o = variant.Apply(opt);
            foreach (var transport in opt.Transports)
            {
                foreach (var scorers in opt.Scorers)
                {
                    var r = await Bench.RunAsync(transport, scorers, o, probeSet, trained.Model.ToFlat(), queries);
                    model ??= r.Model;
                    batchSizes.Add(r.MeanBatch);
                    batchSizes.Add(r.MeanBatchHalf);
                    var label = opt.Variants.Length > 1 || opt.Rounds > 1 ? $"{variant.Name} (round {round}) " : "";
                    Console.WriteLine($"| {label}{transport} | {scorers} | {r.Saturation.PerSecond:F0} | {r.BarePerSecond:F0} | {100 * (r.BarePerSecond / r.Saturation.PerSecond - 1):F0}% | {r.Saturation.P50:F1} / {r.Saturation.P99:F1} ({opt.Window}) | {r.MeanBatch:F1} | {r.Half.PerSecond:F0} | {r.MeanBatchHalf:F1} | {r.Half.P50:F1} / {r.Half.P99:F1} | {r.Half.ScoredP50:F1} / {r.Half.ScoredP99:F1} |");
                    Console.WriteLine($"<!-- load average after: {File.ReadAllText("/proc/loadavg").Trim()} -->");
                }
            }
        }
    }

    // Bare compute: AttributionModel.Score on the batch sizes the pipeline formed, and on full batches; no transport.
    Console.WriteLine();
    Console.WriteLine($"| bare AttributionModel.Score ({opt.Concurrent} thread(s)), batch | q/s | ms per batch | CPU ms per query |");
    Console.WriteLine("|---|---|---|---|");
    foreach (var b in batchSizes.Select(x => (int)Math.Round(x)).Append(opt.MaxBatch).Distinct().Order())
    {
        var (qps, msPerBatch, cpuMs) = Bench.Bare(model!, queries, b, opt.Queries, opt.Concurrent);
        Console.WriteLine($"| {b} | {qps:F0} | {msPerBatch:F2} | {cpuMs:F2} |");
    }
}
finally
{
    Directory.Delete(root, recursive: true);
}

return 0;

internal sealed record Args(int Examples, int Sources, int Queries, int Train, int Epochs, int Window, int MaxBatch, string[] Transports, int[] Scorers, double HalfSeconds, int Horizon, int Concurrent, int LingerMs, int FetchWaitMs)
{
    /// <summary>The Scorer's micro-batch window (Scorer:BatchWindowMs).</summary>
    public double BatchWindowMs { get; init; } = 2;

    /// <summary>TCP_NODELAY on the Kafka clients' broker sockets (KafkaOptions.NoDelay, default on).</summary>
    public bool NagleOff { get; init; } = true;

    /// <summary>Configurations compared in one run (--variants), each run once per round.</summary>
    public Variant[] Variants { get; init; } = [new Variant("as given", [])];

    /// <summary>How many times every variant is run, alternating (--rounds).</summary>
    public int Rounds { get; init; } = 1;

    /// <summary>Also run the downstream console on the same log and time each query to its Arrow Flight (DoGet) delivery.</summary>
    public bool Flight { get; init; }

    /// <summary>Batch sizes for the readout profile (--readout-profile 1,4,8,16,64): the readout alone, no pipeline.</summary>
    public int[] ReadoutProfile { get; init; } = [];

    /// <summary>With --readout-profile: the Scorer's Score at Scorer:Checkpoints 1 vs this J (&gt; 1), alternated, instead of the profile.</summary>
    public int Checkpoints { get; init; } = 1;

    /// <summary>With --readout-profile: θ and the probe set are read from this directory when it exists, else saved to it (run directory + probes.arrow).</summary>
    public string? ProbeCache { get; init; }

    /// <summary>
    /// The Scorer in a child process (--scorer-process 1; Kafka, one Scorer): its CPU time (every thread of it) is then
    /// measured apart from the load generator, the attribution reader and the mock brokers, which stay in this process.
    /// </summary>
    public bool ScorerProcess { get; init; }

    /// <summary>
    /// With --scorer-process: the CPUs (taskset lists) of the Scorer process and of the bench process (load generator,
    /// reader, mock brokers), e.g. --pin 0/1, so neither preempts the other; null = both float over every core.
    /// </summary>
    public (string Scorer, string Bench)? Pin { get; init; }

    /// <summary>Queries of the closed-loop warm-up before each row (--warm): joins, first fetches, JIT tiering.</summary>
    public int Warm { get; init; } = 8000;

    /// <summary>
    /// The open-loop phase's rate in q/s (--rate); 0 = half the row's measured saturation (the goal's definition). A
    /// fixed rate offers every variant the same load, so batching policies compare at equal arrivals.
    /// </summary>
    public double Rate { get; init; }

    public static Args Parse(string[] args)
    {
        var a = new Args(1000, 10, 2000, 5000, 1, 256, 64, ["embedded", "kafka"], [1, 2], 10, 20, 1, 2, 5);
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            var v = args[i + 1];
            a = args[i] switch
            {
                "--examples" => a with { Examples = int.Parse(v, CultureInfo.InvariantCulture) },
                "--sources" => a with { Sources = int.Parse(v, CultureInfo.InvariantCulture) },
                "--queries" => a with { Queries = int.Parse(v, CultureInfo.InvariantCulture) },
                "--train" => a with { Train = int.Parse(v, CultureInfo.InvariantCulture) },
                "--epochs" => a with { Epochs = int.Parse(v, CultureInfo.InvariantCulture) },
                "--window" => a with { Window = int.Parse(v, CultureInfo.InvariantCulture) },
                "--max-batch" => a with { MaxBatch = int.Parse(v, CultureInfo.InvariantCulture) },
                "--transports" => a with { Transports = v.Split(',') },
                "--scorers" => a with { Scorers = [.. v.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))] },
                "--half-seconds" => a with { HalfSeconds = double.Parse(v, CultureInfo.InvariantCulture) },
                "--horizon" => a with { Horizon = int.Parse(v, CultureInfo.InvariantCulture) },
                "--concurrent" => a with { Concurrent = int.Parse(v, CultureInfo.InvariantCulture) },
                "--linger" => a with { LingerMs = int.Parse(v, CultureInfo.InvariantCulture) },
                "--fetch-wait" => a with { FetchWaitMs = int.Parse(v, CultureInfo.InvariantCulture) },
                "--batch-window" => a with { BatchWindowMs = double.Parse(v, CultureInfo.InvariantCulture) },
                "--nagle-off" => a with { NagleOff = v == "1" },
                "--variants" => a with { Variants = [.. v.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(Variant.Parse)] },
                "--rounds" => a with { Rounds = int.Parse(v, CultureInfo.InvariantCulture) },
                "--flight" => a with { Flight = v == "1" },
                "--readout-profile" => a with { ReadoutProfile = [.. v.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))] },
                "--probe-cache" => a with { ProbeCache = v },
                "--checkpoints" => a with { Checkpoints = int.Parse(v, CultureInfo.InvariantCulture) },
                "--scorer-process" => a with { ScorerProcess = v == "1" },
                "--warm" => a with { Warm = int.Parse(v, CultureInfo.InvariantCulture) },
                "--rate" => a with { Rate = double.Parse(v, CultureInfo.InvariantCulture) },
                "--pin" => a with { Pin = v.Split('/') is [var sc, var bc] && sc.Length > 0 && bc.Length > 0 ? (sc, bc) : throw new ArgumentException($"--pin '{v}': give the Scorer's CPUs and the bench's, e.g. 0/1") },
                _ => throw new ArgumentException($"unknown option {args[i]}; options: --examples --sources --queries --train --epochs --window --max-batch --transports --scorers --half-seconds --horizon (the Simulator's K, >= 1) --concurrent (Scorer:ConcurrentBatches) --linger (Kafka producers' linger.ms) --fetch-wait (Kafka consumers' fetch.wait.max.ms) --batch-window (Scorer:BatchWindowMs) --nagle-off 0|1 (KafkaOptions.NoDelay, socket.nagle.disable; default 1) --variants 'name:key=v,key=v;name2:...' (keys linger, fetch-wait, batch-window, nagle-off) --rounds N --flight 1 (also time query -> Arrow Flight DoGet delivery through the console) --readout-profile 1,4,8,16,64 (the readout alone, thread CPU time per batch) --probe-cache DIR (with --readout-profile: reuse the simulated set) --checkpoints J (with --readout-profile: Score at Scorer:Checkpoints 1 vs J, alternated) --scorer-process 1 (kafka, 1 Scorer: the Scorer in a child process, its CPU time measured apart) --warm N (warm-up queries per row, default 8000) --rate Q (open-loop phase at Q q/s instead of half the saturation) --pin S/B (with --scorer-process: Scorer process on CPUs S, bench process on CPUs B, taskset lists, e.g. 0/1)"),
            };
        }

        if (a.Horizon < 1)
        {
            throw new ArgumentException($"--horizon {a.Horizon}: the probe set is simulated by the Simulator service with K >= 1 steps (synthetic floats are gone: the bench measures what the service serves).");
        }

        if (a.Pin is not null && !a.ScorerProcess)
        {
            throw new ArgumentException("--pin separates the Scorer process from the bench process: give --scorer-process 1 too.");
        }

        if (a.ScorerProcess && (a.Transports is not ["kafka"] || a.Scorers is not [1] || a.Flight))
        {
            throw new ArgumentException("--scorer-process 1 runs one Scorer in a child process over the mock Kafka cluster (a process boundary needs a network transport): give --transports kafka --scorers 1, without --flight.");
        }

        return a;
    }

    public override string ToString() =>
        $"{Examples} example + {Sources} source probes (the Simulator's, K = {Horizon}), {Queries} queries per phase, window {Window}, MaxBatch {MaxBatch}, ConcurrentBatches {Concurrent}, BatchWindowMs {BatchWindowMs}, Kafka linger.ms {LingerMs}, fetch.wait.max.ms {FetchWaitMs}, socket.nagle.disable {NagleOff}, {(Rate > 0 ? $"open-loop phase at {Rate} q/s" : "half-rate phase")} {HalfSeconds} s, {Warm} warm-up queries{(Flight ? ", with the console's Arrow Flight feed" : "")}{(ScorerProcess ? ", the Scorer in a child process" : "")}{(Pin is { } pin ? $" on CPUs {pin.Scorer}, the bench on CPUs {pin.Bench}" : "")}" +
        (Variants.Length > 1 || Rounds > 1 ? $"; variants {string.Join(" | ", Variants.Select(v => v.ToString()))}, {Rounds} round(s)" : "");
}

/// <summary>A named set of overrides of the transport and batching settings (--variants).</summary>
internal sealed record Variant(string Name, (string Key, string Value)[] Settings)
{
    public static Variant Parse(string spec)
    {
        var colon = spec.IndexOf(':', StringComparison.Ordinal);
        var name = colon < 0 ? spec : spec[..colon];
        var pairs = colon < 0 ? [] : spec[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p =>
        {
            var eq = p.IndexOf('=', StringComparison.Ordinal);
            return eq < 0 ? throw new ArgumentException($"variant '{spec}': '{p}' is not key=value") : (p[..eq].Trim(), p[(eq + 1)..].Trim());
        }).ToArray();
        var variant = new Variant(name, pairs);
        _ = variant.Apply(new Args(1, 1, 1, 1, 1, 1, 1, [], [], 1, 0, 1, 0, 0)); // unknown keys fail now, not after the set-up
        return variant;
    }

    public Args Apply(Args a)
    {
        foreach (var (key, value) in Settings)
        {
            a = key switch
            {
                "linger" => a with { LingerMs = int.Parse(value, CultureInfo.InvariantCulture) },
                "fetch-wait" => a with { FetchWaitMs = int.Parse(value, CultureInfo.InvariantCulture) },
                "batch-window" => a with { BatchWindowMs = double.Parse(value, CultureInfo.InvariantCulture) },
                "nagle-off" => a with { NagleOff = value == "1" },
                _ => throw new ArgumentException($"variant '{Name}': unknown key '{key}' (linger, fetch-wait, batch-window, nagle-off)"),
            };
        }

        return a;
    }

    public override string ToString() => $"{Name}: {string.Join(", ", Settings.Select(s => $"{s.Key}={s.Value}"))}";
}

/// <summary>
/// CPU time and run-queue wait of this process's threads, grouped by thread name (/proc/self/task/*/comm, stat,
/// schedstat): which parts (librdkafka's mock brokers and clients, .NET pool threads, BLAS) use the cores, and how long
/// runnable threads waited for one (the machine's contention, measured rather than argued).
/// </summary>
internal static class ThreadAccounting
{
    /// <summary>The group of the runtime's JIT tiering thread (".NET Tiered Compilation Worker", cut to 15 characters).</summary>
    public const string Jit = ".NET Tiered Com";

    /// <summary>The threads of this process, or of process <paramref name="pid"/>.</summary>
    public static Dictionary<string, (double CpuSeconds, double WaitSeconds)> Snapshot(int? pid = null)
    {
        var groups = new Dictionary<string, (double, double)>(StringComparer.Ordinal);
        foreach (var dir in Directory.EnumerateDirectories(pid is { } p ? $"/proc/{p}/task" : "/proc/self/task"))
        {
            try
            {
                var name = Group(File.ReadAllText(Path.Combine(dir, "comm")).Trim());
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                double cpu = (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
                var sched = File.ReadAllText(Path.Combine(dir, "schedstat")).Split(' ');
                double wait = long.Parse(sched[1], CultureInfo.InvariantCulture) / 1e9;
                var (c, w) = groups.GetValueOrDefault(name);
                groups[name] = (c + cpu, w + wait);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // The thread ended meanwhile.
            }
        }

        return groups;
    }

    /// <summary>Per group: cores used and cores' worth of waiting for a CPU over <paramref name="seconds"/>, largest first.</summary>
    public static string Describe(Dictionary<string, (double CpuSeconds, double WaitSeconds)> before, Dictionary<string, (double CpuSeconds, double WaitSeconds)> after, double seconds)
    {
        var rows = after.Select(kv =>
        {
            var b = before.GetValueOrDefault(kv.Key);
            return (Name: kv.Key, Cpu: (kv.Value.CpuSeconds - b.CpuSeconds) / seconds, Wait: (kv.Value.WaitSeconds - b.WaitSeconds) / seconds);
        }).Where(r => r.Cpu > 0.005 || r.Wait > 0.005).OrderByDescending(r => r.Cpu).ToList();
        return $"total {rows.Sum(r => r.Cpu):F2} cores busy, {rows.Sum(r => r.Wait):F2} cores' worth waiting for a CPU; " +
            string.Join(", ", rows.Select(r => $"{r.Name} {r.Cpu:F2}/{r.Wait:F2}"));
    }

    private static string Group(string comm)
    {
        // rdk:broker1, rdk:mock... and .NET TP Worker, .NET Long Running, OpenBLAS threads: names without their numbers.
        var trimmed = comm.TrimEnd('0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '-', ':', ' ');
        return trimmed.Length == 0 ? comm : trimmed;
    }
}

/// <summary>A probe set's messages (probes topic) and the training batch naming each example's source (batches topic).</summary>
internal sealed record ProbeSet(List<EventMessage> Messages, EventMessage Batch, long ExampleBytes);

/// <summary>Throughput and latency (produce call → attribution consumed); ScoredP50/P99: query record timestamp → scored, as the Scorer stamps it.</summary>
internal sealed record Phase(double PerSecond, double P50, double P99, double ScoredP50, double ScoredP99)
{
    /// <summary>Where the slowest 1 % of the phase's queries spent their time (before vs after the Scorer scored them).</summary>
    public string Tail { get; init; } = "";
}

internal sealed record RunResult(Phase Saturation, Phase Half, double MeanBatch, double MeanBatchHalf, double BarePerSecond, AttributionModel Model);

internal static class Bench
{
    public const string RunId = "bench-run";
    public const long Step = 1;
    private const int Partitions = 4;
    // The mock cluster caps each partition's log (oldest message sets dropped), so ~40 MB of probes need many partitions.
    private const int ProbePartitions = 16;
    private static readonly string[] Topics4 = [Topics.Probes, Topics.Batches, Topics.Queries, Topics.Attributions, Topics.DeadLetter];

    /// <summary>The bench's source of example <paramref name="id"/>: round robin over <paramref name="sources"/>.</summary>
    public static int SourceOf(long id, int sources) => (int)(id % sources);

    /// <summary>
    /// The probe set the Simulator service publishes for the trained model: the bench stands in for Ingest (the
    /// checkpoint event with its architecture and recipe, training batches with the first <paramref name="examples"/>
    /// images as payload, sources by <see cref="SourceOf"/>) and runs <see cref="SimulatorWorker"/> itself on an embedded
    /// log with its defaults (rank, precision, propagation, sketch seed; only the horizon K is the bench's), then takes
    /// every record it wrote to the probes topic. What the Scorers load is therefore what the service serves.
    /// </summary>
    public static async Task<ProbeSet> SimulatedProbeSetAsync(TrainingRecipe recipe, string checkpointPath, FashionMnistData data, int examples, int sources, int horizon)
    {
        var bytes = File.ReadAllBytes(checkpointPath);
        var layout = new Attribution.Engine.Models.MlpLayout(recipe.Model.Widths);
        // As Ingest describes an MLP run's checkpoint (RunData.CheckpointRecipe).
        var checkpoint = new CheckpointPublished(RunId, Step, new Uri(checkpointPath).AbsoluteUri, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)), layout.ParameterCount,
            new CheckpointRecipe("mlp:" + string.Join('-', recipe.Model.Widths), recipe.Optimizer.LearningRate, recipe.Optimizer.WeightDecay, recipe.BatchSize, recipe.Seed, recipe.Data.Name));
        var ids = recipe.Data.TrainIds.Take(examples).Select(i => (long)i).ToArray();
        var train = data.Train.Select([.. ids.Select(i => (int)i)], recipe.Data.Normalization);
        var sourceIds = ids.Select(i => (long)SourceOf(i, sources)).ToArray();
        await using var log = new EmbeddedEventLog(new EmbeddedOptions { DefaultPartitions = Partitions });
        using (var producer = log.CreateProducer())
        {
            const int perBatch = 100;
            int features = recipe.Model.Widths[0];
            for (int start = 0; start < ids.Length; start += perBatch)
            {
                int n = Math.Min(perBatch, ids.Length - start);
                var payload = BatchPayload.Encode(train.Inputs.AsSpan(start * features, n * features), train.Labels.AsSpan(start, n), features);
                await producer.ProduceAsync(Topics.Batches, EventMessage.Create(RunId, EventCodecs.TrainingBatches.Encode(new TrainingBatch(RunId, Step, ids[start..(start + n)], sourceIds[start..(start + n)]) { Payload = payload }), ArrowEvents.Headers<TrainingBatch>()));
            }

            await producer.ProduceAsync(Topics.Checkpoints, EventMessage.Create(RunId, EventCodecs.Checkpoints.Encode(checkpoint), ArrowEvents.Headers<CheckpointPublished>()));
        }

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLogging(b => b.AddSimpleConsole().SetMinimumLevel(Environment.GetEnvironmentVariable("BENCH_LOG") == "1" ? LogLevel.Debug : LogLevel.Warning));
        builder.Services.AddEventLog(_ => { });
        builder.Services.AddSingleton<IEventLog>(log);
        builder.Services.AddSimulator(o => o.Horizon = horizon);
        using (var host = builder.Build())
        {
            await host.StartAsync();
            await host.Services.GetRequiredService<SimulatorWorker>().WhenProbeSetCompleteAsync(RunId, Step).WaitAsync(TimeSpan.FromMinutes(30));
            await host.StopAsync();
        }

        var records = await TopicReader.ReadToEndAsync(log, Topics.Probes, CancellationToken.None);
        var messages = records.Select(r => new EventMessage(r.Key, r.Value, r.Headers)).ToList();
        long exampleBytes = records.Where(r => r.GetHeaderString(EventHeaders.EventType) == EventTypes.InfluenceProbe).Sum(r => (long)r.Value.Length);
        // The Scorer learns each example's source from the run's training batches, as in the pipeline (no payload: it reads none).
        var batch = new TrainingBatch(RunId, Step, ids, sourceIds);
        return new ProbeSet(messages, EventMessage.Create(RunId, EventCodecs.TrainingBatches.Encode(batch), ArrowEvents.Headers<TrainingBatch>()), exampleBytes);
    }

    /// <summary>The Kafka log the bench's clients (and a child Scorer process) use on the mock cluster.</summary>
    public static KafkaEventLog KafkaLog(string bootstrapServers, Args opt) => new(new KafkaOptions
    {
        BootstrapServers = bootstrapServers,
        ClientId = "pipeline-bench",
        FetchWaitMaxMs = opt.FetchWaitMs,
        LingerMs = opt.LingerMs,
        AdminTimeoutMs = 5000,
        DefaultReplicationFactor = 3,
        NoDelay = opt.NagleOff,
    });

    /// <summary>A started Scorer host on <paramref name="log"/>, configured as every Scorer of the bench is.</summary>
    public static async Task<IHost> StartScorerAsync(IEventLog log, Args opt)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLogging(b => b.AddSimpleConsole().SetMinimumLevel(Environment.GetEnvironmentVariable("BENCH_LOG") == "1" ? LogLevel.Debug : LogLevel.Warning));
        builder.Services.AddEventLog(_ => { });
        builder.Services.AddSingleton(log);
        builder.Services.AddScorer(o =>
        {
            o.GroupId = "bench-scorer";
            o.RunId = RunId;
            o.TopK = 10;
            o.QueryPartitions = Partitions;
            o.MaxBatch = opt.MaxBatch;
            o.MaxInFlight = 2 * opt.MaxBatch;
            o.ConcurrentBatches = opt.Concurrent;
            o.BatchWindowMs = opt.BatchWindowMs;
        });
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }

    /// <summary>Waits (up to 3 minutes) until every Scorer built its model from the probes topic.</summary>
    public static async Task WaitLoadedAsync(IReadOnlyList<ScorerWorker> workers)
    {
        var loaded = Stopwatch.StartNew();
        while (workers.Any(w => w.Index.Current is null))
        {
            if (loaded.Elapsed > TimeSpan.FromMinutes(3))
            {
                throw new TimeoutException("the Scorers did not load the probe set within 3 minutes: " + string.Join("; ", workers.Select(w => w.Index.LastError)));
            }

            await Task.Delay(20);
        }
    }

    public static async Task<RunResult> RunAsync(string transport, int scorers, Args opt, ProbeSet probeSet, float[] theta, float[] queries)
    {
        MockKafkaCluster? cluster = null;
        IEventLog log;
        if (transport == "kafka")
        {
            KafkaLibrary.EnsureLoaded();
            cluster = new MockKafkaCluster(3);
            foreach (var t in Topics4)
            {
                cluster.CreateTopic(t, t == Topics.Probes ? ProbePartitions : Partitions, 3);
            }

            log = KafkaLog(cluster.BootstrapServers, opt);
        }
        else if (transport == "embedded")
        {
            log = new EmbeddedEventLog(new EmbeddedOptions { DefaultPartitions = Partitions });
            foreach (var t in Topics4)
            {
                await log.CreateTopicAsync(new TopicSpec(t, t == Topics.Probes ? ProbePartitions : Partitions, Compacted: t == Topics.Probes));
            }
        }
        else
        {
            throw new ArgumentException($"unknown transport '{transport}' (embedded or kafka)");
        }

        var hosts = new List<IHost>();
        ScorerProcess? child = null;
        try
        {
            using var producer = log.CreateProducer();
            await producer.ProduceAsync(Topics.Batches, probeSet.Batch);
            await Task.WhenAll(probeSet.Messages.Select(m => producer.ProduceAsync(Topics.Probes, m)));
            Func<Task<ScorerStats>> stats;
            AttributionModel model;
            if (opt.ScorerProcess)
            {
                child = await ScorerProcess.StartAsync(cluster!.BootstrapServers, opt);
                stats = child.StatsAsync;
                // The bare reference: the model the child's ProbeIndex built, built here the same way from the same probes.
                model = ReadoutProfile.Build(probeSet, theta, opt.Sources);
            }
            else
            {
                for (int s = 0; s < scorers; s++)
                {
                    hosts.Add(await StartScorerAsync(log, opt));
                }

                var workers = hosts.Select(h => h.Services.GetRequiredService<ScorerWorker>()).ToList();
                await WaitLoadedAsync(workers);
                stats = () => Task.FromResult(ScorerStats.Of(workers));
                model = workers[0].Index.Current!;
            }

            using var collector = new Collector(log);
            await using var flight = opt.Flight ? await FlightCollector.StartAsync(log, collector) : null;
            await ClosedLoopAsync(producer, collector, queries, "warm", opt.Warm, opt.Window); // joins, first fetches, JIT tiering
            var sat0 = await stats();
            var allocated0 = GC.GetTotalAllocatedBytes();
            var satCpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            var satThreads0 = ThreadAccounting.Snapshot();
            var childThreads0 = child?.Threads();
            double childCpu0 = child?.CpuSeconds() ?? 0;
            var satWall0 = Stopwatch.GetTimestamp();
            var saturation = await ClosedLoopAsync(producer, collector, queries, "sat", opt.Queries, opt.Window);
            double satSeconds = Stopwatch.GetElapsedTime(satWall0).TotalSeconds;
            var sat1 = await stats();
            double processCpuMs = (Process.GetCurrentProcess().TotalProcessorTime - satCpu0).TotalMilliseconds;
            Console.WriteLine($"<!-- {transport}, {scorers} Scorer(s), at saturation, threads{(child is null ? "" : " of the bench process (load generator, reader, mock brokers)")} (cores used / cores waiting for a CPU): {ThreadAccounting.Describe(satThreads0, ThreadAccounting.Snapshot(), satSeconds)} -->");
            double childCpuMs = 0, childJitMs = 0;
            if (child is not null)
            {
                childCpuMs = 1000 * (child.CpuSeconds() - childCpu0);
                var childThreads1 = child.Threads();
                childJitMs = 1000 * (childThreads1.GetValueOrDefault(ThreadAccounting.Jit).CpuSeconds - childThreads0!.GetValueOrDefault(ThreadAccounting.Jit).CpuSeconds);
                Console.WriteLine($"<!-- {transport}, at saturation, threads of the Scorer process (cores used / cores waiting for a CPU): {ThreadAccounting.Describe(childThreads0!, childThreads1, satSeconds)}; allocated {(sat1 - sat0).Allocated / 1024.0 / opt.Queries:F1} KiB per query, GC {(sat1 - sat0).Gen0} gen0 / {(sat1 - sat0).Gen2} gen2 -->");
            }

            var satDelta = sat1 - sat0;
            double meanBatch = (double)satDelta.Scored / satDelta.Batches;
            double satCpuMsPerQuery = (processCpuMs + childCpuMs) / opt.Queries;
            Console.WriteLine($"<!-- {transport}, {scorers} Scorer(s), at saturation: CPU {(processCpuMs + childCpuMs) / 1000 / satSeconds:F2} cores{(child is null ? "" : $" (bench process {processCpuMs / 1000 / satSeconds:F2}, Scorer process {childCpuMs / 1000 / satSeconds:F2})")}, {(GC.GetTotalAllocatedBytes() - allocated0) / 1024.0 / opt.Queries:F0} KiB allocated per query ({(child is null ? "whole process" : "bench process")}); {satDelta.ComputeMs / satDelta.Batches:F2} ms compute per batch ({satDelta.ReadoutMs / satDelta.Batches:F2} ms readout), compute busy {satDelta.ComputeMs / 1000 / satSeconds / scorers:P0} of the time -->");
            var half0 = await stats();
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            double childHalf0 = child?.CpuSeconds() ?? 0;
            var (gc0, gc2, pause0) = (GC.CollectionCount(0), GC.CollectionCount(2), GC.GetTotalPauseDuration());
            var wall0 = Stopwatch.GetTimestamp();
            var threads0 = ThreadAccounting.Snapshot();
            var childHalfThreads0 = child?.Threads();
            var half = await OpenLoopAsync(producer, collector, queries, "half", opt.Rate > 0 ? opt.Rate : saturation.PerSecond / 2, opt.HalfSeconds);
            double halfSeconds = Stopwatch.GetElapsedTime(wall0).TotalSeconds;
            Console.WriteLine($"<!-- {transport}, {scorers} Scorer(s), at half, threads{(child is null ? "" : " of the bench process")} (cores used / cores waiting for a CPU): {ThreadAccounting.Describe(threads0, ThreadAccounting.Snapshot(), halfSeconds)} -->");
            if (child is not null)
            {
                Console.WriteLine($"<!-- {transport}, at half, threads of the Scorer process: {ThreadAccounting.Describe(childHalfThreads0!, child.Threads(), halfSeconds)} -->");
            }

            if (flight is not null)
            {
                Console.WriteLine($"<!-- {transport}, {scorers} Scorer(s), at half: {await flight.SummariseAsync("half-", collector.Count("half-"))} -->");
            }

            var halfDelta = await stats() - half0;
            double meanBatchHalf = (double)halfDelta.Scored / halfDelta.Batches;
            Console.WriteLine($"<!-- {transport}, {scorers} Scorer(s), at half, the Scorer's {(child is null ? "(whole) process" : "process")}: {halfDelta.Describe(collector.Count("half-"))}; the slowest 1 % of queries: {half.Tail} -->");
            Console.WriteLine($"<!-- {transport}, {scorers} Scorer(s), at half: CPU {((Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds + (child?.CpuSeconds() ?? 0) - childHalf0) / halfSeconds:F2} cores, GC {GC.CollectionCount(0) - gc0} gen0 / {GC.CollectionCount(2) - gc2} gen2, paused {(GC.GetTotalPauseDuration() - pause0).TotalMilliseconds:F0} ms ({(child is null ? "whole process" : "bench process")}); {halfDelta.ComputeMs / halfDelta.Batches:F2} ms compute ({halfDelta.ReadoutMs / halfDelta.Batches:F2} readout) and {halfDelta.PublishMs / halfDelta.Batches:F2} ms publish per batch; batcher busy {halfDelta.ComputeMs / 1000 / halfSeconds / scorers:P0} of the time -->");
            // Bare compute right after, in the same process and conditions, on the batch size the Scorers formed.
            var (bare, _, bareCpuMs) = Bare(model, queries, Math.Max(1, (int)Math.Round(meanBatch)), opt.Queries, opt.Concurrent);
            Console.WriteLine($"<!-- {transport}, {scorers} Scorer(s), CPU time per query at saturation: {(child is null ? "whole process" : "both processes")} {satCpuMsPerQuery:F2} ms (load generator, reader, brokers and clients included; of which the Scorer's readout {satDelta.ReadoutMs / satDelta.Scored:F2} ms wall) vs bare {bareCpuMs:F2} ms at the same batch: +{100 * (satCpuMsPerQuery / bareCpuMs - 1):F0} % -->");
            Console.WriteLine($"<!-- {transport}, {scorers} Scorer(s), batcher thread CPU per query at saturation (validate, readout, top-k, encode, issue produces): {satDelta.BatchCpuMs / satDelta.Scored:F3} ms vs bare readout {bareCpuMs:F3} ms at the same batch ({100 * (satDelta.BatchCpuMs / satDelta.Scored / bareCpuMs - 1):F1} %) -->");
            if (child is not null)
            {
                double scorerMs = childCpuMs / opt.Queries;
                double jitMs = childJitMs / opt.Queries;
                Console.WriteLine($"<!-- {transport}, CPU per query by component at saturation: Scorer process {scorerMs:F3} ms vs bare readout {bareCpuMs:F3} ms (Scorer's own overhead {scorerMs - bareCpuMs:F3} ms = {100 * (scorerMs / bareCpuMs - 1):F1} % of the bare compute; without its JIT tiering thread, a start-up cost, {scorerMs - jitMs - bareCpuMs:F3} ms = {100 * ((scorerMs - jitMs) / bareCpuMs - 1):F1} %); bench process (load generator, reader, 3 mock brokers) {processCpuMs / opt.Queries:F3} ms -->");
            }

            return new RunResult(saturation, half, meanBatch, meanBatchHalf, bare, model);
        }
        finally
        {
            if (child is not null)
            {
                await child.DisposeAsync();
            }

            foreach (var h in hosts)
            {
                await h.StopAsync();
                h.Dispose();
            }

            if (log is IAsyncDisposable d)
            {
                await d.DisposeAsync();
            }

            cluster?.Dispose();
        }
    }

    /// <summary>At most <paramref name="window"/> queries in flight: a new one is produced as an attribution comes back.</summary>
    private static async Task<Phase> ClosedLoopAsync(IEventProducer producer, Collector collector, float[] queries, string tag, int count, int window)
    {
        using var slots = new SemaphoreSlim(window);
        collector.Begin(tag, count, () => slots.Release());
        var sends = new List<Task>(count);
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
        {
            await slots.WaitAsync();
            sends.Add(Produce(producer, collector, queries, tag, i));
        }

        await Task.WhenAll(sends);
        await collector.Done.WaitAsync(TimeSpan.FromMinutes(5));
        return collector.Summarise(count, watch.Elapsed);
    }

    /// <summary>Queries at a fixed rate, whatever comes back (latency at a load the Scorers can sustain).</summary>
    private static async Task<Phase> OpenLoopAsync(IEventProducer producer, Collector collector, float[] queries, string tag, double rate, double seconds)
    {
        int count = Math.Max(100, (int)(rate * seconds));
        collector.Begin(tag, count, null);
        var sends = new List<Task>(count);
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
        {
            var due = TimeSpan.FromSeconds(i / rate);
            if (due - watch.Elapsed is { TotalMilliseconds: > 1 } ahead)
            {
                await Task.Delay(ahead);
            }

            sends.Add(Produce(producer, collector, queries, tag, i));
        }

        await Task.WhenAll(sends);
        await collector.Done.WaitAsync(TimeSpan.FromMinutes(5));
        return collector.Summarise(count, watch.Elapsed);
    }

    private static Task Produce(IEventProducer producer, Collector collector, float[] queries, string tag, int i)
    {
        var id = $"{tag}-{i:D6}";
        int image = i % 10_000;
        var query = new ModelQuery(id, $"{RunId}@{Step}", new ArraySegment<float>(queries, image * 784, 784).ToArray(), null, DateTimeOffset.UtcNow);
        collector.Started(id);
        return producer.ProduceQueryAsync(query);
    }

    /// <summary>
    /// AttributionModel.Score alone on batches of <paramref name="batch"/>, on <paramref name="threads"/> threads at once
    /// (as many as the Scorer's ConcurrentBatches, for a like-for-like reference).
    /// </summary>
    public static (double PerSecond, double MsPerBatch, double CpuMsPerQuery) Bare(AttributionModel model, float[] queries, int batch, int count, int threads = 1)
    {
        // Thread CPU time of the scoring threads themselves (not the process's: its idle brokers, JIT and GC threads).
        long Run(int n)
        {
            long cpu = 0;
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                long cpu0 = ReadoutProfile.ThreadCpuNs();
                var inputs = new float[batch * 784];
                for (int done = 0; done < n / threads; done += batch)
                {
                    int offset = (done + (t * 997)) % (10_000 - batch);
                    Array.Copy(queries, offset * 784, inputs, 0, inputs.Length);
                    model.Score(inputs, batch);
                }

                Interlocked.Add(ref cpu, ReadoutProfile.ThreadCpuNs() - cpu0);
            });
            return cpu;
        }

        Run(Math.Max(512, 4 * batch * threads)); // warm: JIT tiering of the readout's methods
        var watch = Stopwatch.StartNew();
        long cpuNs = Run(count);
        int batches = threads * ((count / threads) + batch - 1) / batch;
        // CPU time is what the contention on a shared machine inflates least: a descheduled thread uses none.
        return (batches * batch / watch.Elapsed.TotalSeconds, threads * watch.Elapsed.TotalMilliseconds / batches, cpuNs / 1e6 / (batches * batch));
    }

    /// <summary>Reads attributions (standalone reader from the start) and times each query from produce call to consume.</summary>
    internal sealed class Collector : IDisposable
    {
        private readonly ConcurrentDictionary<string, long> _started = new();
        private readonly ConcurrentDictionary<string, double> _latencyMs = new();
        private readonly ConcurrentDictionary<string, double> _scoredMs = new();
        // Wall clock (UTC) of each query's produce call, and of its attribution's record timestamp (set by the Scorer's
        // producer when it issued the produce) and consumption: the time after scoring split at the produce call.
        private readonly ConcurrentDictionary<string, DateTime> _startedUtc = new();
        private readonly ConcurrentDictionary<string, (DateTime Issued, DateTime Consumed)> _deliveredUtc = new();
        private readonly CancellationTokenSource _stop = new();
        private readonly Thread _thread;
        private readonly IEventConsumer _consumer;
        private volatile State? _state;

        public Collector(IEventLog log)
        {
            _consumer = log.CreateConsumer(new ConsumerSettings { Topics = [Topics.Attributions], Start = StartPosition.Beginning });
            _thread = new Thread(Run) { IsBackground = true, Name = "attributions" };
            _thread.Start();
        }

        public Task Done => _state!.Done.Task;

        public long Duplicates { get; private set; }

        public void Begin(string tag, int count, Action? onResult) => _state = new State(tag + "-", count, onResult);

        public void Started(string id)
        {
            _startedUtc[id] = DateTime.UtcNow;
            _started[id] = Stopwatch.GetTimestamp();
        }

        /// <summary>When the query was produced (Stopwatch timestamp), if it was.</summary>
        public bool TryGetStart(string id, out long start) => _started.TryGetValue(id, out start);

        /// <summary>Queries of the phase whose ids start with <paramref name="prefix"/> that were produced.</summary>
        public int Count(string prefix) => _started.Keys.Count(k => k.StartsWith(prefix, StringComparison.Ordinal));

        public Phase Summarise(int count, TimeSpan elapsed)
        {
            var prefix = _state!.Prefix;
            var l = _latencyMs.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(p => p.Value).Order().ToArray();
            if (l.Length != count)
            {
                throw new InvalidOperationException($"{l.Length} attributions for {count} queries");
            }

            var sc = _scoredMs.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(p => p.Value).Order().ToArray();
            // The slowest 1 %: how much of their latency came before scoring (produce, consume, lanes, batcher queue,
            // readout) and how much after (publish, acks, the reader's fetch).
            double p99 = l[(int)(0.99 * (l.Length - 1))];
            var tail = _latencyMs.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal) && p.Value >= p99).Select(p => (Total: p.Value, Scored: _scoredMs.GetValueOrDefault(p.Key))).ToArray();
            string split = string.Create(CultureInfo.InvariantCulture,
                $"{tail.Length} queries >= p99 {p99:F1} ms: mean {tail.Average(t => t.Total):F1} ms = {tail.Average(t => t.Scored):F1} ms to scored + {tail.Average(t => t.Total - t.Scored):F1} ms after") +
                "; after scoring, " + AfterScoring(prefix, p99);
            return new Phase(count / elapsed.TotalSeconds, l[(int)(0.50 * (l.Length - 1))], p99, sc[(int)(0.50 * (sc.Length - 1))], sc[(int)(0.99 * (sc.Length - 1))]) { Tail = split };
        }

        /// <summary>
        /// The time after scoring split at the Scorer's produce call (the attribution record's timestamp, ms resolution):
        /// scored → produce issued (the publish task's wait for a pool thread, encoding, the alert policy) and produce
        /// issued → consumed here (linger, the brokers, acks=all replication, this reader's fetch and wake-up); means
        /// over the slowest 1 % (latency >= <paramref name="p99"/>) and over all of the phase's queries.
        /// </summary>
        private string AfterScoring(string prefix, double p99)
        {
            var parts = _latencyMs.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal) && _deliveredUtc.ContainsKey(p.Key) && _startedUtc.ContainsKey(p.Key)).Select(p =>
            {
                var (issued, consumed) = _deliveredUtc[p.Key];
                double scoredAt = _scoredMs.GetValueOrDefault(p.Key);
                double issuedAt = (issued - _startedUtc[p.Key]).TotalMilliseconds;
                return (Total: p.Value, ToIssue: issuedAt - scoredAt, ToConsume: (consumed - issued).TotalMilliseconds);
            }).ToArray();
            var slow = parts.Where(p => p.Total >= p99).ToArray();
            return slow.Length == 0 ? "no split" : string.Create(CultureInfo.InvariantCulture,
                $"scored -> produce issued {slow.Average(p => p.ToIssue):F1} ms (all queries {parts.Average(p => p.ToIssue):F1}) + produce issued -> consumed {slow.Average(p => p.ToConsume):F1} ms (all {parts.Average(p => p.ToConsume):F1}; max {slow.Max(p => p.ToConsume):F1})");
        }

        private void Run()
        {
            while (!_stop.IsCancellationRequested)
            {
                EventRecord? r;
                try
                {
                    r = _consumer.Consume(TimeSpan.FromMilliseconds(100), _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                if (r is null)
                {
                    continue;
                }

                long now = Stopwatch.GetTimestamp();
                var consumedUtc = DateTime.UtcNow;
                var id = System.Text.Encoding.UTF8.GetString(r.Key);
                if (!_started.TryGetValue(id, out var start))
                {
                    continue;
                }

                if (!_latencyMs.TryAdd(id, Stopwatch.GetElapsedTime(start, now).TotalMilliseconds))
                {
                    Duplicates++;
                    continue;
                }

                _scoredMs[id] = EventCodecs.Attributions.Decode(r.Value).LatencyMicros / 1000.0;
                _deliveredUtc[id] = (r.Timestamp.UtcDateTime, consumedUtc);

                var s = _state;
                if (s is not null && id.StartsWith(s.Prefix, StringComparison.Ordinal))
                {
                    s.OnResult?.Invoke();
                    if (Interlocked.Increment(ref s.Seen) == s.Count)
                    {
                        s.Done.TrySetResult();
                    }
                }
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _thread.Join();
            _consumer.Dispose();
            _stop.Dispose();
        }

        private sealed class State(string prefix, int count, Action? onResult)
        {
            public string Prefix { get; } = prefix;
            public int Count { get; } = count;
            public Action? OnResult { get; } = onResult;
            public int Seen;
            public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }
}

/// <summary>
/// The downstream console (feed, ledger, SQL store in memory, Arrow Flight) on the bench's log, and one Flight
/// subscriber (DoGet, from "latest") timing each query from its produce call to its attribution's Flight delivery.
/// </summary>
internal sealed class FlightCollector : IAsyncDisposable
{
    private readonly Attribution.Downstream.Web.RunningConsole _console;
    private readonly Grpc.Net.Client.GrpcChannel _channel;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, double> _latencyMs = new();
    private readonly Task _reading;

    private FlightCollector(Attribution.Downstream.Web.RunningConsole console, Bench.Collector collector)
    {
        _console = console;
        _channel = Grpc.Net.Client.GrpcChannel.ForAddress(console.FlightUrl);
        var client = new Apache.Arrow.Flight.Client.FlightClient(_channel);
        var call = client.GetStream(new Apache.Arrow.Flight.FlightTicket(new Attribution.Downstream.Flight.AttributionFlightTicket(From: "latest").ToBytes()), null, null, _stop.Token);
        _reading = Task.Run(async () =>
        {
            using (call)
            {
                try
                {
                    while (await call.ResponseStream.MoveNext(_stop.Token))
                    {
                        var now = Stopwatch.GetTimestamp();
                        var batch = call.ResponseStream.Current;
                        var ids = (Apache.Arrow.StringArray)batch.Column("query_id");
                        for (int i = 0; i < batch.Length; i++)
                        {
                            var id = ids.GetString(i);
                            if (collector.TryGetStart(id, out var start))
                            {
                                _latencyMs.TryAdd(id, Stopwatch.GetElapsedTime(start, now).TotalMilliseconds);
                            }
                        }
                    }
                }
                catch (Exception e) when (e is OperationCanceledException || (e is Grpc.Core.RpcException r && r.StatusCode == Grpc.Core.StatusCode.Cancelled))
                {
                }
            }
        });
    }

    public static async Task<FlightCollector> StartAsync(IEventLog log, Bench.Collector collector)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Downstream:StorePath"] = ":memory:",
        }).Build();
        var console = await Attribution.Downstream.Web.ConsoleServer.StartAsync(new Attribution.Downstream.Web.ConsoleSettings { Port = 0, FlightPort = 0 }, configuration, s =>
        {
            s.AddSingleton(log);
            s.AddSingleton(log.CreateProducer());
        }, logging => logging.SetMinimumLevel(LogLevel.Warning));
        var flight = new FlightCollector(console, collector);
        var subscriptions = console.App.Services.GetRequiredService<Attribution.Downstream.Flight.FlightSubscriptions>();
        var deadline = Stopwatch.StartNew();
        while (subscriptions.Active == 0 && deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(10);
        }

        return flight;
    }

    /// <summary>Waits (up to 30 s) for the phase's deliveries, then p50 / p99 from produce to Flight delivery.</summary>
    public async Task<string> SummariseAsync(string prefix, int expected)
    {
        var waited = Stopwatch.StartNew();
        List<double> l;
        while ((l = [.. _latencyMs.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(p => p.Value)]).Count < expected && waited.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(50);
        }

        l.Sort();
        return l.Count == 0 ? "Flight DoGet: nothing delivered"
            : $"query produced -> Arrow Flight DoGet delivery (console on the same log): p50 {l[(int)(0.50 * (l.Count - 1))]:F1} / p99 {l[(int)(0.99 * (l.Count - 1))]:F1} ms, {l.Count} of {expected} delivered";
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _reading.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _channel.Dispose();
        await _console.DisposeAsync();
        _stop.Dispose();
    }
}
