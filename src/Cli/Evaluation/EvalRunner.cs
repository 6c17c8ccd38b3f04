using System.Globalization;
using System.Text;
using Attribution.Attribution;
using Attribution.Attribution.Evaluation;
using Attribution.Engine;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Cli.Evaluation;

/// <summary>
/// Trains the benchmark recipe on a training subset (sorted pool indices) with a seed; returns θ in the flat layout.
/// With <paramref name="checkpoints"/>, the checkpoints along training are handed to it (TracIn).
/// </summary>
internal delegate float[] TrainModel(int[] trainSubset, int seed, CancellationToken cancellationToken, CheckpointRequest? checkpoints = null);

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
    int SourceSubsets = 0,
    int CheckpointEvery = 2,
    double TuneFraction = 0.5,
    bool HoldOutAlways = false);

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
    LdsGroundTruth? SourceTruth,
    int[]? ValidationQueries = null,
    MetricSummary? SourceCeiling = null);

/// <summary>Runs a benchmark setting end to end: ground truth (cached), then every method's quality and cost.</summary>
internal sealed class EvalRunner(EvalOptions options, EvalData data, TrainModel train, CreateMethod createMethod)
{
    /// <summary>Parses <c>name[:key=value,key=value]</c>.</summary>
    public static (string Name, Dictionary<string, string> Options) ParseSpec(string spec) => MethodFactory.ParseSpec(spec);

    /// <summary>
    /// Creates a method, turning any invalid option (including a value the method's options reject) into a
    /// <see cref="MethodOptionException"/>, which the commands answer with exit code 2.
    /// </summary>
    public static IAttributionMethod CreateChecked(CreateMethod create, string name, IReadOnlyDictionary<string, string> options)
    {
        try
        {
            return create(name, options);
        }
        catch (ArgumentException e) when (e is not MethodOptionException)
        {
            throw new MethodOptionException($"method '{name}': {e.Message}");
        }
    }

    /// <summary>
    /// The independently trained models a spec needs (default 1): its <c>models</c> option, or for a blend the larger of
    /// its parts' (<c>a-models</c>, <c>b-models</c>), so <c>blend:a=stride,a-models=10,b=forward-only</c> gets ten.
    /// </summary>
    public static int ModelsOf(IReadOnlyDictionary<string, string> options) =>
        new[] { "models", "a-models", "b-models" }.Max(key => options.TryGetValue(key, out var m)
            ? int.TryParse(m, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= 1 ? v : throw new MethodOptionException($"method option {key}={m} must be a positive integer.")
            : 1);

    /// <summary>
    /// True when a spec reads checkpoints saved along training: tracin, and any method averaged over its models' training
    /// checkpoints (<c>checkpoints</c> other than 1, in any of a grid's values); for a blend, either part (<c>a=tracin</c>,
    /// <c>a-checkpoints</c>, <c>b-...</c>).
    /// </summary>
    public static bool NeedsTrainingCheckpoints(string name, IReadOnlyDictionary<string, string> options)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(options);
        bool Reads(string method, string prefix) =>
            method.Trim().Equals("tracin", StringComparison.OrdinalIgnoreCase)
            || (options.TryGetValue(prefix + "checkpoints", out var j) && j.Split('|', StringSplitOptions.TrimEntries).Any(v => v != "1"));
        return name.Trim().Equals("blend", StringComparison.OrdinalIgnoreCase)
            ? new[] { "a", "b" }.Any(part => Reads(options.TryGetValue(part, out var m) ? m : "", part + "-"))
            : Reads(name, "");
    }

    /// <summary>
    /// Expands a spec's grid: a value written <c>a|b|c</c> is swept. Returns every combination (one, for a spec
    /// without a grid), each as the options the method factory receives.
    /// </summary>
    public static List<Dictionary<string, string>> Grid(IReadOnlyDictionary<string, string> options)
    {
        var combos = new List<Dictionary<string, string>> { new(StringComparer.OrdinalIgnoreCase) };
        foreach (var (key, value) in options)
        {
            var values = value.Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (values.Length == 0)
            {
                throw new MethodOptionException($"method option {key}='{value}' has no value.");
            }

            if (key.Equals("models", StringComparison.OrdinalIgnoreCase) && values.Length > 1)
            {
                throw new MethodOptionException($"models={value}: the ensemble size is not tuned; write one spec per ensemble size (the best configuration is reported per size).");
            }

            combos = [.. combos.SelectMany(c => values.Select(v => new Dictionary<string, string>(c, StringComparer.OrdinalIgnoreCase) { [key] = v }))];
        }

        return combos;
    }

    /// <summary>A spec written back from a name and its options (keys in the order given).</summary>
    public static string Spec(string name, IReadOnlyDictionary<string, string> options) =>
        options.Count == 0 ? name : $"{name}:{string.Join(',', options.Select(kv => $"{kv.Key}={kv.Value}"))}";

    /// <summary>Runs the campaign. <paramref name="progress"/> receives stage names and model counts.</summary>
    public EvalOutcome Run(IProgress<RetrainProgress>? progress, CancellationToken cancellationToken)
    {
        var layout = new MlpLayout(options.Widths);
        int n = data.TrainY.Length, q = data.TestY.Length;
        // Parse every spec and build every method (every grid point) before the long retraining, so a typo fails in a second.
        var specs = options.Methods.Select(ParseSpec).ToList();
        bool calibrates = false;
        foreach (var (name, opts) in specs)
        {
            foreach (var combo in Grid(opts))
            {
                // A blend with weight auto chooses its weight on the validation queries (the problem's calibration set).
                calibrates |= CreateChecked(createMethod, name, combo) is BlendMethod { Weight: double.NaN };
            }
        }

        var canonical = Canonical();
        var cache = new RetrainCache(options.CacheRoot, canonical);
        var measure = cache.Wrap((subset, seed, ct) => Margins(layout, train(subset, seed, ct)));

        int ensemble = Math.Max(1, specs.Max(s => ModelsOf(s.Options)));
        var needCheckpoints = specs.Where(s => NeedsTrainingCheckpoints(s.Name, s.Options)).ToList();
        int tracinModels = needCheckpoints.Count > 0 ? needCheckpoints.Max(s => ModelsOf(s.Options)) : 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var fullSeeds = Enumerable.Range(0, ensemble).Select(k => (int)((options.Seed * 1000) + (ulong)k) & 0x7FFF_FFFF).ToArray();
        var allIds = RetrainingHarness.Complement(n, []);
        var thetas = new List<float[]>();
        foreach (var s in fullSeeds)
        {
            thetas.Add(cache.GetOrCompute($"full-{s}.theta", () => train(allIds, s, cancellationToken)));
            progress?.Report(new RetrainProgress(thetas.Count, ensemble, "full-data models"));
        }

        // TracIn's (and any method:checkpoints=J's) checkpoints along training of the first models (cached like the models; training is deterministic, so
        // the last checkpoint is the cached full model).
        var trainingCheckpoints = new List<IReadOnlyList<float[]>>();
        for (int k = 0; k < tracinModels; k++)
        {
            int s = fullSeeds[k], p = layout.ParameterCount;
            var flat = cache.GetOrCompute(string.Create(CultureInfo.InvariantCulture, $"full-{s}-every{options.CheckpointEvery}.checkpoints"), () =>
            {
                var saved = new List<float[]>();
                train(allIds, s, cancellationToken, new CheckpointRequest(options.CheckpointEvery, (_, _, m) => saved.Add(m.ToFlat())));
                return [.. saved.SelectMany(c => c)];
            });
            trainingCheckpoints.Add([.. Enumerable.Range(0, flat.Length / p).Select(c => flat.AsSpan(c * p, p).ToArray())]);
            progress?.Report(new RetrainProgress(k + 1, tracinModels, "training checkpoints (tracin, checkpoints=J)"));
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
        CalibrationSet? calibration = null;
        var problemBase = (Func<int, AttributionProblem>)(models => new AttributionProblem(layout, thetas[0], data.TrainX, data.TrainY, sourceIds,
            Math.Max(1, options.Sources), weightDecay: RecipeValue("wd="), checkpoints: thetas.Take(models).ToArray())
        {
            TrainingLearningRate = RecipeValue("lr="),
            TrainingCheckpoints = trainingCheckpoints.Take(models).ToArray(),
            Calibration = calibration,
        });
        var queries = new QueryBatch(data.TestX, data.TestY, data.InputWidth);

        // Tuning is honest: grid points are compared on validation queries only, and every method's LDS is then reported
        // on the other queries (the validation ones are left out of every reported LDS, source level and ceilings included).
        bool tuning = options.HoldOutAlways || calibrates || specs.Any(s => Grid(s.Options).Count > 1);
        int[]? validation = null;
        if (tuning)
        {
            int v = (int)Math.Round(options.TuneFraction * q);
            if (v < 2 || q - v < 2)
            {
                throw new MethodOptionException($"tuning a method grid needs at least 2 validation and 2 reported queries; --test {q} with --tune-fraction {options.TuneFraction} gives {v} and {q - v}.");
            }

            validation = [.. new Rng(options.Seed ^ 0x600).Permutation(q).AsSpan(0, v).ToArray().Order()];
            var (validationQueries, actual) = Validation(queries, validation, plan, truth.Primary, data.InputWidth);
            calibration = new CalibrationSet(validationQueries, scores => Lds.Correlate(Lds.Predict(scores.Scores, v, n, plan.Subsets), actual, plan.Count, v).Mean,
                string.Create(CultureInfo.InvariantCulture, $"LDS on the {v} validation queries"));
        }

        var held = validation?.ToHashSet() ?? [];
        var topKQueries = new Rng(options.Seed ^ 0x200).Permutation(q).AsSpan(0, Math.Min(options.TopKQueries, q)).ToArray();
        var results = new List<MethodResult>();
        foreach (var (spec, (name, opts)) in options.Methods.Zip(specs))
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new RetrainProgress(results.Count, specs.Count, $"scoring {spec}"));
            int models = ModelsOf(opts);
            var grid = Grid(opts);
            List<(string Config, double Lds)>? tuned = null;
            var chosen = grid[0];
            if (grid.Count > 1)
            {
                (chosen, tuned) = Tune(name, grid, problemBase(models), queries, validation!, plan, truth.Primary, progress, spec, cancellationToken);
            }

            var method = createMethod(name, chosen);
            var (scores, pre, preCpu, single, batched, singleCpu, batchedCpu) = MethodMeasurement.Measure(method, problemBase(models), queries, options.LatencyQueries, options.BatchSize, cancellationToken);
            var sourceScores = sourcePlan is null ? null : method.ScoreSources(queries, cancellationToken);
            var sourceLds = sourceScores is null ? null : Reported(SourceLds.Compute(sourceScores, q, sourcePlan!, sourceTruth!.Primary), held);
            // Non-finite scores make their queries' LDS undefined (skipped); say so in the row rather than abort the run.
            long nonFinite = NonFinite(scores.Scores), nonFiniteSources = sourceScores is null ? 0 : NonFinite(sourceScores);
            var predicted = Lds.Predict(scores.Scores, q, n, plan.Subsets);
            var lds = Reported(Lds.Correlate(predicted, truth.Primary, plan.Count, q), held);
            var ldsMean = options.SeedsPerSubset > 1 ? Reported(Lds.Correlate(predicted, target, plan.Count, q), held) : null;
            var looSummary = loo is null ? null : LeaveOneOut.Correlate(scores, loo);
            TopKRemovalResult? topK = null;
            if (options.TopK > 0 && topKQueries.Length > 0)
            {
                topK = TopKRemoval.Run(scores, topKQueries, options.TopK, [fullSeeds[0]], options.Seed ^ 0x300, measure, progress, cancellationToken);
            }

            var label = tuned is null ? spec : $"{Spec(name, chosen)} (tuned)";
            var description = method.Describe() + (tuned is null ? string.Empty : string.Create(CultureInfo.InvariantCulture,
                $"; chosen from {tuned.Count} configurations of {spec} by LDS on {validation!.Length} validation queries ({tuned.Max(t => t.Lds):F3}), reported on the other {q - validation.Length}"))
                + (nonFinite + nonFiniteSources == 0 ? string.Empty : string.Create(CultureInfo.InvariantCulture,
                    $"; NON-FINITE SCORES: {nonFinite} of {scores.Scores.Length} example scores, {nonFiniteSources} of {sourceScores?.Length ?? 0} source scores (their queries are skipped)"));
            results.Add(new MethodResult(label, description, lds, ldsMean, looSummary, topK,
                pre, Percentiles.Of(single, 50), Percentiles.Of(single, 99), Percentiles.Of(batched, 50), Percentiles.Of(batched, 99),
                options.BatchSize, method.StateBytes, predicted, sourceLds, tuned, singleCpu, batchedCpu, preCpu));
        }

        var ceiling = truth.NoiseCeiling() is { } c ? Reported(c, held) : null;
        return new EvalOutcome(options, data, cache.SettingHash, canonical, plan, truth, ceiling, accuracy,
            cache.Misses, cache.Hits, retrainSeconds, loo, results, sourceIds, sourceTruth, validation,
            sourceTruth?.NoiseCeiling() is { } sc ? Reported(sc, held) : null);
    }

    /// <summary>
    /// Precomputes every grid point and scores it on the validation queries only; returns the configuration with the
    /// highest validation LDS and every point's validation LDS (for the report).
    /// </summary>
    private (Dictionary<string, string> Chosen, List<(string Config, double Lds)> All) Tune(string name, List<Dictionary<string, string>> grid,
        AttributionProblem problem, QueryBatch queries, int[] validation, SubsetPlan plan, double[] truth, IProgress<RetrainProgress>? progress, string spec,
        CancellationToken cancellationToken)
    {
        int v = validation.Length;
        var (held, actual) = Validation(queries, validation, plan, truth, problem.InputWidth);
        var all = new List<(string Config, double Lds)>();
        Dictionary<string, string>? best = null;
        double bestLds = double.NegativeInfinity;
        foreach (var combo in grid)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new RetrainProgress(all.Count, grid.Count, $"scoring {spec}: tuning {Spec(name, combo)}"));
            var method = createMethod(name, combo);
            method.Precompute(problem, cancellationToken);
            var scores = method.Score(held, cancellationToken);
            var lds = Lds.Correlate(Lds.Predict(scores.Scores, v, problem.Count, plan.Subsets), actual, plan.Count, v).Mean;
            all.Add((Spec(name, combo), lds));
            if (lds > bestLds || best is null)
            {
                (best, bestLds) = (combo, double.IsNaN(lds) ? double.NegativeInfinity : lds);
            }
        }

        return (best!, all);
    }

    // The validation queries as a batch and their ground truth [subset, validation query].
    private static (QueryBatch Held, double[] Actual) Validation(QueryBatch queries, int[] validation, SubsetPlan plan, double[] truth, int f)
    {
        int q = queries.Count, v = validation.Length;
        var x = new float[v * f];
        var y = new int[v];
        var actual = new double[plan.Count * v];
        for (int k = 0; k < v; k++)
        {
            queries.Inputs.AsSpan(validation[k] * f, f).CopyTo(x.AsSpan(k * f, f));
            y[k] = queries.Labels[validation[k]];
            for (int j = 0; j < plan.Count; j++)
            {
                actual[(j * v) + k] = truth[(j * q) + validation[k]];
            }
        }

        return (new QueryBatch(x, y, f), actual);
    }

    private static long NonFinite(ReadOnlySpan<float> values)
    {
        long count = 0;
        foreach (var v in values)
        {
            count += float.IsFinite(v) ? 0 : 1;
        }

        return count;
    }

    // The summary over the reported queries only: validation queries become NaN (and are not counted as skipped).
    internal static MetricSummary Reported(MetricSummary summary, HashSet<int> validation)
    {
        if (validation.Count == 0)
        {
            return summary;
        }

        var perQuery = summary.PerQuery.Select((v, k) => validation.Contains(k) ? double.NaN : v).ToArray();
        var reported = MetricSummary.FromPerQuery(perQuery);
        return reported with { Skipped = reported.Skipped - validation.Count };
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

}
