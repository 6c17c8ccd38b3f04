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

    /// <summary>Gen-1 collections of that process.</summary>
    public int Gen1 { get; init; }

    /// <summary>Time that process's threads were paused by the GC, ms.</summary>
    public double PauseMs { get; init; }

    /// <summary>Time queries waited for the batcher (queue + window), summed, ms (<see cref="ScorerMetrics.QueueWaitTime"/>).</summary>
    public double QueueWaitMs { get; init; }

    /// <summary>That process's <see cref="PoolSampler"/> window since the previous read.</summary>
    public PoolWindow Pool { get; init; } = new(0, 0, 0, 0, 0, 0);

    public static ScorerStats Of(IEnumerable<ScorerWorker> workers)
    {
        var w = workers.ToList();
        return new ScorerStats(w.Sum(x => x.Metrics.Batches), w.Sum(x => x.Metrics.QueriesScored), w.Sum(x => x.Metrics.ComputeTime.TotalMilliseconds),
            w.Sum(x => x.Metrics.ReadoutTime.TotalMilliseconds), w.Sum(x => x.Metrics.PublishTime.TotalMilliseconds), w.Sum(x => x.Metrics.BatchCpuTime.TotalMilliseconds))
        {
            Gen1 = GC.CollectionCount(1),
            PauseMs = GC.GetTotalPauseDuration().TotalMilliseconds,
            QueueWaitMs = w.Sum(x => x.Metrics.QueueWaitTime.TotalMilliseconds),
            Pool = PoolSampler.TakeWindow(),
        };
    }

    public static ScorerStats operator -(ScorerStats a, ScorerStats b) =>
        new(a.Batches - b.Batches, a.Scored - b.Scored, a.ComputeMs - b.ComputeMs, a.ReadoutMs - b.ReadoutMs, a.PublishMs - b.PublishMs, a.BatchCpuMs - b.BatchCpuMs)
        {
            Allocated = a.Allocated - b.Allocated,
            Gen0 = a.Gen0 - b.Gen0,
            Gen1 = a.Gen1 - b.Gen1,
            Gen2 = a.Gen2 - b.Gen2,
            PauseMs = a.PauseMs - b.PauseMs,
            QueueWaitMs = a.QueueWaitMs - b.QueueWaitMs,
            Pool = a.Pool, // a window already: what happened since b was read
        };

    /// <summary>One line on the GC, the thread pool and the batcher's queue over a phase of <paramref name="queries"/> queries.</summary>
    public string Describe(int queries) => string.Create(CultureInfo.InvariantCulture,
        $"allocated {Allocated / 1024.0 / Math.Max(1, Scored):F1} KiB per query scored, GC {Gen0} gen0 / {Gen1} gen1 / {Gen2} gen2 (a gen-N collection counts in every lower generation too), paused {PauseMs:F1} ms in all; " +
        $"waited for the batcher (queue + window) {QueueWaitMs / Math.Max(1, Scored):F2} ms per query; {Pool.Describe()} ({queries} queries)");
}

/// <summary>What <see cref="PoolSampler"/> saw over a window.</summary>
/// <param name="Samples">Samples taken (one per ~2 ms).</param>
/// <param name="PendingSum">Sum of <see cref="ThreadPool.PendingWorkItemCount"/> over the samples.</param>
/// <param name="PendingMax">The largest sample.</param>
/// <param name="LateMsSum">Sum over samples of how late the sampler's 2 ms sleep woke.</param>
/// <param name="LateMaxMs">The latest wake-up.</param>
/// <param name="LateOver5">Wake-ups more than 5 ms late.</param>
internal sealed record PoolWindow(long Samples, long PendingSum, long PendingMax, double LateMsSum, double LateMaxMs, long LateOver5)
{
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"thread pool queue mean {(double)PendingSum / Math.Max(1, Samples):F2} / max {PendingMax} work items; a 2 ms sleeper woke {LateMsSum / Math.Max(1, Samples):F2} ms late on average, max {LateMaxMs:F1} ms, {LateOver5} times > 5 ms of {Samples}");
}

/// <summary>
/// A thread of its own that wakes every 2 ms and records the thread pool's queue length
/// (<see cref="ThreadPool.PendingWorkItemCount"/>: starvation shows as a queue that does not drain) and how late it woke
/// (the run-queue delay any thread of this process sees: CPU contention, measured from inside).
/// </summary>
internal static class PoolSampler
{
    private static readonly Lock Gate = new();
    private static Thread? _thread;
    private static long _samples, _pendingSum, _pendingMax, _lateOver5;
    private static double _lateMsSum, _lateMaxMs;

    public static void Start()
    {
        lock (Gate)
        {
            if (_thread is not null)
            {
                return;
            }

            _thread = new Thread(Run) { IsBackground = true, Name = "pool-sampler" };
            _thread.Start();
        }
    }

    /// <summary>The window since the previous call (counters reset).</summary>
    public static PoolWindow TakeWindow()
    {
        lock (Gate)
        {
            var w = new PoolWindow(_samples, _pendingSum, _pendingMax, _lateMsSum, _lateMaxMs, _lateOver5);
            (_samples, _pendingSum, _pendingMax, _lateOver5, _lateMsSum, _lateMaxMs) = (0, 0, 0, 0, 0, 0);
            return w;
        }
    }

    private static void Run()
    {
        while (true)
        {
            long t0 = Stopwatch.GetTimestamp();
            Thread.Sleep(2);
            double late = Math.Max(0, Stopwatch.GetElapsedTime(t0).TotalMilliseconds - 2);
            long pending = ThreadPool.PendingWorkItemCount;
            lock (Gate)
            {
                _samples++;
                _pendingSum += pending;
                _pendingMax = Math.Max(_pendingMax, pending);
                _lateMsSum += late;
                _lateMaxMs = Math.Max(_lateMaxMs, late);
                _lateOver5 += late > 5 ? 1 : 0;
            }
        }
    }
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
            PoolSampler.Start();
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
