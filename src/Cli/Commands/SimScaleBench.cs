using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Engine;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>bench simscale</c>: precompute cost against the training-set size N (issue 15 item 4). For each N, draws N
/// FashionMNIST training images (seeded), trains the product's MLP recipe (as many models as TRAK-M needs), then times
/// every method's <see cref="IAttributionMethod.Precompute"/> on the same problem in one process: wall seconds, process
/// CPU seconds and examples per second, plus the log-log slope of time against N per method. Above a method's cap
/// (<c>@maxN</c>) the full precompute would run for hours, so a fixed seeded slice of <c>--slice</c> training examples is
/// timed instead and the row says so (never extrapolated silently): forward-only builds its simulator on the whole
/// N-example problem (mini-batch sequence drawn from all N, step size / operator built as in Precompute: timed as the
/// fixed part) and simulates and compresses the slice's examples; any other method precomputes on two nested seeded
/// slices (S and 2S examples) with the models trained on all N, whose difference separates its per-example cost from its
/// fixed part. The projected full-N time (fixed + N x per-example) is printed as such beside what was measured.
/// </summary>
internal static class SimScaleBench
{
    private static readonly string[] DefaultMethods =
    [
        "forward-only:propagation=spectral", "forward-only:propagation=tangent@3000", "forward-only:propagation=trajectory@3000", "trak:models=1", "trak:models=10@3000",
    ];

    public static Command Create()
    {
        var sizes = new Option<string>("--sizes") { Description = "Training-set sizes N, comma separated.", DefaultValueFactory = _ => "1000,3000,10000,60000" };
        var methods = new Option<string[]>("--method")
        {
            Description = "Method spec name[:key=value,...][@maxN], repeatable (models=M gives TRAK M models); above @maxN a seeded slice of --slice examples is timed instead (printed as such). Default: spectral forward-only, forward-only:propagation=tangent@3000, forward-only:propagation=trajectory@3000, trak:models=1, trak:models=10@3000.",
            AllowMultipleArgumentsPerToken = true,
        };
        var epochs = new Option<int>("--epochs") { Description = "Epochs of each trained model (cost does not depend on how well it is trained).", DefaultValueFactory = _ => 2 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the data draw and the models.", DefaultValueFactory = _ => 13UL };
        var slice = new Option<int>("--slice") { Description = "Training examples timed (a seeded slice) when N is above a method's @maxN.", DefaultValueFactory = _ => 500 };
        var command = new Command("simscale", "Precompute time and examples/s of forward-only (trajectory, tangent, spectral) and TRAK-1/TRAK-M against N on FashionMNIST, same run, with the log-log slope.");
        foreach (var o in new Option[] { sizes, methods, epochs, seed, slice })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) => Task.FromResult(Run(parse.GetValue(sizes)!, parse.GetValue(methods) is { Length: > 0 } m ? m : DefaultMethods, parse.GetValue(epochs), parse.GetValue(seed), parse.GetValue(slice), ct)));
        return command;
    }

    private sealed record Spec(string Text, string Name, Dictionary<string, string> Options, int Models, int MaxN);

    private static int Run(string sizesText, string[] methodTexts, int epochs, ulong seed, int slice, CancellationToken ct)
    {
        int[] sizes;
        List<Spec> specs;
        try
        {
            sizes = [.. sizesText.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s.Trim(), CultureInfo.InvariantCulture))];
            specs = [.. methodTexts.Select(ParseSpec)];
            foreach (var s in specs)
            {
                var options = new Dictionary<string, string>(s.Options, StringComparer.OrdinalIgnoreCase);
                _ = MethodFactory.Create(s.Name, options); // unknown names or keys fail here, before any training
            }
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
        {
            Console.Error.WriteLine($"bench simscale: {e.Message}");
            return 2;
        }

        if (sizes.Length == 0 || sizes.Any(n => n < 10) || epochs < 1 || slice < 1)
        {
            Console.Error.WriteLine("bench simscale: --sizes needs sizes of at least 10, --epochs and --slice at least 1.");
            return 2;
        }

        var data = FashionMnist.Load();
        var pool = data.Train.All(Normalization.FashionMnist);
        if (sizes.Max() > pool.Count)
        {
            Console.Error.WriteLine($"bench simscale: the train split has {pool.Count} images; --sizes asks for {sizes.Max()}.");
            return 2;
        }

        Console.WriteLine($"simscale: FashionMNIST MLP 784-128-64-10, sizes {string.Join(", ", sizes)}, models trained {epochs} epoch(s), seed {seed}, OpenBLAS native {Blas.IsNative}, {Environment.ProcessorCount} cores");
        Console.WriteLine("| N | method | timed | precompute (s) | CPU (s) | examples/s | CPU ms per example |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        var times = specs.ToDictionary(s => s.Text, _ => new List<(int N, double Seconds, double CpuSeconds, bool Projected)>());
        var permutation = new Rng(seed).Permutation(pool.Count);
        foreach (int n in sizes)
        {
            var set = pool.Take(permutation[..n]);
            int models = specs.Select(s => s.Models).DefaultIfEmpty(1).Max();
            var recipe = TrainingRecipe.DefaultMlp(set.Ids, [], epochs);
            var train = Stopwatch.StartNew();
            var thetas = new float[models][];
            for (int m = 0; m < models; m++)
            {
                thetas[m] = MlpTrainer.Train(recipe with { Seed = seed + (ulong)m }, pool, null, null, ct).Model.ToFlat();
            }

            Console.Error.WriteLine($"N = {n}: trained {models} model(s) in {train.Elapsed.TotalSeconds:F1} s (not timed below)");
            var problem = new AttributionProblem(new MlpLayout(recipe.Model.Widths), thetas[0], set.Inputs, set.Labels,
                [.. Enumerable.Range(0, n).Select(i => i % 10)], 10, recipe.Optimizer.WeightDecay, thetas)
            {
                TrainingLearningRate = recipe.Optimizer.LearningRate,
            };
            // The slice: the same seeded examples of this N for every method.
            int[] rows = n > slice ? [.. new Rng(seed ^ (ulong)n).Permutation(n).Take(slice).Order()] : [.. Enumerable.Range(0, n)];
            foreach (var spec in specs)
            {
                var method = MethodFactory.Create(spec.Name, new Dictionary<string, string>(spec.Options, StringComparer.OrdinalIgnoreCase));
                GC.Collect();
                if (n <= spec.MaxN || rows.Length == n)
                {
                    var (seconds, cpuSeconds) = Timed(() => method.Precompute(problem, ct));
                    times[spec.Text].Add((n, seconds, cpuSeconds, false));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {n} | {spec.Text} | all {n} | {seconds:F2} | {cpuSeconds:F1} | {n / seconds:F0} | {1000 * cpuSeconds / n:F2} |"));
                    continue;
                }

                if (method is ForwardOnlyMethod forwardOnly)
                {
                    // Fixed part on the whole problem, then the slice's examples simulated and compressed as Precompute does.
                    ForwardOnlySimulator? simulator = null;
                    var (fixedSeconds, fixedCpu) = Timed(() => simulator = new ForwardOnlySimulator(problem, forwardOnly.Options, ct));
                    var layers = ForwardOnlyMethod.LinearLayers(problem);
                    var norms = new float[rows.Length];
                    var (sliceSeconds, sliceCpu) = Timed(() => simulator!.SimulateResponses(rows, layers, forwardOnly.Options.Rank, forwardOnly.Options.Seed, norms, ct));
                    double projected = fixedSeconds + sliceSeconds * n / rows.Length, projectedCpu = fixedCpu + sliceCpu * n / rows.Length;
                    times[spec.Text].Add((n, projected, projectedCpu, true));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {n} | {spec.Text} | fixed part on all {n} ({fixedSeconds:F1} s, {fixedCpu:F1} CPU-s) + slice of {rows.Length} examples ({sliceSeconds:F1} s, {sliceCpu:F1} CPU-s); sources not simulated | projected {projected:F0} | projected {projectedCpu:F0} | {rows.Length / sliceSeconds:F0} (slice) | {1000 * sliceCpu / rows.Length:F2} (slice) |"));
                }
                else
                {
                    // Two nested seeded slices (S and 2S examples, models trained on all N) separate the per-example cost
                    // from the fixed part (TRAK's per-model k x k factorisation): projected = fixed + N x per-example.
                    int[] twice = n > 2 * slice ? [.. new Rng(seed ^ (ulong)n).Permutation(n).Take(2 * slice).Order()] : [.. Enumerable.Range(0, n)];
                    var (smallSeconds, smallCpu) = Timed(() => method.Precompute(Sub(problem, rows), ct));
                    method = MethodFactory.Create(spec.Name, new Dictionary<string, string>(spec.Options, StringComparer.OrdinalIgnoreCase));
                    GC.Collect();
                    var (largeSeconds, largeCpu) = Timed(() => method.Precompute(Sub(problem, twice), ct));
                    int extra = twice.Length - rows.Length;
                    double perSecond = Math.Max(largeSeconds - smallSeconds, 0) / extra, perCpu = Math.Max(largeCpu - smallCpu, 0) / extra;
                    double fixedSeconds = Math.Max(smallSeconds - rows.Length * perSecond, 0), fixedCpu = Math.Max(smallCpu - rows.Length * perCpu, 0);
                    double projected = fixedSeconds + n * perSecond, projectedCpu = fixedCpu + n * perCpu;
                    times[spec.Text].Add((n, projected, projectedCpu, true));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {n} | {spec.Text} | whole precompute on seeded slices of {rows.Length} and {twice.Length} examples (models trained on all {n}): {smallSeconds:F1} s / {smallCpu:F1} CPU-s and {largeSeconds:F1} s / {largeCpu:F1} CPU-s, so fixed {fixedCpu:F1} CPU-s + {1000 * perCpu:F2} CPU-ms per example | projected {projected:F0} | projected {projectedCpu:F0} | {(perSecond > 0 ? 1 / perSecond : double.PositiveInfinity):F0} (slices) | {1000 * perCpu:F2} (slices) |"));
                }
            }
        }

        Console.WriteLine();
        Console.WriteLine("| method | slope of log wall / log CPU vs log N, measured sizes | the same incl. projected sizes | sizes (p = projected from a slice) |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var spec in specs)
        {
            var points = times[spec.Text];
            var measured = points.Where(p => !p.Projected).ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {spec.Text} | {Slopes(measured)} | {Slopes(points)} | {string.Join(", ", points.Select(p => p.Projected ? $"{p.N}p" : $"{p.N}"))} |"));
        }

        return 0;
    }

    private static (double Seconds, double CpuSeconds) Timed(Action action)
    {
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        action();
        return (wall.Elapsed.TotalSeconds, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
    }

    private static AttributionProblem Sub(AttributionProblem problem, int[] rows) =>
        new(problem.Layout, problem.Theta, Gather(problem.TrainInputs, rows, problem.InputWidth), [.. rows.Select(r => problem.TrainLabels[r])],
            [.. rows.Select(r => problem.SourceIds[r])], problem.SourceCount, problem.WeightDecay, [.. problem.Checkpoints])
        {
            TrainingLearningRate = problem.TrainingLearningRate,
        };

    private static float[] Gather(float[] inputs, int[] rows, int width)
    {
        var x = new float[rows.Length * width];
        for (int i = 0; i < rows.Length; i++)
        {
            inputs.AsSpan(rows[i] * width, width).CopyTo(x.AsSpan(i * width, width));
        }

        return x;
    }

    // "name[:k=v,...][@maxN]"; models=M is the number of trained models the method is given (TRAK's ensemble).
    private static Spec ParseSpec(string text)
    {
        int maxN = int.MaxValue;
        var body = text;
        int at = text.LastIndexOf('@');
        if (at >= 0)
        {
            maxN = int.Parse(text[(at + 1)..], CultureInfo.InvariantCulture);
            body = text[..at];
        }

        var parts = body.Split(':', 2);
        var options = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (parts.Length == 2)
        {
            foreach (var kv in parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries))
            {
                var pair = kv.Split('=', 2);
                if (pair.Length != 2)
                {
                    throw new FormatException($"method option '{kv}' in '{text}' is not key=value.");
                }

                options[pair[0].Trim()] = pair[1].Trim();
            }
        }

        int models = options.TryGetValue("models", out var m) ? int.Parse(m, CultureInfo.InvariantCulture) : 1;
        if (models < 1)
        {
            throw new ArgumentException($"models must be at least 1 in '{text}'.");
        }

        return new Spec(text, parts[0].Trim(), options, models, maxN);
    }

    private static string Slopes(List<(int N, double Seconds, double CpuSeconds, bool Projected)> points) => points.Count < 2
        ? "(needs 2 sizes)"
        : string.Create(CultureInfo.InvariantCulture, $"{Slope(points, p => p.Seconds):F2} / {Slope(points, p => p.CpuSeconds):F2}");

    // Least-squares slope of log(time) against log(N).
    private static double Slope(List<(int N, double Seconds, double CpuSeconds, bool Projected)> points, Func<(int N, double Seconds, double CpuSeconds, bool Projected), double> time)
    {
        var x = points.Select(p => Math.Log(p.N)).ToArray();
        var y = points.Select(p => Math.Log(time(p))).ToArray();
        double mx = x.Average(), my = y.Average();
        double sxy = x.Zip(y, (a, b) => (a - mx) * (b - my)).Sum(), sxx = x.Sum(a => (a - mx) * (a - mx));
        return sxy / sxx;
    }
}
