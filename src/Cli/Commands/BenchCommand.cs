using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Attribution.Engine;
using Attribution.Engine.Data;
using Attribution.Engine.Training;

namespace Attribution.Cli.Commands;

internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Benchmarks (not tests). 'bench mlp-epoch' times one MLP training epoch against PyTorch; 'bench gpt' the transformer; 'bench spans' the exact-span index; 'bench lm-methods' every attribution method on a GPT run; 'bench lm-lds' the language-model LDS table; 'bench simscale' attribution precompute cost against N; 'bench contamination-stages' the per-query cost of the Scorer's contamination stages.");
        command.Subcommands.Add(CreateMlpEpoch());
        command.Subcommands.Add(GptBench.Create());
        command.Subcommands.Add(SpanBench.Create());
        command.Subcommands.Add(LmMethodsBench.Create());
        command.Subcommands.Add(LmLdsBench.Create());
        command.Subcommands.Add(SimScaleBench.Create());
        command.Subcommands.Add(SimDiagBench.Create());
        command.Subcommands.Add(ContaminationStagesBench.Create());
        return command;
    }

    private static Command CreateMlpEpoch()
    {
        var epochs = new Option<int>("--epochs") { Description = "Epochs per side; the median is reported.", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads") { Description = "Threads for both sides (OpenBLAS here; torch.set_num_threads + OMP/OpenBLAS there).", DefaultValueFactory = _ => 1 };
        var python = new Option<string>("--python") { Description = "Python with torch for the peer.", DefaultValueFactory = _ => "/usr/bin/python3" };
        var noPeer = new Option<bool>("--no-peer") { Description = "Skip the PyTorch peer." };
        var command = new Command("mlp-epoch", "One epoch of the 784-128-64-10 MLP on 60,000 FashionMNIST images, batch 128, SGD recipe of spec 9a: ours vs PyTorch, plus GEMM rates.");
        foreach (var o in new Option[] { epochs, threads, python, noPeer })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse => Run(parse.GetValue(epochs), parse.GetValue(threads), parse.GetValue(python)!, parse.GetValue(noPeer)));
        return command;
    }

    private static int Run(int epochs, int threads, string python, bool noPeer)
    {
        if (epochs < 1 || threads < 1)
        {
            Console.Error.WriteLine($"--epochs and --threads must be at least 1 (got {epochs}, {threads}).");
            return 2;
        }

        Blas.SetThreads(threads);
        var data = FashionMnist.Load();
        var train = data.Train.All(Normalization.FashionMnist);
        var recipe = TrainingRecipe.DefaultMlp(train.Ids, [], epochs, seed: 0);
        Console.WriteLine($"mlp-epoch: 784-128-64-10, {train.Count} images, batch {recipe.BatchSize}, {recipe.StepsPerEpoch} steps/epoch, {threads} thread(s), OpenBLAS native: {Blas.IsNative}");

        // Warm-up epoch (JIT tiering, page faults), not timed.
        MlpTrainer.Train(TrainingRecipe.DefaultMlp(train.Ids[..(128 * 50)], [], 1), train, null);
        var profile = new GemmProfile();
        var epochTimes = new List<double>();
        long last = Stopwatch.GetTimestamp();
        var progress = InlineProgress.Create(p =>
        {
            if (p.Step % recipe.StepsPerEpoch == 0)
            {
                long now = Stopwatch.GetTimestamp();
                epochTimes.Add(Stopwatch.GetElapsedTime(last, now).TotalSeconds);
                last = now;
            }
        });
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        last = Stopwatch.GetTimestamp();
        var result = MlpTrainer.Train(recipe, train, null, progress, default, profile);
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        double ours = Median(epochTimes);
        Console.WriteLine($"ours:    epochs {string.Join(", ", epochTimes.Select(t => t.ToString("F3", CultureInfo.InvariantCulture)))} s; median {ours:F3} s; final train loss {result.Metrics.FinalTrainLoss:F4}; allocated {allocated / 1024.0 / 1024.0:F1} MiB over the run (data gather buffers + model, not per step)");
        double gemmShare = profile.Seconds / epochTimes.Sum();
        Console.WriteLine($"  GEMM inside the training step: {profile.Calls} calls, {profile.Flops / 1e9:F1} GFLOP, {profile.Seconds:F3} s = {profile.GflopsPerSecond:F1} GFLOP/s ({gemmShare:P0} of the epoch time)");
        var (alone, aloneShapes) = GemmAlone();
        Console.WriteLine($"  OpenBLAS sgemm alone on the same {aloneShapes} shapes (B=128, same mix): {alone:F1} GFLOP/s");

        if (noPeer)
        {
            return 0;
        }

        var peer = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "bench", "peers", "torch_mlp_epoch.py");
        if (!File.Exists(peer))
        {
            peer = Path.Combine(Environment.CurrentDirectory, "bench", "peers", "torch_mlp_epoch.py");
        }

        var psi = new ProcessStartInfo(python, [peer, "--threads", threads.ToString(CultureInfo.InvariantCulture), "--epochs", epochs.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var v in new[] { "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS" })
        {
            psi.Environment[v] = threads.ToString(CultureInfo.InvariantCulture);
        }

        using var proc = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {python}.");
        var stdout = proc.StandardOutput.ReadToEnd();
        proc.WaitForExit();
        if (proc.ExitCode != 0)
        {
            Console.Error.WriteLine($"The PyTorch peer ({python} {peer}) failed with exit code {proc.ExitCode}; is python3-torch installed?");
            return 1;
        }

        using var doc = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var torchTimes = doc.RootElement.GetProperty("epoch_seconds").EnumerateArray().Select(e => e.GetDouble()).ToList();
        double theirs = Median(torchTimes);
        Console.WriteLine($"pytorch {doc.RootElement.GetProperty("torch").GetString()}: epochs {string.Join(", ", torchTimes.Select(t => t.ToString("F3", CultureInfo.InvariantCulture)))} s; median {theirs:F3} s");
        Console.WriteLine($"ratio ours/pytorch = {ours / theirs:F2} (median epoch, {threads} thread(s))");
        return 0;
    }

    // The GEMM shapes of one B=128 training step, timed alone through Blas.Gemm.
    private static (double Gflops, int Shapes) GemmAlone()
    {
        (bool Ta, bool Tb, int M, int N, int K)[] shapes =
        [
            (false, true, 128, 128, 784), (false, true, 128, 64, 128), (false, true, 128, 10, 64),
            (true, false, 10, 64, 128), (false, false, 128, 64, 10),
            (true, false, 64, 128, 128), (false, false, 128, 128, 64),
            (true, false, 128, 784, 128),
        ];
        var rng = new Rng(1);
        var bufs = shapes.Select(s => (A: Fill(rng, s.M * s.K), B: Fill(rng, s.K * s.N), C: new float[s.M * s.N])).ToArray();
        double flops = 0;
        for (int rep = 0; rep < 50; rep++)
        {
            Step();
        }

        long start = Stopwatch.GetTimestamp();
        const int reps = 400;
        for (int rep = 0; rep < reps; rep++)
        {
            flops += Step();
        }

        return (flops / Stopwatch.GetElapsedTime(start).TotalSeconds / 1e9, shapes.Length);

        double Step()
        {
            double f = 0;
            for (int i = 0; i < shapes.Length; i++)
            {
                var s = shapes[i];
                Blas.Gemm(s.Ta, s.Tb, s.M, s.N, s.K, 1f, bufs[i].A, bufs[i].B, 0f, bufs[i].C);
                f += 2.0 * s.M * s.N * s.K;
            }

            return f;
        }
    }

    private static float[] Fill(Rng rng, int n)
    {
        var a = new float[n];
        rng.FillUniform(a, -1f, 1f);
        return a;
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length == 0 ? double.NaN : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
