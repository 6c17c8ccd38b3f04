using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Attribution.Scorer;
using Attribution.Transport.Kafka;
using Microsoft.Extensions.DependencyInjection;

/// <summary>The Scorers' counters the bench reads (sums over instances); differences give a phase's share.</summary>
internal sealed record ScorerStats(long Batches, long Scored, double ComputeMs, double ReadoutMs, double PublishMs, double BatchCpuMs)
{
    /// <summary>Bytes allocated by the process the Scorer runs in (meaningful for a Scorer process of its own).</summary>
    public long Allocated { get; init; } = GC.GetTotalAllocatedBytes();

    /// <summary>Gen-0 and gen-2 collections of that process.</summary>
    public int Gen0 { get; init; } = GC.CollectionCount(0);

    /// <summary>Gen-2 collections of that process.</summary>
    public int Gen2 { get; init; } = GC.CollectionCount(2);

    public static ScorerStats Of(IEnumerable<ScorerWorker> workers)
    {
        var w = workers.ToList();
        return new ScorerStats(w.Sum(x => x.Metrics.Batches), w.Sum(x => x.Metrics.QueriesScored), w.Sum(x => x.Metrics.ComputeTime.TotalMilliseconds),
            w.Sum(x => x.Metrics.ReadoutTime.TotalMilliseconds), w.Sum(x => x.Metrics.PublishTime.TotalMilliseconds), w.Sum(x => x.Metrics.BatchCpuTime.TotalMilliseconds));
    }

    public static ScorerStats operator -(ScorerStats a, ScorerStats b) =>
        new(a.Batches - b.Batches, a.Scored - b.Scored, a.ComputeMs - b.ComputeMs, a.ReadoutMs - b.ReadoutMs, a.PublishMs - b.PublishMs, a.BatchCpuMs - b.BatchCpuMs)
        {
            Allocated = a.Allocated - b.Allocated,
            Gen0 = a.Gen0 - b.Gen0,
            Gen2 = a.Gen2 - b.Gen2,
        };
}

/// <summary>
/// One Scorer in a child process of the bench (<c>--scorer-process 1</c>), on the parent's mock Kafka cluster (loopback
/// TCP), configured exactly as the in-process Scorers (<see cref="Bench.StartScorerAsync"/>). Its CPU time, every thread
/// of it (librdkafka clients, lanes, batcher, publishing, GC, BLAS), is read from <c>/proc/&lt;pid&gt;</c>, apart from the
/// load generator, the attribution reader and the three mock brokers, which stay in the parent. The child answers
/// "stats" on its standard input with its counters (one JSON line) and stops on "stop" or end of input.
/// </summary>
internal sealed class ScorerProcess : IAsyncDisposable
{
    /// <summary>First argument that makes the bench serve as the child.</summary>
    public const string Flag = "--serve-scorer";

    private readonly Process _process;
    private readonly SemaphoreSlim _gate = new(1);

    private ScorerProcess(Process process) => _process = process;

    /// <summary>Starts the child and waits (up to 3 minutes) until its model is built from the probes topic.</summary>
    public static async Task<ScorerProcess> StartAsync(string bootstrapServers, Args opt)
    {
        var path = Environment.ProcessPath ?? throw new InvalidOperationException("no process path to start the Scorer process from");
        string[] options = [Flag, bootstrapServers, "--max-batch", Invariant(opt.MaxBatch), "--concurrent", Invariant(opt.Concurrent), "--batch-window", Invariant(opt.BatchWindowMs),
            "--linger", Invariant(opt.LingerMs), "--fetch-wait", Invariant(opt.FetchWaitMs), "--nagle-off", opt.NagleOff ? "1" : "0"];
        // Run as the parent was: the app host directly, or 'dotnet PipelineBench.dll'.
        string[] command = Path.GetFileNameWithoutExtension(path) == "dotnet" ? [path, Assembly.GetEntryAssembly()!.Location, .. options] : [path, .. options];
        // Pinned: taskset sets the CPUs and execs the bench, so the child's pid (and every thread it starts) keeps them.
        var start = opt.Pin is { } pin ? new ProcessStartInfo("taskset", ["-c", pin.Scorer, .. command]) : new ProcessStartInfo(command[0], command[1..]);
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.UseShellExecute = false;
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {path}");
        var child = new ScorerProcess(process);
        var ready = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(3));
        if (ready != "ready")
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"the Scorer process did not get ready: '{ready}' (exit {(process.HasExited ? process.ExitCode : -1)})");
        }

        return child;
    }

    /// <summary>The child's process id.</summary>
    public int Pid => _process.Id;

    /// <summary>CPU seconds the child used so far (user + system, all its threads; /proc/&lt;pid&gt;/stat).</summary>
    public double CpuSeconds()
    {
        var stat = File.ReadAllText($"/proc/{Pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    /// <summary>The child's threads grouped by name (<see cref="ThreadAccounting"/>).</summary>
    public Dictionary<string, (double CpuSeconds, double WaitSeconds)> Threads() => ThreadAccounting.Snapshot(Pid);

    /// <summary>The child's Scorer counters now.</summary>
    public async Task<ScorerStats> StatsAsync()
    {
        await _gate.WaitAsync();
        try
        {
            await _process.StandardInput.WriteLineAsync("stats");
            await _process.StandardInput.FlushAsync();
            var line = await _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30))
                ?? throw new InvalidOperationException("the Scorer process ended");
            return JsonSerializer.Deserialize<ScorerStats>(line) ?? throw new InvalidOperationException($"the Scorer process answered '{line}'");
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _process.StandardInput.WriteLineAsync("stop");
            _process.StandardInput.Close();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception e) when (e is TimeoutException or IOException or InvalidOperationException)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
        _gate.Dispose();
    }

    /// <summary>The child: <c>--serve-scorer BOOTSTRAP [bench options]</c>.</summary>
    public static async Task ServeAsync(string[] args)
    {
        var opt = Args.Parse(args[1..]);
        // Standard output carries the protocol; everything else written to the console (logs) goes to standard error.
        await using var output = new StreamWriter(Console.OpenStandardOutput());
        Console.SetOut(Console.Error);
        KafkaLibrary.EnsureLoaded();
        var log = Bench.KafkaLog(args[0], opt);
        await using (log)
        {
            using var host = await Bench.StartScorerAsync(log, opt);
            var worker = host.Services.GetRequiredService<ScorerWorker>();
            await Bench.WaitLoadedAsync([worker]);
            await output.WriteLineAsync("ready");
            await output.FlushAsync();
            while (await Console.In.ReadLineAsync() is { } command && command != "stop")
            {
                if (command == "stats")
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(ScorerStats.Of([worker])));
                    await output.FlushAsync();
                }
            }

            // The parent is gone or done: stop, but never outlive it for long (its mock brokers may be gone too).
            _ = Task.Delay(TimeSpan.FromSeconds(20)).ContinueWith(_ => Environment.Exit(3), TaskScheduler.Default);
            await host.StopAsync();
        }
    }

    private static string Invariant(double v) => v.ToString(CultureInfo.InvariantCulture);
}
