using System.Globalization;
using System.Text;
using Attribution.Attribution;
using Attribution.Attribution.Evaluation;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Cli.Evaluation;

/// <summary>Trains the benchmark recipe on a training subset (sorted pool indices) with a seed; returns θ in the flat layout.</summary>
internal delegate float[] TrainModel(int[] trainSubset, int seed, CancellationToken cancellationToken);

/// <summary>Creates a method from its command-line name and the options after the colon (e.g. <c>trak</c>, {proj=8192}).</summary>
internal delegate IAttributionMethod CreateMethod(string name, IReadOnlyDictionary<string, string> options);

/// <summary>The training pool and test queries of a benchmark, with their ids in the original dataset.</summary>
internal sealed record EvalData(float[] TrainX, int[] TrainY, int[] TrainIds, float[] TestX, int[] TestY, int[] TestIds, int InputWidth, string Description);

/// <summary>Everything that defines a benchmark run; <see cref="RecipeKey"/> is what the retraining cache is keyed on.</summary>
internal sealed record EvalOptions(
    int[] Widths,
    string RecipeKey,
    int Subsets,
    double Alpha,
    int SeedsPerSubset,
    bool NoiseCeiling,
    ulong Seed,
    IReadOnlyList<string> Methods,
    int LooCount,
    int LooSeeds,
    int TopK,
    int TopKQueries,
    int LatencyQueries,
    int BatchSize,
    string CacheRoot,
    int Sources = 0,
    int SourceSubsets = 0);

/// <summary>What a run produced, for the report.</summary>
internal sealed record EvalOutcome(
    EvalOptions Options,
    EvalData Data,
    string SettingHash,
    string CanonicalSetting,
    SubsetPlan Plan,
    LdsGroundTruth Truth,
    MetricSummary? Ceiling,
    double FullModelAccuracy,
    int ModelsTrained,
    int ModelsFromCache,
    double RetrainSeconds,
    LooGroundTruth? Loo,
    IReadOnlyList<MethodResult> Methods,
    int[] SourceIds,
    LdsGroundTruth? SourceTruth);

/// <summary>Runs a benchmark setting end to end: ground truth (cached), then every method's quality and cost.</summary>
internal sealed class EvalRunner(EvalOptions options, EvalData data, TrainModel train, CreateMethod createMethod)
{
    /// <summary>Parses <c>name[:key=value,key=value]</c>.</summary>
    public static (string Name, Dictionary<string, string> Options) ParseSpec(string spec)
    {
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        var name = (colon < 0 ? spec : spec[..colon]).Trim();
        var dict = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (colon >= 0)
        {
            foreach (var part in spec[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                int eq = part.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    throw new ArgumentException($"method option '{part}' in '{spec}' is not key=value; write e.g. trak:models=10,k=8192.");
                }

                dict[part[..eq].Trim()] = part[(eq + 1)..].Trim();
            }
        }

        return (name, dict);
    }

    /// <summary>Runs the campaign. <paramref name="progress"/> receives stage names and model counts.</summary>
    public EvalOutcome Run(IProgress<RetrainProgress>? progress, CancellationToken cancellationToken)
    {
        var layout = new MlpLayout(options.Widths);
        int n = data.TrainY.Length, q = data.TestY.Length;
        var canonical = Canonical();
        var cache = new RetrainCache(options.CacheRoot, canonical);
        var measure = cache.Wrap((subset, seed, ct) => Margins(layout, train(subset, seed, ct)));

        // Parse every spec and build every method before the long retraining, so a typo fails in a second.
        var specs = options.Methods.Select(ParseSpec).ToList();
        foreach (var (name, opts) in specs)
        {
            _ = createMethod(name, WithoutHarnessKeys(opts));
        }

        int ensemble = Math.Max(1, specs.Max(s => s.Options.TryGetValue("models", out var m) ? ParsePositive(m, "models") : 1));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var fullSeeds = Enumerable.Range(0, ensemble).Select(k => (int)((options.Seed * 1000) + (ulong)k) & 0x7FFF_FFFF).ToArray();
        var allIds = RetrainingHarness.Complement(n, []);
        var thetas = new List<float[]>();
        foreach (var s in fullSeeds)
        {
            thetas.Add(cache.GetOrCompute($"full-{s}.theta", () => train(allIds, s, cancellationToken)));
            progress?.Report(new RetrainProgress(thetas.Count, ensemble, "full-data models"));
        }

        double accuracy = Accuracy(layout, thetas[0]);
        int replicates = options.SeedsPerSubset + (options.NoiseCeiling && options.SeedsPerSubset == 1 ? 1 : 0);
        var plan = SubsetPlan.Draw(n, options.Subsets, options.Alpha, options.Seed, replicates);
        var truth = RetrainingHarness.RunLds(plan, q, measure, progress, cancellationToken);
        var target = options.SeedsPerSubset > 1 ? truth.Mean() : truth.Primary;
        LooGroundTruth? loo = null;
        if (options.LooCount > 0)
        {
            var removed = new Rng(options.Seed ^ 0x100).Permutation(n).AsSpan(0, Math.Min(options.LooCount, n)).ToArray();
            Array.Sort(removed);
            var looSeeds = fullSeeds.Take(Math.Min(options.LooSeeds, fullSeeds.Length)).ToArray();
            if (looSeeds.Length < options.LooSeeds)
            {
                looSeeds = [.. looSeeds, .. Enumerable.Range(looSeeds.Length, options.LooSeeds - looSeeds.Length).Select(k => (int)((options.Seed * 1000) + (ulong)k) & 0x7FFF_FFFF)];
            }

            loo = LeaveOneOut.Run(n, removed, looSeeds, q, measure, progress, cancellationToken);
        }

        // Source level: random sets of sources, each model retrained on all their examples (same cache, same recipe).
        var sourceIds = options.Sources > 1 ? SourceLds.Assign(data.TrainY, options.Sources, options.Seed ^ 0x400) : new int[n];
        LdsGroundTruth? sourceTruth = null;
        SubsetPlan? sourcePlan = null;
        if (options.Sources > 1 && options.SourceSubsets > 1)
        {
            sourcePlan = SubsetPlan.Draw(options.Sources, options.SourceSubsets, options.Alpha, options.Seed ^ 0x500, replicates);
            var expanded = RetrainingHarness.RunLds(SourceLds.Expand(sourcePlan, sourceIds), q, measure, progress, cancellationToken);
            sourceTruth = new LdsGroundTruth(sourcePlan, q, expanded.Replicates);
        }

        double retrainSeconds = clock.Elapsed.TotalSeconds;
        var problemBase = (Func<int, AttributionProblem>)(models => new AttributionProblem(layout, thetas[0], data.TrainX, data.TrainY, sourceIds,
            Math.Max(1, options.Sources), weightDecay: RecipeValue("wd="), checkpoints: thetas.Take(models).ToArray()) { TrainingLearningRate = RecipeValue("lr=") });
        var queries = new QueryBatch(data.TestX, data.TestY, data.InputWidth);
        var topKQueries = new Rng(options.Seed ^ 0x200).Permutation(q).AsSpan(0, Math.Min(options.TopKQueries, q)).ToArray();
        var results = new List<MethodResult>();
        foreach (var (spec, (name, opts)) in options.Methods.Zip(specs))
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new RetrainProgress(results.Count, specs.Count, $"scoring {spec}"));
            int models = opts.TryGetValue("models", out var mv) ? ParsePositive(mv, "models") : 1;
            var method = createMethod(name, WithoutHarnessKeys(opts));
            var (scores, pre, single, batched) = MethodMeasurement.Measure(method, problemBase(models), queries, options.LatencyQueries, options.BatchSize, cancellationToken);
            var sourceLds = sourcePlan is null ? null : SourceLds.Compute(method.ScoreSources(queries, cancellationToken), q, sourcePlan, sourceTruth!.Primary);
            var predicted = Lds.Predict(scores.Scores, q, n, plan.Subsets);
            var lds = Lds.Correlate(predicted, truth.Primary, plan.Count, q);
            var ldsMean = options.SeedsPerSubset > 1 ? Lds.Correlate(predicted, target, plan.Count, q) : null;
            var looSummary = loo is null ? null : LeaveOneOut.Correlate(scores, loo);
            TopKRemovalResult? topK = null;
            if (options.TopK > 0 && topKQueries.Length > 0)
            {
                topK = TopKRemoval.Run(scores, topKQueries, options.TopK, [fullSeeds[0]], options.Seed ^ 0x300, measure, progress, cancellationToken);
            }

            results.Add(new MethodResult(spec, $"{method.Describe()}{(models > 1 ? $"; {models} models" : string.Empty)}", lds, ldsMean, looSummary, topK,
                pre, Percentiles.Of(single, 50), Percentiles.Of(single, 99), Percentiles.Of(batched, 50), Percentiles.Of(batched, 99),
                options.BatchSize, method.StateBytes, predicted, sourceLds));
        }

        return new EvalOutcome(options, data, cache.SettingHash, canonical, plan, truth, truth.NoiseCeiling(), accuracy,
            cache.Misses, cache.Hits, retrainSeconds, loo, results, sourceIds, sourceTruth);
    }

    private float[] Margins(MlpLayout layout, float[] theta)
    {
        var mlp = new Mlp(layout);
        mlp.LoadFrom(theta);
        var margins = new float[data.TestY.Length];
        mlp.Margins(data.TestX, data.TestY, data.TestY.Length, margins);
        return margins;
    }

    private double Accuracy(MlpLayout layout, float[] theta)
    {
        var mlp = new Mlp(layout);
        mlp.LoadFrom(theta);
        return (double)mlp.CountCorrect(data.TestX, data.TestY, data.TestY.Length) / data.TestY.Length;
    }

    private float RecipeValue(string key)
    {
        foreach (var part in options.RecipeKey.Split(';'))
        {
            if (part.StartsWith(key, StringComparison.Ordinal))
            {
                return float.Parse(part[key.Length..], CultureInfo.InvariantCulture);
            }
        }

        return 0f;
    }

    private string Canonical()
    {
        var sb = new StringBuilder();
        sb.Append("recipe=").Append(options.RecipeKey).Append('\n');
        sb.Append("widths=").Append(string.Join('-', options.Widths)).Append('\n');
        sb.Append("data=").Append(data.Description).Append('\n');
        sb.Append("train-ids=").Append(RetrainCache.SubsetHash(data.TrainIds)).Append('\n');
        sb.Append("test-ids=").Append(RetrainCache.SubsetHash(data.TestIds)).Append('\n');
        sb.Append("test-labels=").Append(RetrainCache.SubsetHash(data.TestY)).Append('\n');
        sb.Append("output=margin\n");
        // Source assignment changes no model (subsets are example lists): it is not part of the setting.
        return sb.ToString();
    }

    private static Dictionary<string, string> WithoutHarnessKeys(Dictionary<string, string> opts) =>
        opts.Where(kv => !kv.Key.Equals("models", StringComparison.OrdinalIgnoreCase)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.OrdinalIgnoreCase);

    private static int ParsePositive(string value, string key) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= 1
            ? v
            : throw new ArgumentException($"method option {key}={value} must be a positive integer.");
}
