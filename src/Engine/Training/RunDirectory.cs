using System.Text;
using System.Text.Json;
using Attribution.Engine.IO;
using Attribution.Engine.Models;

namespace Attribution.Engine.Training;

/// <summary>
/// A run directory: <c>run.json</c> (a <see cref="RunManifest"/>: recipe, metrics, checkpoint name) and
/// <c>model.safetensors</c>. Both are written atomically, checkpoint first, so a directory with run.json is complete.
/// </summary>
public static class RunDirectory
{
    /// <summary>Manifest file name.</summary>
    public const string ManifestFile = "run.json";

    /// <summary>Checkpoint file name.</summary>
    public const string CheckpointFile = "model.safetensors";

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Writes the checkpoint and the manifest into <paramref name="directory"/> (created if needed).</summary>
    public static void Save(string directory, RunManifest manifest, IReadOnlyList<Parameter> parameters)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(manifest);
        Directory.CreateDirectory(directory);
        var recipeJson = JsonSerializer.Serialize(manifest.Recipe, JsonOptions);
        Safetensors.Write(Path.Combine(directory, manifest.Checkpoint), parameters, new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["recipe"] = recipeJson,
        });
        WriteAtomic(Path.Combine(directory, ManifestFile), manifest.ToJson());
    }

    /// <summary>Reads and validates <c>run.json</c> in <paramref name="directory"/>.</summary>
    public static RunManifest LoadManifest(string directory)
    {
        var path = Path.Combine(directory, ManifestFile);
        if (!File.Exists(path))
        {
            throw new RecipeException($"{path}: no run manifest here; train one with './pipeline train --out {directory}'.");
        }

        RunManifest? m;
        try
        {
            m = JsonSerializer.Deserialize<RunManifest>(File.ReadAllText(path), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new RecipeException($"{path}: not a valid run manifest at {e.Path ?? "$"} (line {e.LineNumber + 1}): {e.Message}", e);
        }

        if (m?.Recipe is null)
        {
            throw new RecipeException($"{path}: the manifest has no recipe.");
        }

        var errors = m.Recipe.Validate();
        if (errors.Count > 0)
        {
            throw new RecipeException($"{path}: invalid recipe: {string.Join(" ", errors)}");
        }

        return m;
    }

    /// <summary>Loads the manifest and its MLP checkpoint; shapes must match the recipe's widths.</summary>
    public static (RunManifest Manifest, Mlp Model) LoadMlp(string directory)
    {
        var manifest = LoadManifest(directory);
        var model = new Mlp(new MlpLayout(manifest.Recipe.Model.Widths));
        var path = Path.Combine(directory, manifest.Checkpoint);
        Safetensors.LoadInto(Safetensors.Read(path), model.Parameters, path);
        return (manifest, model);
    }

    /// <summary>Folder of the checkpoints saved along training (not <c>checkpoints/</c>: that is a trainer layout the Ingest scans).</summary>
    public const string TrainingCheckpointFolder = "training-checkpoints";

    /// <summary>Writes one checkpoint saved along training and returns its manifest entry (file relative to the run).</summary>
    public static TrainingCheckpoint SaveTrainingCheckpoint(string directory, int epoch, long step, IReadOnlyList<Parameter> parameters)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var relative = Path.Combine(TrainingCheckpointFolder, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"epoch-{epoch:D4}.safetensors"));
        Directory.CreateDirectory(Path.Combine(directory, TrainingCheckpointFolder));
        Safetensors.Write(Path.Combine(directory, relative), parameters, new Dictionary<string, string> { ["format"] = "pt", ["epoch"] = epoch.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return new TrainingCheckpoint(epoch, step, relative);
    }

    /// <summary>Loads the checkpoints saved along training (in manifest order) as flat parameter vectors.</summary>
    public static IReadOnlyList<float[]> LoadTrainingCheckpoints(string directory, RunManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var result = new List<float[]>();
        foreach (var c in manifest.TrainingCheckpoints)
        {
            var model = new Mlp(new MlpLayout(manifest.Recipe.Model.Widths));
            var path = Path.Combine(directory, c.File);
            Safetensors.LoadInto(Safetensors.Read(path), model.Parameters, path);
            result.Add(model.ToFlat());
        }

        return result;
    }

    /// <summary>Parses a recipe from JSON text, validating it; <paramref name="source"/> names it in errors.</summary>
    public static TrainingRecipe ParseRecipe(string json, string source)
    {
        TrainingRecipe? r;
        try
        {
            r = JsonSerializer.Deserialize<TrainingRecipe>(json, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new RecipeException($"{source}: not a valid recipe at {e.Path ?? "$"}: {e.Message}", e);
        }

        if (r is null)
        {
            throw new RecipeException($"{source}: empty recipe.");
        }

        var errors = r.Validate();
        if (errors.Count > 0)
        {
            throw new RecipeException($"{source}: invalid recipe: {string.Join(" ", errors)}");
        }

        return r;
    }

    /// <summary>Serialises a recipe as run.json does.</summary>
    public static string ToJson(TrainingRecipe recipe) => JsonSerializer.Serialize(recipe, JsonOptions);

    private static void WriteAtomic(string path, string text)
    {
        var tmp = path + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(tmp, text, new UTF8Encoding(false));
        File.Move(tmp, path, overwrite: true);
    }
}
