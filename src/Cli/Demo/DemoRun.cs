using System.Text.Json;
using Attribution.Cli.Commands;
using Attribution.Engine.Data;
using Attribution.Engine.Training;
using Attribution.Ingest;
using Spectre.Console;

namespace Attribution.Cli.Demo;

/// <summary>
/// The demo's training run: the FashionMNIST MLP trained once and cached in a run directory, plus its
/// <c>sources.json</c>: ten "publishers" sharing the training set at random, and one flagged source — an evaluation
/// suite that leaked into the training data — whose items the demo later replays as live queries.
/// </summary>
internal sealed class DemoRun
{
    public const long LeakedSourceId = 1_000;

    private DemoRun(string directory, RunManifest manifest, SourcesFile sources, FashionMnistData data)
    {
        Directory = directory;
        Manifest = manifest;
        Sources = sources;
        Data = data;
    }

    public string Directory { get; }
    public RunManifest Manifest { get; }
    public SourcesFile Sources { get; }
    public FashionMnistData Data { get; }

    public IEnumerable<long> LeakedExampleIds =>
        Sources.ExampleSources.Where(kv => kv.Value == LeakedSourceId).Select(kv => long.Parse(kv.Key, System.Globalization.CultureInfo.InvariantCulture)).Order();

    public string SourceName(long id) => Sources.Sources.FirstOrDefault(s => s.Id == id)?.Name ?? $"source {id}";

    public static DemoRun EnsureTrained(DemoSettings settings)
    {
        var data = FashionMnist.Load();
        var dir = Path.GetFullPath(settings.RunDirectory);
        var sourcesPath = Path.Combine(dir, RunScanner.SourcesFileName);
        if (TryReuse(dir, settings) is { } cached)
        {
            AnsiConsole.MarkupLine($"[grey]Reusing the trained model in {Markup.Escape(dir)} (test accuracy {cached.Metrics.TestAccuracy:P1}; delete the folder to retrain).[/]");
            var existing = TryReadSources(sourcesPath);
            if (existing is null || !SourcesFit(existing, cached.Recipe.Data.TrainIds, settings))
            {
                existing = AssignSources(cached.Recipe.Data.TrainIds, settings);
                WriteAtomically(sourcesPath, JsonSerializer.Serialize(existing, JsonOptions));
            }

            return new DemoRun(dir, cached, existing, data);
        }

        var recipe = TrainingRecipe.DefaultMlp(
            SubsetSelector.Select(data.Train.Count, settings.TrainSize, settings.Seed),
            SubsetSelector.Select(data.Test.Count, 2_000, settings.Seed + 1),
            settings.Epochs,
            settings.Seed);
        MlpTrainingResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"Training the MLP on {settings.TrainSize:N0} FashionMNIST images", maxValue: recipe.TotalSteps);
                result = MlpTrainer.Train(recipe, data, new InlineProgress<TrainingProgress>(p => task.Value = p.Step));
            });
        var manifest = new RunManifest { Recipe = recipe, Metrics = result!.Metrics, CreatedUtc = DateTime.UtcNow.ToString("O") };
        RunDirectory.Save(dir, manifest, result.Model.Parameters);
        var sources = AssignSources(recipe.Data.TrainIds, settings);
        WriteAtomically(sourcesPath, JsonSerializer.Serialize(sources, JsonOptions));
        AnsiConsole.MarkupLine($"Trained the MLP: test accuracy [bold]{result.Metrics.TestAccuracy:P1}[/] ({result.Metrics.TrainSeconds:F1} s); run directory {Markup.Escape(dir)}");
        return new DemoRun(dir, manifest, sources, data);
    }

    private static RunManifest? TryReuse(string dir, DemoSettings settings)
    {
        try
        {
            var m = RunDirectory.LoadManifest(dir);
            var r = m.Recipe;
            return r.Data.TrainIds.Length == settings.TrainSize && r.Epochs == settings.Epochs && r.Seed == settings.Seed ? m : null;
        }
        catch (Exception e) when (e is IOException or RecipeException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static SourcesFile AssignSources(int[] trainIds, DemoSettings settings)
    {
        // The Simulator probes the first --simulate examples one by one (every source is probed whole), so the leaked
        // items are drawn from those: the demo can then show each leaked query pointing back at its own training copy.
        var probed = trainIds.Take(Math.Max(settings.Simulate, settings.LeakedExamples)).ToArray();
        new Engine.Rng(settings.Seed + 7).Shuffle(probed.AsSpan());
        var leaked = probed.Take(settings.LeakedExamples).ToHashSet();
        var map = new Dictionary<string, long>(trainIds.Length);
        var rng = new Engine.Rng(settings.Seed + 8);
        foreach (var id in trainIds)
        {
            long source = leaked.Contains(id) ? LeakedSourceId : rng.NextInt(settings.Publishers);
            map[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = source;
        }

        var infos = Enumerable.Range(0, settings.Publishers)
            .Select(p => new SourceInfo(p, $"publisher-{(char)('A' + p % 26)}{(p >= 26 ? (p / 26).ToString(System.Globalization.CultureInfo.InvariantCulture) : "")}", false))
            .Append(new SourceInfo(LeakedSourceId, "eval-suite-v2 (leaked benchmark)", true))
            .ToList();
        return new SourcesFile { Sources = infos, ExampleSources = map };
    }

    private static bool SourcesFit(SourcesFile sources, int[] trainIds, DemoSettings settings)
    {
        var probed = trainIds.Take(Math.Max(settings.Simulate, settings.LeakedExamples)).Select(id => id.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
        var leaked = sources.ExampleSources.Where(kv => kv.Value == LeakedSourceId).Select(kv => kv.Key).ToList();
        return sources.ExampleSources.Count == trainIds.Length
            && leaked.Count == settings.LeakedExamples
            && leaked.All(probed.Contains)
            && sources.Sources.Count(s => !s.Flagged) == settings.Publishers;
    }

    private static SourcesFile? TryReadSources(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<SourcesFile>(File.ReadAllText(path), JsonOptions) : null;
        }
        catch (JsonException)
        {
            return null; // rewritten below
        }
    }

    private static void WriteAtomically(string path, string text)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
}
