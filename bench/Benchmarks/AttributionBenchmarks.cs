using System.Diagnostics;
using Attribution.Attribution;
using Attribution.Attribution.Evaluation;
using Attribution.Attribution.Kernels;
using Attribution.Attribution.Methods;
using Attribution.Engine;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Attribution.Benchmarks;

/// <summary>
/// Per-query latency of every attribution method on a random 784-128-64-10 MLP with n = 5,000 training examples in
/// 10 sources (shapes are what matter for latency; values are random). Forward-only is built from random responses
/// of the configured rank (simulation cost is measured separately by <see cref="Simulate200Units"/>).
/// Run: dotnet run -c Release --project bench/Benchmarks -- --filter '*AttributionBenchmarks*'
/// </summary>
[Config(typeof(InProcessMonitoring))]
public class AttributionBenchmarks
{
    private const int N = 5000;
    private static readonly Dictionary<string, IAttributionMethod> Cache = [];
    private static AttributionProblem? s_problem;
    private IAttributionMethod _method = null!;
    private QueryBatch _batch = null!;

    [Params("forward-only", "forward-only-r8", "forward-only-r8-jvp", "forward-only-sources", "trak", "trak-sjlt", "grad-dot")]
    public string Method { get; set; } = "forward-only";

    [Params(1, 64)]
    public int Queries { get; set; }

    public static AttributionProblem Problem()
    {
        if (s_problem is not null)
        {
            return s_problem;
        }

        var layout = new MlpLayout([784, 128, 64, 10]);
        var rng = new Rng(42);
        var theta = new float[layout.ParameterCount];
        for (int l = 0; l < layout.LayerCount; l++)
        {
            rng.FillUniform(layout.Weight(theta.AsSpan(), l), -1f / MathF.Sqrt(layout.In(l)), 1f / MathF.Sqrt(layout.In(l)));
            rng.FillUniform(layout.Bias(theta.AsSpan(), l), -1f / MathF.Sqrt(layout.In(l)), 1f / MathF.Sqrt(layout.In(l)));
        }

        var x = new float[N * 784];
        rng.FillUniform(x, 0f, 1f);
        var y = Enumerable.Range(0, N).Select(_ => rng.NextInt(10)).ToArray();
        var sources = Enumerable.Range(0, N).Select(i => i % 10).ToArray();
        s_problem = new AttributionProblem(layout, theta, x, y, sources, 10, 5e-4f);
        return s_problem;
    }

    public static IAttributionMethod Build(string method)
    {
        // Per-source scoring reads only the source responses; share the rank-16 build.
        method = method == "forward-only-sources" ? "forward-only" : method;
        if (Cache.TryGetValue(method, out var cached))
        {
            return cached;
        }

        var problem = Problem();
        IAttributionMethod m;
        if (method.StartsWith("forward-only", StringComparison.Ordinal))
        {
            var rng = new Rng(3);
            var examples = new ResponseSet(problem.Layout, N, method.StartsWith("forward-only-r8", StringComparison.Ordinal) ? 8 : 16);
            var r = new float[problem.Layout.ParameterCount];
            for (int u = 0; u < N; u++)
            {
                rng.FillNormal(r, 0f, 1e-2f);
                examples.Set(u, r);
            }

            m = ForwardOnlyMethod.FromResponses(problem, examples, new ForwardOnlyOptions());
        }
        else
        {
            m = method switch
            {
                "trak" => new TrakMethod(new TrakOptions { ProjectionDim = 2048 }),
                "trak-sjlt" => new TrakMethod(new TrakOptions { ProjectionDim = 2048, Projector = TrakProjector.Sjlt }),
                _ => MethodFactory.Create(method),
            };
            var watch = Stopwatch.StartNew();
            m.Precompute(problem);
            Console.WriteLine($"// precompute {method}: {watch.Elapsed.TotalSeconds:F1} s, state {m.StateBytes / 1e6:F1} MB");
        }

        Cache[method] = m;
        return m;
    }

    [GlobalSetup]
    public void Setup()
    {
        _method = Build(Method);
        var rng = new Rng(9);
        var x = new float[Queries * 784];
        rng.FillUniform(x, 0f, 1f);
        _batch = new QueryBatch(x, Enumerable.Range(0, Queries).Select(i => i % 10).ToArray(), 784);
    }

    [Benchmark]
    public int ScoreBatch() => Method == "forward-only-sources" ? _method.ScoreSources(_batch).Length : _method.Score(_batch).Scores.Length;
}

/// <summary>Simulation throughput: 200 training examples, two-trajectory, K = 10, shared batches of 100, rank-16 storage.</summary>
[Config(typeof(InProcessMonitoring))]
public class Simulate200Units
{
    [Benchmark]
    public long Simulate()
    {
        var problem = AttributionBenchmarks.Problem();
        var sub = new AttributionProblem(problem.Layout, problem.Theta, problem.TrainInputs, problem.TrainLabels, problem.SourceIds, 10, problem.WeightDecay);
        var sim = new ForwardOnlySimulator(sub, new ForwardOnlyOptions { Horizon = 10, StepSize = 0.05f, UnitsPerBlock = 100 });
        var set = new ResponseSet(problem.Layout, 200, 16);
        var units = Enumerable.Range(0, 200).ToArray();
        var watch = Stopwatch.StartNew();
        double svd = 0;
        sim.Simulate(units, (u, r) =>
        {
            long t0 = Stopwatch.GetTimestamp();
            set.Set(u, r);
            svd += Stopwatch.GetElapsedTime(t0).TotalSeconds;
        });
        Console.WriteLine($"// simulate 200 units K=10: {watch.Elapsed.TotalSeconds:F2} s (of which rank-16 SVD {svd:F2} s)");
        return set.Bytes;
    }
}

/// <summary>In-process (so the expensive precomputes are cached across cases), few iterations, no pilot.</summary>
public sealed class InProcessMonitoring : ManualConfig
{
    public InProcessMonitoring() =>
        AddJob(Job.Default.WithToolchain(new InProcessEmitToolchain(TimeSpan.FromMinutes(30), logOutput: true)).WithStrategy(RunStrategy.Monitoring)
            .WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(5));
}

/// <summary>
/// Effect of per-layer low-rank storage on forward-only scores, on a real model: an MLP 784-128-64-10 trained on 1,000
/// FashionMNIST images (engine recipe, 20 epochs); 300 training examples simulated (two-trajectory, K = 50, ε = 1e-3,
/// η = 1/h_max, batches of 100); 50 test queries. Reports the per-query Pearson correlation of each rank against full
/// storage, of the finite-difference readout against the JVP readout, and bytes per example.
/// </summary>
[Config(typeof(InProcessMonitoring))]
public class ForwardOnlyCompression
{
    [Benchmark]
    public double Measure()
    {
        var data = FashionMnist.Load();
        var trainIds = Enumerable.Range(0, 1000).ToArray();
        var testIds = Enumerable.Range(0, 50).ToArray();
        var watch = Stopwatch.StartNew();
        var trained = MlpTrainer.Train(TrainingRecipe.DefaultMlp(trainIds, testIds, epochs: 20), data);
        Console.WriteLine($"// trained in {watch.Elapsed.TotalSeconds:F1} s");
        var norm = Normalization.FashionMnist;
        var train = data.Train.Select(trainIds, norm);
        var test = data.Test.Select(testIds, norm);
        var layout = trained.Model.Layout;
        var problem = new AttributionProblem(layout, trained.Model.ToFlat(), train.Inputs, train.Labels, weightDecay: 5e-4f);
        watch.Restart();
        var sim = new ForwardOnlySimulator(problem, new ForwardOnlyOptions { Horizon = 50, Epsilon = 1e-3f, BatchSize = 100, UnitsPerBlock = 100 });
        Console.WriteLine($"// h_max {sim.TopEigenvalue:F2}, eta {sim.StepSize:G4}, power iteration {watch.Elapsed.TotalSeconds:F1} s");
        const int units = 300;
        int[] ranks = [0, 4, 8, 16, 32];
        var sets = ranks.Select(r => new ResponseSet(layout, units, r)).ToArray();
        watch.Restart();
        sim.Simulate(Enumerable.Range(0, units).ToArray(), (u, r) =>
        {
            foreach (var s in sets)
            {
                s.Set(u, r);
            }
        });
        Console.WriteLine($"// simulated {units} units K=50 in {watch.Elapsed.TotalSeconds:F1} s (incl. 4 SVDs per unit)");
        var model = new Mlp(layout);
        model.LoadFrom(problem.Theta);
        var readout = model.ForwardModeGradients(test.Inputs, test.Labels, test.Count, ModelOutput.Margin);
        var full = new float[test.Count * units];
        sets[0].JacobianScores(readout, full);
        var fd = new float[test.Count * units];
        ForwardOnlyReadout.FiniteDifference(new Mlp(layout), problem.Theta, new QueryBatch(test.Inputs, test.Labels, layout.Widths[0]), sets[0], 1e-3f, fd);
        Console.WriteLine($"// FD readout (eps_r=1e-3) vs Jacobian readout, mean per-query Pearson: {MeanPearson(full, fd, test.Count, units):F4}");
        double last = 0;
        for (int i = 1; i < ranks.Length; i++)
        {
            var low = new float[test.Count * units];
            sets[i].JacobianScores(readout, low);
            last = MeanPearson(full, low, test.Count, units);
            Console.WriteLine($"// rank {ranks[i]}: {sets[i].FloatsPerUnit * 4} bytes/example (full {sets[0].FloatsPerUnit * 4}), mean per-query Pearson vs full {last:F4}");
        }

        // Rank 8 with the input layer in a shared basis of decreasing energy.
        int r8 = Array.IndexOf(ranks, 8);
        foreach (var energy in new[] { 0.99999, 0.9999, 0.999, 0.99, 0.95 })
        {
            var copy = new ResponseSet(layout, units, 8);
            var f = new float[copy.FloatsPerUnit];
            for (int u = 0; u < units; u++)
            {
                sets[r8].GetFactors(u, f);
                copy.SetFactors(u, f);
            }

            var (k, kept) = copy.ShareInputBasis(0, energy);
            var scores = new float[test.Count * units];
            copy.JacobianScores(readout, scores);
            Console.WriteLine($"// rank 8, input basis energy {energy}: k = {k} (kept {kept:F5}), {copy.Bytes / units} bytes/example, mean per-query Pearson vs full {MeanPearson(full, scores, test.Count, units):F4}");
        }

        return last;
    }

    private static double MeanPearson(float[] a, float[] b, int queries, int units)
    {
        double total = 0;
        for (int q = 0; q < queries; q++)
        {
            var x = Array.ConvertAll(a[(q * units)..((q + 1) * units)], v => (double)v);
            var y = Array.ConvertAll(b[(q * units)..((q + 1) * units)], v => (double)v);
            total += Correlation.Pearson(x, y);
        }

        return total / queries;
    }
}
