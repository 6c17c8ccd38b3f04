using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Attribution.Engine;
using Attribution.Engine.Models;
using Attribution.Engine.Optim;
using Attribution.Engine.Training;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>bench gpt</c>: the transformer against the plain-PyTorch GPT-2 of <c>bench/peers/gpt2_torch.py</c>, one thread each,
/// in alternating rounds: (1) interop — a model trained here, saved in the Hugging Face layout, is read by the PyTorch
/// reference and must give the same logits (max |diff| ≤ 1e-4); (2) a training step of the demo's configuration
/// (<see cref="GptRecipe"/> defaults: batch 16 windows of 65 byte tokens, AdamW); (3) the forward pass of a GPT-2-small-sized
/// model (124M parameters, random weights).
/// </summary>
internal static class GptBench
{
    public static Command Create()
    {
        var threads = new Option<int>("--threads") { Description = "Threads for both sides.", DefaultValueFactory = _ => 1 };
        var rounds = new Option<int>("--rounds") { Description = "Alternating rounds (ours, then PyTorch) per measurement.", DefaultValueFactory = _ => 3 };
        var steps = new Option<int>("--steps") { Description = "Timed training steps per round and side.", DefaultValueFactory = _ => 20 };
        var forwards = new Option<int>("--forwards") { Description = "Timed GPT-2-small forward passes per round and side.", DefaultValueFactory = _ => 2 };
        var batch = new Option<int>("--batch") { Description = "GPT-2-small forward batch.", DefaultValueFactory = _ => 1 };
        var seq = new Option<int>("--seq") { Description = "GPT-2-small forward sequence length.", DefaultValueFactory = _ => 128 };
        var python = new Option<string>("--python") { Description = "Python with torch for the peer.", DefaultValueFactory = _ => "/usr/bin/python3" };
        var command = new Command("gpt", "The GPT against PyTorch (1 thread each, alternating): HF-layout interop of a model trained here, a demo training step, a GPT-2-small forward pass.");
        foreach (var o in new Option[] { threads, rounds, steps, forwards, batch, seq, python })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse => Run(parse.GetValue(threads), parse.GetValue(rounds), parse.GetValue(steps), parse.GetValue(forwards),
            parse.GetValue(batch), parse.GetValue(seq), parse.GetValue(python)!));
        return command;
    }

    private static int Run(int threads, int rounds, int steps, int forwards, int batch, int seq, string python)
    {
        if (threads < 1 || rounds < 1 || steps < 1 || forwards < 1 || batch < 1 || seq is < 2 or > 1024)
        {
            Console.Error.WriteLine("--threads, --rounds, --steps, --forwards, --batch must be >= 1 and --seq in 2..1024.");
            return 2;
        }

        Blas.SetThreads(threads);
        var peer = Peer();
        Console.WriteLine($"bench gpt: {threads} thread(s), OpenBLAS native: {Blas.IsNative}, peer {peer}");
        if (!Interop(python, peer, threads))
        {
            return 1;
        }

        var recipe = new GptRecipe();
        var demo = recipe.Config;
        int window = demo.Context + 1;
        Console.WriteLine($"(a) training step, demo config {demo}, batch {recipe.BatchSize} x {window} tokens, AdamW; {steps} steps per round");
        var model = new Gpt(demo, seed: 0);
        var optimizer = new AdamW(model.Parameters, weightDecay: recipe.WeightDecay);
        var rng = new Rng(1);
        var tokens = new int[recipe.BatchSize * window];
        void Step()
        {
            for (int i = 0; i < tokens.Length; i++)
            {
                tokens[i] = rng.NextInt(demo.VocabSize);
            }

            model.ZeroGrad();
            model.LossAndBackward(tokens, recipe.BatchSize, window);
            optimizer.Step(recipe.LearningRate);
        }

        var (oursStep, torchStep) = Alternate(rounds, steps, 3, Step, python, peer, threads,
            ["--config", "demo", "--mode", "train", "--batch", recipe.BatchSize.ToString(CultureInfo.InvariantCulture), "--seq", demo.Context.ToString(CultureInfo.InvariantCulture)]);
        Report("training step", oursStep, torchStep);

        var small = GptConfig.Gpt2Small;
        var big = new Gpt(small, seed: 0);
        Console.WriteLine($"(b) forward pass, GPT-2-small shape ({big.ParameterCount / 1e6:F1}M parameters, random weights), batch {batch} x {seq} tokens; {forwards} passes per round");
        var ids = new int[batch * seq];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = rng.NextInt(small.VocabSize);
        }

        var (oursFwd, torchFwd) = Alternate(rounds, forwards, 1, () => big.Logits(ids, batch, seq), python, peer, threads,
            ["--config", "gpt2-small", "--mode", "forward", "--batch", batch.ToString(CultureInfo.InvariantCulture), "--seq", seq.ToString(CultureInfo.InvariantCulture)]);
        Report("GPT-2-small forward", oursFwd, torchFwd);
        return 0;
    }

    // A model trained here (30 steps of the demo recipe on random tokens), saved with GptCheckpoint, read by the peer.
    private static bool Interop(string python, string peer, int threads)
    {
        var dir = Directory.CreateTempSubdirectory("gpt-interop-").FullName;
        try
        {
            var config = new GptRecipe().Config;
            var model = new Gpt(config, seed: 7);
            var optimizer = new AdamW(model.Parameters);
            var rng = new Rng(8);
            var tokens = new int[8 * (config.Context + 1)];
            for (int step = 0; step < 30; step++)
            {
                for (int i = 0; i < tokens.Length; i++)
                {
                    tokens[i] = rng.NextInt(64) + 32;
                }

                model.ZeroGrad();
                model.LossAndBackward(tokens, 8, config.Context + 1);
                optimizer.Step(3e-3f);
            }

            GptCheckpoint.Save(dir, model);
            var sequence = Enumerable.Range(0, config.Context).Select(_ => rng.NextInt(config.VocabSize)).ToArray();
            var logits = model.Logits(sequence, 1, sequence.Length);
            var expect = Path.Combine(dir, "expect.json");
            File.WriteAllText(expect, JsonSerializer.Serialize(new { tokens = sequence, logits }));
            var line = RunPeer(python, peer, threads, ["logits", dir, "--expect", expect], out int rc);
            using var doc = JsonDocument.Parse(line);
            double diff = doc.RootElement.GetProperty("max_abs_diff").GetDouble();
            Console.WriteLine($"interop: model trained here (30 AdamW steps), saved as HF GPT-2 ({GptCheckpoint.ConfigFile} + {GptCheckpoint.WeightsFile}), read by PyTorch {doc.RootElement.GetProperty("torch").GetString()}: max |logit diff| over {sequence.Length} x {config.VocabSize} = {diff:E2} ({(rc == 0 ? "PASS" : "FAIL")}, limit 1e-4)");
            return rc == 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Wall-clock and process CPU seconds per repetition, for each side. On a shared machine the CPU time is the steadier
    // measure of the work done (waiting for a core is not counted); both are reported.
    private sealed record Times(List<double> Wall, List<double> Cpu);

    private static (Times Ours, Times Torch) Alternate(int rounds, int reps, int warmup, Action work, string python, string peer, int threads, string[] args)
    {
        var ours = new Times([], []);
        var theirs = new Times([], []);
        using var self = Process.GetCurrentProcess();
        for (int w = 0; w < warmup; w++)
        {
            work();
        }

        for (int r = 0; r < rounds; r++)
        {
            var round = new Times([], []);
            for (int i = 0; i < reps; i++)
            {
                self.Refresh();
                var c0 = self.TotalProcessorTime;
                long t0 = Stopwatch.GetTimestamp();
                work();
                round.Wall.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
                self.Refresh();
                round.Cpu.Add((self.TotalProcessorTime - c0).TotalSeconds);
            }

            ours.Wall.AddRange(round.Wall);
            ours.Cpu.AddRange(round.Cpu);
            var line = RunPeer(python, peer, threads, ["bench", .. args, "--reps", reps.ToString(CultureInfo.InvariantCulture), "--warmup", warmup.ToString(CultureInfo.InvariantCulture), "--threads", threads.ToString(CultureInfo.InvariantCulture)], out int rc);
            if (rc != 0)
            {
                throw new InvalidOperationException($"The PyTorch peer failed (exit {rc}).");
            }

            using var doc = JsonDocument.Parse(line);
            var t = new Times(
                doc.RootElement.GetProperty("seconds").EnumerateArray().Select(e => e.GetDouble()).ToList(),
                doc.RootElement.GetProperty("cpu_seconds").EnumerateArray().Select(e => e.GetDouble()).ToList());
            theirs.Wall.AddRange(t.Wall);
            theirs.Cpu.AddRange(t.Cpu);
            Console.WriteLine($"  round {r + 1}: ours median {Median(round.Wall) * 1e3:F1} ms wall / {Median(round.Cpu) * 1e3:F1} ms CPU, pytorch {Median(t.Wall) * 1e3:F1} / {Median(t.Cpu) * 1e3:F1} ms");
        }

        return (ours, theirs);
    }

    private static void Report(string what, Times ours, Times theirs)
    {
        double ow = Median(ours.Wall), tw = Median(theirs.Wall), oc = Median(ours.Cpu), tc = Median(theirs.Cpu);
        Console.WriteLine($"{what}: medians (n = {ours.Wall.Count} each) ours {ow * 1e3:F1} ms wall / {oc * 1e3:F1} ms CPU, pytorch {tw * 1e3:F1} / {tc * 1e3:F1} ms; ratio ours/pytorch = {ow / tw:F2} wall, {oc / tc:F2} CPU");
    }

    private static string RunPeer(string python, string peer, int threads, string[] args, out int exitCode)
    {
        var psi = new ProcessStartInfo(python, [peer, .. args]) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var v in new[] { "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS" })
        {
            psi.Environment[v] = threads.ToString(CultureInfo.InvariantCulture);
        }

        using var proc = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {python}.");
        var stdout = proc.StandardOutput.ReadToEnd();
        proc.WaitForExit();
        exitCode = proc.ExitCode;
        var lines = stdout.Trim().Split('\n');
        if (lines[^1].Length == 0)
        {
            throw new InvalidOperationException($"The PyTorch peer ({python} {peer} {string.Join(' ', args)}) printed nothing (exit {exitCode}); is python3-torch installed?");
        }

        return lines[^1];
    }

    private static string Peer()
    {
        foreach (var root in new[] { Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."), Environment.CurrentDirectory })
        {
            var p = Path.GetFullPath(Path.Combine(root, "bench", "peers", "gpt2_torch.py"));
            if (File.Exists(p))
            {
                return p;
            }
        }

        throw new FileNotFoundException("bench/peers/gpt2_torch.py not found; run from the repository root.");
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[(s.Length / 2) - 1] + s[s.Length / 2]) / 2;
    }
}
