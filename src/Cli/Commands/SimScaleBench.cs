using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Attribution.Attribution;
using Attribution.Engine;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>bench simscale</c>: precompute cost against the training-set size N (issue 15 item 4). For each N, draws N
/// FashionMNIST training images (seeded), trains the product's MLP recipe (as many models as TRAK-M needs), then times
/// every method's <see cref="IAttributionMethod.Precompute"/> on the same problem in one process: wall seconds, process
/// CPU seconds and examples per second, plus the log-log slope of time against N per method. Methods that would run
/// for hours at large N are capped (<c>--max-n</c> per method) and the cap is printed, never silently skipped.
/// </summary>
internal static class SimScaleBench
{
    private static readonly string[] DefaultMethods =
    [
        "forward-only:propagation=spectral", "forward-only@3000", "trak:models=1", "trak:models=10@3000",
    ];

    public static Command Create()
    {
        var sizes = new Option<string>("--sizes") { Description = "Training-set sizes N, comma separated.", DefaultValueFactory = _ => "1000,3000,10000,60000" };
        var methods = new Option<string[]>("--method")
        {
            Description = "Method spec name[:key=value,...][@maxN], repeatable (models=M gives TRAK M models); @maxN skips N above it (printed). Default: spectral forward-only, forward-only@3000, trak:models=1, trak:models=10@3000.",
            AllowMultipleArgumentsPerToken = true,
        };
        var epochs = new Option<int>("--epochs") { Description = "Epochs of each trained model (cost does not depend on how well it is trained).", DefaultValueFactory = _ => 2 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the data draw and the models.", DefaultValueFactory = _ => 13UL };
        var command = new Command("simscale", "Precompute time and examples/s of forward-only (trajectory vs spectral) and TRAK-1/TRAK-M against N on FashionMNIST, same run, with the log-log slope.");
        foreach (var o in new Option[] { sizes, methods, epochs, seed })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) => Task.FromResult(Run(parse.GetValue(sizes)!, parse.GetValue(methods) is { Length: > 0 } m ? m : DefaultMethods, parse.GetValue(epochs), parse.GetValue(seed), ct)));
        return command;
    }

    private sealed record Spec(string Text, string Name, Dictionary<string, string> Options, int Models, int MaxN);

    private static int Run(string sizesText, string[] methodTexts, int epochs, ulong seed, CancellationToken ct)
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

        if (sizes.Length == 0 || sizes.Any(n => n < 10) || epochs < 1)
        {
            Console.Error.WriteLine("bench simscale: --sizes needs sizes of at least 10 and --epochs at least 1.");
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
        Console.WriteLine("| N | method | precompute (s) | CPU (s) | examples/s | ms per example |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var times = specs.ToDictionary(s => s.Text, _ => new List<(int N, double Seconds)>());
        var permutation = new Rng(seed).Permutation(pool.Count);
        foreach (int n in sizes)
        {
            var set = pool.Take(permutation[..n]);
            int models = specs.Where(s => n <= s.MaxN).Select(s => s.Models).DefaultIfEmpty(1).Max();
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
            foreach (var spec in specs)
            {
                if (n > spec.MaxN)
                {
                    Console.WriteLine($"| {n} | {spec.Text} | not run (capped at N = {spec.MaxN}) | | | |");
                    continue;
                }

                var method = MethodFactory.Create(spec.Name, new Dictionary<string, string>(spec.Options, StringComparer.OrdinalIgnoreCase));
                GC.Collect();
                var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                var wall = Stopwatch.StartNew();
                method.Precompute(problem, ct);
                double seconds = wall.Elapsed.TotalSeconds;
                double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
                times[spec.Text].Add((n, seconds));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n} | {spec.Text} | {seconds:F2} | {cpuSeconds:F1} | {n / seconds:F0} | {1000 * seconds / n:F2} |"));
            }
        }

        Console.WriteLine();
        Console.WriteLine("| method | slope of log time vs log N | sizes |");
        Console.WriteLine("|---|---|---|");
        foreach (var spec in specs)
        {
            var points = times[spec.Text];
            Console.WriteLine(points.Count < 2
                ? $"| {spec.Text} | (needs 2 sizes) | {string.Join(", ", points.Select(p => p.N))} |"
                : string.Create(CultureInfo.InvariantCulture, $"| {spec.Text} | {Slope(points):F2} | {string.Join(", ", points.Select(p => p.N))} |"));
        }

        return 0;
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

    private static double Slope(List<(int N, double Seconds)> points)
    {
        var x = points.Select(p => Math.Log(p.N)).ToArray();
        var y = points.Select(p => Math.Log(p.Seconds)).ToArray();
        double mx = x.Average(), my = y.Average();
        double sxy = x.Zip(y, (a, b) => (a - mx) * (b - my)).Sum(), sxx = x.Sum(a => (a - mx) * (a - mx));
        return sxy / sxx;
    }
}
