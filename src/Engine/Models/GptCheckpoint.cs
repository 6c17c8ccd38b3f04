using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Attribution.Engine.IO;

namespace Attribution.Engine.Models;

/// <summary>
/// Reads and writes a <see cref="Gpt"/> in the Hugging Face GPT-2 checkpoint layout: a directory with <c>config.json</c>
/// (<c>GPT2Config</c> fields) and <c>model.safetensors</c> holding <c>GPT2LMHeadModel</c>'s state dict —
/// <c>transformer.wte.weight</c> [V, C], <c>transformer.wpe.weight</c> [P, C], per block <c>transformer.h.{i}.ln_1</c>,
/// <c>attn.c_attn</c>, <c>attn.c_proj</c>, <c>ln_2</c>, <c>mlp.c_fc</c>, <c>mlp.c_proj</c> (Conv1D weights [in, out]),
/// <c>transformer.ln_f</c>, and <c>lm_head.weight</c> [V, C] only when the head is not tied to <c>wte</c>.
/// </summary>
/// <remarks>
/// Reading accepts the names with or without the <c>transformer.</c> prefix (a <c>GPT2Model</c> state dict has none), skips
/// the attention-mask buffers <c>attn.bias</c> / <c>attn.masked_bias</c> that older <c>transformers</c> versions saved,
/// accepts a tied <c>lm_head.weight</c> when it equals <c>wte</c>, and converts F32, F16, BF16 and F64 tensors to float32.
/// Everything is checked before anything is copied: a missing, extra or mis-shaped tensor raises one
/// <see cref="SafetensorsException"/> naming the tensor with the expected and the found shape, and the model is untouched.
/// </remarks>
public static partial class GptCheckpoint
{
    /// <summary>The configuration file of a checkpoint directory.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>The weights file of a checkpoint directory.</summary>
    public const string WeightsFile = "model.safetensors";

    private const string Prefix = "transformer.";

    /// <summary>
    /// The model's tensors in the Hugging Face layout and order (name, shape, values): projection weights transposed to
    /// Conv1D [in, out], no <c>lm_head.weight</c> when tied. With <paramref name="gradients"/> the values are the
    /// accumulated gradients instead of the parameters (the gradient of the same function in the same layout).
    /// </summary>
    public static IReadOnlyList<(string Name, int[] Shape, float[] Data)> Export(Gpt model, bool gradients = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        var conv = model.ProjectionWeights.ToHashSet();
        var result = new List<(string, int[], float[])>(model.Parameters.Count);
        foreach (var p in model.Parameters)
        {
            var values = gradients ? p.Grad : p.Data;
            if (conv.Contains(p))
            {
                int rows = p.Shape[0], cols = p.Shape[1];
                result.Add((p.Name, [cols, rows], Transpose(values, rows, cols)));
            }
            else
            {
                result.Add((p.Name, [.. p.Shape], (float[])values.Clone()));
            }
        }

        return result;
    }

    /// <summary>
    /// Writes <c>config.json</c> and <c>model.safetensors</c> (F32, metadata <c>format: pt</c> plus
    /// <paramref name="metadata"/>) into <paramref name="directory"/>, each atomically; <c>transformers</c>'
    /// <c>GPT2LMHeadModel.from_pretrained(directory)</c> opens it.
    /// </summary>
    public static void Save(string directory, Gpt model, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(model);
        Directory.CreateDirectory(directory);
        var meta = new Dictionary<string, string>(StringComparer.Ordinal) { ["format"] = "pt" };
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>())
        {
            meta[k] = v;
        }

        var tensors = Export(model).Select(t => (t.Name, (IReadOnlyList<int>)t.Shape, (ReadOnlyMemory<float>)t.Data)).ToArray();
        Safetensors.Write(Path.Combine(directory, WeightsFile), tensors, meta);
        var configPath = Path.Combine(directory, ConfigFile);
        var tmp = configPath + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(tmp, ConfigJson(model.Config));
        File.Move(tmp, configPath, overwrite: true);
    }

    /// <summary>
    /// Opens a checkpoint: <paramref name="path"/> is a directory holding <c>config.json</c> and <c>model.safetensors</c>,
    /// or a <c>.safetensors</c> file with <c>config.json</c> beside it.
    /// </summary>
    public static Gpt Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string weights = Directory.Exists(path) ? Path.Combine(path, WeightsFile) : path;
        string config = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(weights))!, ConfigFile);
        if (!File.Exists(config))
        {
            throw new FileNotFoundException($"GPT checkpoint '{path}': no {ConfigFile} next to the weights (it gives n_head, which the tensors do not); copy the model's Hugging Face config.json there.", config);
        }

        return Load(weights, ReadConfig(config));
    }

    /// <summary>Opens the safetensors file <paramref name="weightsPath"/> as a model of shape <paramref name="config"/>.</summary>
    public static Gpt Load(string weightsPath, GptConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var model = new Gpt(config, seed: 0);
        LoadInto(model, Safetensors.Read(weightsPath), weightsPath);
        return model;
    }

    /// <summary>Copies a Hugging Face GPT-2 state dict into <paramref name="model"/>, checking every tensor first.</summary>
    public static void LoadInto(Gpt model, SafetensorsContent content, string source)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(content);
        var byName = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        foreach (var t in content.Tensors)
        {
            string key = t.Name.StartsWith(Prefix, StringComparison.Ordinal) ? t.Name[Prefix.Length..] : t.Name;
            if (BufferName().IsMatch(key))
            {
                continue;
            }

            if (!byName.TryAdd(key, t))
            {
                throw new SafetensorsException(source, t.Name, $"appears twice, as '{byName[key].Name}' and '{t.Name}' (with and without the '{Prefix}' prefix).");
            }
        }

        var conv = model.ProjectionWeights.ToHashSet();
        var plan = new List<(Parameter P, SafeTensor T, bool Transpose)>();
        foreach (var p in model.Parameters)
        {
            string key = p.Name.StartsWith(Prefix, StringComparison.Ordinal) ? p.Name[Prefix.Length..] : p.Name;
            bool transpose = conv.Contains(p);
            int[] expected = transpose ? [p.Shape[1], p.Shape[0]] : [.. p.Shape];
            if (!byName.Remove(key, out var t))
            {
                throw new SafetensorsException(source, p.Name, $"is missing (expected shape {Shape(expected)}{(transpose ? ", Conv1D [in, out]" : "")}); is this a GPT-2 checkpoint of {Describe(model.Config)}?");
            }

            if (!t.IsFloat)
            {
                throw new SafetensorsException(source, t.Name, $"has dtype {t.Dtype}; parameters must be F32, F16, BF16 or F64.");
            }

            if (!t.Shape.SequenceEqual(expected))
            {
                throw new SafetensorsException(source, t.Name, $"expected shape {Shape(expected)}{(transpose ? " (Conv1D [in, out])" : "")} for {Describe(model.Config)}, found {Shape(t.Shape)}.");
            }

            plan.Add((p, t, transpose));
        }

        if (model.Config.TiedHead && byName.Remove("lm_head.weight", out var head))
        {
            // A tied head saved explicitly (torch.save of the state dict does this): it must be the embedding itself.
            var wte = plan[0].T;
            if (!head.IsFloat || !head.Shape.SequenceEqual(wte.Shape) || !head.Data.AsSpan().SequenceEqual(wte.Data))
            {
                throw new SafetensorsException(source, head.Name, $"differs from transformer.wte.weight but the configuration ties them (tie_word_embeddings true); set \"tie_word_embeddings\": false in {ConfigFile} to load an untied head.");
            }
        }

        if (byName.Count > 0)
        {
            var extra = byName.Values.First();
            throw new SafetensorsException(source, extra.Name, $"is not part of a GPT-2 model of {Describe(model.Config)} ({byName.Count} unexpected tensor(s): {string.Join(", ", byName.Values.Take(5).Select(t => t.Name))}).");
        }

        foreach (var (p, t, transpose) in plan)
        {
            if (transpose)
            {
                Transpose(t.Data, t.Shape[0], t.Shape[1], p.Data);
            }
            else
            {
                t.Data.CopyTo(p.Data, 0);
            }
        }
    }

    /// <summary>The Hugging Face <c>config.json</c> text for <paramref name="config"/> (<c>model_type</c> gpt2).</summary>
    public static string ConfigJson(GptConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("GPT2LMHeadModel"),
            ["model_type"] = "gpt2",
            ["vocab_size"] = config.VocabSize,
            ["n_positions"] = config.Context,
            ["n_ctx"] = config.Context,
            ["n_embd"] = config.DModel,
            ["n_layer"] = config.Layers,
            ["n_head"] = config.Heads,
            ["n_inner"] = config.MlpRatio * config.DModel,
            ["activation_function"] = "gelu_new",
            ["layer_norm_epsilon"] = config.LayerNormEpsilon,
            ["tie_word_embeddings"] = config.TiedHead,
            ["scale_attn_weights"] = true,
            ["scale_attn_by_inverse_layer_idx"] = false,
            ["reorder_and_upcast_attn"] = false,
            ["resid_pdrop"] = 0.0,
            ["embd_pdrop"] = 0.0,
            ["attn_pdrop"] = 0.0,
            ["initializer_range"] = 0.02,
            ["torch_dtype"] = "float32",
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Reads a Hugging Face GPT-2 <c>config.json</c>; options that change the maths in ways this model does
    /// not implement are refused with the field's name.</summary>
    public static GptConfig ReadConfig(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return ParseConfig(File.ReadAllText(path), path);
    }

    /// <summary>Parses <c>config.json</c> text; <paramref name="source"/> names it in errors.</summary>
    public static GptConfig ParseConfig(string json, string source)
    {
        JsonObject o;
        try
        {
            o = JsonNode.Parse(json) as JsonObject ?? throw new FormatException($"{source}: not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new FormatException($"{source}: not valid JSON ({e.Message}).", e);
        }

        int Int(string name, string? fallback = null)
        {
            var node = o[name] ?? (fallback is null ? null : o[fallback]);
            if (node is JsonValue v && v.TryGetValue(out int i))
            {
                return i;
            }

            throw new FormatException($"{source}: '{name}' must be an integer (a GPT-2 config.json has it), found {node?.ToJsonString() ?? "nothing"}.");
        }

        T Get<T>(string name, T fallback)
        {
            var node = o[name];
            if (node is null)
            {
                return fallback;
            }

            return node is JsonValue v && v.TryGetValue(out T? value) ? value! : throw new FormatException($"{source}: '{name}' has an unexpected value {node.ToJsonString()}.");
        }

        string type = Get("model_type", "gpt2");
        if (type != "gpt2")
        {
            throw new FormatException($"{source}: model_type is '{type}'; only GPT-2 ('gpt2') checkpoints are supported.");
        }

        string act = Get("activation_function", "gelu_new");
        if (act is not ("gelu_new" or "gelu_pytorch_tanh" or "gelu_fast"))
        {
            throw new FormatException($"{source}: activation_function '{act}' is not supported; the model uses GELU's tanh approximation (gelu_new, gelu_pytorch_tanh, gelu_fast).");
        }

        if (!Get("scale_attn_weights", true) || Get("scale_attn_by_inverse_layer_idx", false))
        {
            throw new FormatException($"{source}: scale_attn_weights must be true and scale_attn_by_inverse_layer_idx false (scores are scaled by 1/sqrt(head size) only).");
        }

        int embd = Int("n_embd");
        int inner = o["n_inner"] is null ? 4 * embd : Int("n_inner");
        if (embd <= 0 || inner % embd != 0)
        {
            throw new FormatException($"{source}: n_inner {inner} is not a multiple of n_embd {embd}.");
        }

        float eps = (float)Get("layer_norm_epsilon", 1e-5);
        var config = new GptConfig(Int("vocab_size"), Int("n_positions", "n_ctx"), embd, Int("n_head"), Int("n_layer"),
            Get("tie_word_embeddings", true), inner / embd, eps);
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"{source}: {e.Message}", e);
        }

        return config;
    }

    private static string Describe(GptConfig c) =>
        string.Create(CultureInfo.InvariantCulture, $"vocab {c.VocabSize}, {c.Context} positions, width {c.DModel}, {c.Layers} layers{(c.TiedHead ? "" : ", untied head")}");

    private static string Shape(IEnumerable<int> shape) => $"[{string.Join(", ", shape)}]";

    private static float[] Transpose(float[] a, int rows, int cols)
    {
        var r = new float[a.Length];
        Transpose(a, rows, cols, r);
        return r;
    }

    private static void Transpose(float[] a, int rows, int cols, float[] destination)
    {
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                destination[(j * rows) + i] = a[(i * cols) + j];
            }
        }
    }

    [GeneratedRegex(@"^h\.\d+\.attn\.(bias|masked_bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex BufferName();
}
