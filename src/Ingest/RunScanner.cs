using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Attribution.Engine.IO;
using Attribution.Engine.Training;

namespace Attribution.Ingest;

/// <summary>A run directory could not be read; the message says which file, what is wrong and how to fix it.</summary>
public sealed class RunFormatException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A checkpoint found in a run directory with the examples (and their sources) trained up to it.</summary>
/// <param name="Step">Optimiser step.</param>
/// <param name="Path">Absolute path of the safetensors file.</param>
/// <param name="ExampleIds">Examples of the batches this checkpoint adds (since the previous checkpoint).</param>
/// <param name="SourceIds">Source of each example.</param>
public sealed record FoundCheckpoint(long Step, string Path, long[] ExampleIds, long[] SourceIds);

/// <summary>The sources file (<c>sources.json</c>) of a run directory.</summary>
public sealed record SourcesFile
{
    /// <summary>Source descriptions.</summary>
    public IReadOnlyList<SourceInfo> Sources { get; init; } = [];

    /// <summary>Example id (decimal string) → source id.</summary>
    public IReadOnlyDictionary<string, long> ExampleSources { get; init; } = new Dictionary<string, long>();
}

/// <summary>One data source: id, name, and whether it is flagged (test-set, licensed...).</summary>
public sealed record SourceInfo(long Id, string Name, bool Flagged);

/// <summary>A trainer's batch manifest (<c>batches/step-N.json</c>).</summary>
public sealed record BatchManifest
{
    /// <summary>Example ids trained since the previous checkpoint.</summary>
    public long[] ExampleIds { get; init; } = [];

    /// <summary>Source of each example (optional; else sources.json or the seeded assignment).</summary>
    public long[]? SourceIds { get; init; }
}

/// <summary>
/// Reads a run directory. Two layouts:
/// <list type="bullet">
/// <item>ours (<c>./pipeline train</c>): <c>run.json</c> + <c>model.safetensors</c>: one checkpoint at the run's last
/// step, whose examples are the recipe's train ids (a language-model run's: its training documents, sources the corpus's
/// sources, <see cref="LanguageRun"/>);</item>
/// <item>a trainer's: <c>checkpoints/step-&lt;N&gt;.safetensors</c> + <c>batches/step-&lt;N&gt;.json</c>
/// (<see cref="BatchManifest"/>: the examples trained after the previous checkpoint up to step N), plus <c>run.json</c>
/// (the recipe; Ingest puts it on every checkpoint event). A checkpoint without its manifest is not ready yet and is skipped.</item>
/// </list>
/// Sources come from the manifest, else from <c>sources.json</c> (<see cref="SourcesFile"/>), else from a seeded hash of
/// the example id modulo the source count (stable across restarts and instances).
/// </summary>
public sealed partial class RunScanner(string directory, int sourceCount, ulong sourceSeed)
{
    /// <summary>Sources file name.</summary>
    public const string SourcesFileName = "sources.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>
    /// In our layout, also the checkpoints saved along training (run.json's <c>trainingCheckpoints</c>, <c>train
    /// --save-every</c>) before the final model, each at its step with the recipe's train ids (<c>Ingest:TrainingCheckpoints</c>).
    /// </summary>
    public bool TrainingCheckpoints { get; init; }

    /// <summary>The directory (absolute).</summary>
    public string Directory { get; } = System.IO.Path.GetFullPath(directory);

    /// <summary>Checkpoints ready to publish, in step order.</summary>
    public IReadOnlyList<FoundCheckpoint> Scan()
    {
        var sources = LoadSources();
        var checkpoints = System.IO.Path.Combine(Directory, "checkpoints");
        if (System.IO.Directory.Exists(checkpoints))
        {
            var found = new List<FoundCheckpoint>();
            foreach (var file in System.IO.Directory.EnumerateFiles(checkpoints, "step-*.safetensors"))
            {
                var m = StepName().Match(System.IO.Path.GetFileName(file));
                if (!m.Success || !long.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var step))
                {
                    continue;
                }

                var manifestPath = System.IO.Path.Combine(Directory, "batches", $"step-{m.Groups[1].Value}.json");
                if (!File.Exists(manifestPath))
                {
                    continue;
                }

                var manifest = ReadJson<BatchManifest>(manifestPath, "{\"exampleIds\": [1, 2], \"sourceIds\": [0, 3]}");
                if (manifest.SourceIds is { } s && s.Length != manifest.ExampleIds.Length)
                {
                    throw new RunFormatException($"{manifestPath}: {manifest.ExampleIds.Length} exampleIds but {s.Length} sourceIds; give one source per example or leave sourceIds out.");
                }

                found.Add(new FoundCheckpoint(step, file, manifest.ExampleIds, manifest.SourceIds ?? Assign(manifest.ExampleIds, sources, manifestPath)));
            }

            return [.. found.OrderBy(c => c.Step)];
        }

        var runJson = System.IO.Path.Combine(Directory, RunDirectory.ManifestFile);
        if (!File.Exists(runJson))
        {
            return [];
        }

        if (LanguageRun.IsLanguageRun(Directory))
        {
            var lm = LanguageRun.Load(Directory);
            return [new FoundCheckpoint(lm.Recipe.Steps, lm.CheckpointPath, lm.TrainDocumentIds, lm.SourceIds)];
        }

        RunManifest run;
        try
        {
            run = RunDirectory.LoadManifest(Directory);
        }
        catch (RecipeException e)
        {
            throw new RunFormatException(e.Message, e);
        }

        var path = System.IO.Path.Combine(Directory, run.Checkpoint);
        if (!File.Exists(path))
        {
            throw new RunFormatException($"{runJson} names checkpoint '{run.Checkpoint}' but {path} does not exist; re-run './pipeline train'.");
        }

        var ids = run.Recipe.Data.TrainIds.Select(i => (long)i).ToArray();
        long lastStep = run.Metrics.Steps > 0 ? run.Metrics.Steps : run.Recipe.TotalSteps;
        var assigned = Assign(ids, sources, runJson);
        var along = new List<FoundCheckpoint>();
        if (TrainingCheckpoints)
        {
            // The last one saved is the model itself (train saves every N epochs and the last): published once, as the final model.
            foreach (var c in run.TrainingCheckpoints.Where(c => c.Step < lastStep).OrderBy(c => c.Step))
            {
                var file = System.IO.Path.Combine(Directory, c.File);
                if (!File.Exists(file))
                {
                    throw new RunFormatException($"{runJson} lists training checkpoint '{c.File}' (step {c.Step}) but {file} does not exist; re-run './pipeline train --save-every N' or set Ingest:TrainingCheckpoints to false.");
                }

                along.Add(new FoundCheckpoint(c.Step, file, ids, assigned));
            }
        }

        return [.. along, new FoundCheckpoint(lastStep, path, ids, assigned)];
    }

    /// <summary>
    /// The run's training recipe from <c>run.json</c> (both layouts need it: every checkpoint event states the run's
    /// architecture and recipe, so no service looks for files beside a checkpoint).
    /// </summary>
    public TrainingRecipe LoadRecipe()
    {
        var runJson = System.IO.Path.Combine(Directory, RunDirectory.ManifestFile);
        if (!File.Exists(runJson))
        {
            throw new RunFormatException($"{runJson} is missing: every checkpoint event states the run's architecture and training recipe, which Ingest reads from it. './pipeline train' writes it; a trainer writes one beside checkpoints/ (a RunManifest: {{\"recipe\": {{\"model\": {{\"widths\": [784, 128, 10]}}, ...}}}}).");
        }

        try
        {
            return RunDirectory.LoadManifest(Directory).Recipe;
        }
        catch (RecipeException e)
        {
            throw new RunFormatException(e.Message, e);
        }
    }

    /// <summary>The sources file, or null when the directory has none.</summary>
    public SourcesFile? LoadSources()
    {
        var path = System.IO.Path.Combine(Directory, SourcesFileName);
        return File.Exists(path) ? ReadJson<SourcesFile>(path, "{\"sources\": [{\"id\": 0, \"name\": \"web\", \"flagged\": false}], \"exampleSources\": {\"17\": 0}}") : null;
    }

    /// <summary>sha256 of a file as "sha256:&lt;hex&gt;" and its scalar parameter count (the file must be valid safetensors).</summary>
    public static (string Checksum, long ParameterCount) Describe(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (IOException e)
        {
            throw new RunFormatException($"{path}: cannot read the checkpoint: {e.Message}", e);
        }

        long count;
        try
        {
            count = Safetensors.Read(path).Tensors.Sum(t => (long)t.Data.Length);
        }
        catch (SafetensorsException e)
        {
            throw new RunFormatException($"{path}: not a valid safetensors checkpoint (still being written? trainers should write to a temp name and rename): {e.Message}", e);
        }

        return ("sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)), count);
    }

    /// <summary>The seeded source of an example: a SplitMix64 hash of (id, seed) modulo the source count.</summary>
    public static long SeededSource(long exampleId, ulong seed, int sourceCount)
    {
        ulong z = unchecked((ulong)exampleId + seed * 0x9E3779B97F4A7C15UL + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (long)(z % (ulong)sourceCount);
    }

    private long[] Assign(long[] ids, SourcesFile? sources, string where)
    {
        var result = new long[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            if (sources is null)
            {
                result[i] = SeededSource(ids[i], sourceSeed, sourceCount);
            }
            else if (sources.ExampleSources.TryGetValue(ids[i].ToString(CultureInfo.InvariantCulture), out var s) && s >= 0)
            {
                result[i] = s;
            }
            else
            {
                throw new RunFormatException($"{System.IO.Path.Combine(Directory, SourcesFileName)}: example {ids[i]} (from {where}) has no non-negative source in exampleSources; add it or delete the file to use the seeded assignment.");
            }
        }

        return result;
    }

    private static T ReadJson<T>(string path, string example)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path), Json) ?? throw new RunFormatException($"{path}: empty JSON; expected e.g. {example}.");
        }
        catch (JsonException e)
        {
            throw new RunFormatException($"{path}: invalid at {e.Path ?? "$"} (line {e.LineNumber + 1}): {e.Message}; expected e.g. {example}.", e);
        }
    }

    [GeneratedRegex(@"^step-(\d{1,18})\.safetensors$")]
    private static partial Regex StepName();
}
