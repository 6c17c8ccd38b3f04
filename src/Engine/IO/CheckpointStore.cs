using System.Globalization;
using System.Security.Cryptography;
using Attribution.Engine.Models;

namespace Attribution.Engine.IO;

/// <summary>A published checkpoint that cannot be loaded: what, where and how to fix it is in the message.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The one loader of published checkpoints for every service: a <c>file://</c> URI, its <c>sha256:</c> checksum, the
/// safetensors file, and the architecture string (<see cref="IModel.Architecture"/>) → a model holding θ. The
/// Simulator and the Scorer load through it; no service has a loader of its own.
/// </summary>
public static class CheckpointStore
{
    /// <summary>Creates a model of <paramref name="architecture"/> (e.g. <c>mlp:784-128-64-10</c>) with zero parameters.</summary>
    public static IModel Create(string architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        if (architecture.StartsWith("mlp:", StringComparison.Ordinal))
        {
            var parts = architecture[4..].Split('-');
            var widths = new int[parts.Length];
            for (int i = 0; i < parts.Length; i++)
            {
                if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out widths[i]) || widths[i] < 1)
                {
                    throw new CheckpointException($"architecture '{architecture}': width '{parts[i]}' is not a positive integer; write e.g. mlp:784-128-64-10.");
                }
            }

            if (widths.Length < 2)
            {
                throw new CheckpointException($"architecture '{architecture}' needs an input and an output width.");
            }

            return new Mlp(new MlpLayout(widths));
        }

        if (architecture.StartsWith("gpt:", StringComparison.Ordinal))
        {
            return new GptModel(new Gpt(ParseGpt(architecture), seed: 0));
        }

        throw new CheckpointException($"architecture '{architecture}' is not one this engine loads from a checkpoint (known: mlp:<widths joined by '-'>, gpt:vocab=..,context=..,d=..,heads=..,layers=..,mlp=..,tied=0|1).");
    }

    /// <summary>
    /// The transformer shape of a <c>gpt:</c> architecture string as <see cref="GptModel.Architecture"/> writes it
    /// (<c>gpt:vocab=V,context=T,d=C,heads=H,layers=L,mlp=M,tied=0|1</c>; the LayerNorm epsilon is GPT-2's 1e-5).
    /// </summary>
    public static GptConfig ParseGpt(string architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        const string Form = "gpt:vocab=V,context=T,d=C,heads=H,layers=L,mlp=M,tied=0|1";
        if (!architecture.StartsWith("gpt:", StringComparison.Ordinal))
        {
            throw new CheckpointException($"architecture '{Cut(architecture)}' is not a GPT ({Form}).");
        }

        var fields = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var part in architecture[4..].Split(','))
        {
            var kv = part.Split('=');
            if (kv.Length != 2 || !int.TryParse(kv[1], NumberStyles.None, CultureInfo.InvariantCulture, out int v) || !fields.TryAdd(kv[0], v))
            {
                throw new CheckpointException($"architecture '{Cut(architecture)}': '{Cut(part)}' is not a name=integer field (once each); write {Form}.");
            }
        }

        int Get(string name) => fields.TryGetValue(name, out var v) ? v : throw new CheckpointException($"architecture '{Cut(architecture)}' has no '{name}'; write {Form}.");
        var config = new GptConfig(Get("vocab"), Get("context"), Get("d"), Get("heads"), Get("layers"), Get("tied") switch
        {
            0 => false,
            1 => true,
            _ => throw new CheckpointException($"architecture '{Cut(architecture)}': tied must be 0 or 1."),
        }, Get("mlp"));
        if (fields.Count != 7)
        {
            throw new CheckpointException($"architecture '{Cut(architecture)}' has fields beyond {Form}.");
        }

        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"architecture '{Cut(architecture)}': {e.Message}", e);
        }

        return config;
    }

    private static string Cut(string s) => s.Length <= 120 ? s : s[..120] + "…";

    /// <summary>Reads the file behind a <c>file://</c> URI and checks it against its <c>sha256:</c> checksum.</summary>
    public static byte[] ReadVerified(string uri, string checksum)
    {
        ArgumentNullException.ThrowIfNull(uri);
        ArgumentNullException.ThrowIfNull(checksum);
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || !parsed.IsFile)
        {
            throw new CheckpointException($"checkpoint uri '{uri}' is not a file:// uri; checkpoints are read from a file system shared with the trainer.");
        }

        var path = parsed.LocalPath;
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException)
        {
            throw new CheckpointException($"cannot read checkpoint {path} ({e.GetType().Name}); the service must see the trainer's file system at the same path.", e);
        }

        var actual = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (!string.Equals(actual, checksum, StringComparison.OrdinalIgnoreCase))
        {
            throw new CheckpointException($"{path} has checksum {actual} but the checkpoint event says {checksum}; the file changed after it was published. Re-publish it (run Ingest again) or restore the original file.");
        }

        return bytes;
    }

    /// <summary>Loads a verified checkpoint into a new model of <paramref name="architecture"/>.</summary>
    public static IModel Load(string uri, string checksum, string architecture)
    {
        var model = Create(architecture);
        var bytes = ReadVerified(uri, checksum);
        try
        {
            if (model is GptModel gpt)
            {
                // The Hugging Face GPT-2 layout (Conv1D weights stored [in, out]): the transformer's own reader.
                GptCheckpoint.LoadInto(gpt.Gpt, Safetensors.Parse(bytes, uri), uri);
            }
            else
            {
                Safetensors.LoadInto(Safetensors.Parse(bytes, uri), model.Parameters, uri);
            }
        }
        catch (SafetensorsException e)
        {
            throw new CheckpointException($"{uri} does not hold a model of architecture {architecture}: {e.Message}", e);
        }

        return model;
    }

    /// <summary>θ of a verified checkpoint as a flat vector in the architecture's layout.</summary>
    public static float[] LoadFlat(string uri, string checksum, string architecture)
    {
        var model = Load(uri, checksum, architecture);
        var flat = new float[model.ParameterCount];
        model.CopyTo(flat);
        return flat;
    }
}
