using System.Text.Json;
using Attribution.Attribution;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Cli.Evaluation;

/// <summary>
/// A language-model run written by <c>./pipeline train --model gpt</c> (run.json + the Hugging Face GPT-2 checkpoint),
/// opened for attribution: the model, its corpus and tokenizer, the training documents (attribution units, in run.json
/// order) and the held-out documents that become queries. <see cref="Problem"/> and <see cref="Queries"/> build what
/// every <see cref="IAttributionMethod"/> takes.
/// </summary>
internal sealed class LanguageModelRun
{
    private LanguageModelRun(GptConfig config, float[] theta, TextCorpus corpus, ITokenizer tokenizer, int[] train, int[] validation, float weightDecay, float learningRate)
    {
        Config = config;
        Theta = theta;
        Corpus = corpus;
        Tokenizer = tokenizer;
        TrainDocuments = train;
        ValidationDocuments = validation;
        WeightDecay = weightDecay;
        LearningRate = learningRate;
    }

    /// <summary>Model shape.</summary>
    public GptConfig Config { get; }

    /// <summary>Trained parameters (flat, <see cref="GptModel"/> order).</summary>
    public float[] Theta { get; }

    /// <summary>The run's corpus.</summary>
    public TextCorpus Corpus { get; }

    /// <summary>The run's tokenizer.</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>Training documents (indices into <see cref="TextCorpus.Documents"/>), the attribution units in order.</summary>
    public int[] TrainDocuments { get; }

    /// <summary>Held-out documents (indices), the query pool.</summary>
    public int[] ValidationDocuments { get; }

    /// <summary>AdamW weight decay of the recipe.</summary>
    public float WeightDecay { get; }

    /// <summary>Peak learning rate of the recipe.</summary>
    public float LearningRate { get; }

    /// <summary>True when <paramref name="directory"/>'s run.json is a language-model run (it lists training document ids).</summary>
    public static bool IsLanguageModelRun(string directory)
    {
        var path = Path.Combine(directory, RunDirectory.ManifestFile);
        if (!File.Exists(path))
        {
            return false;
        }

        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("data", out var data)
                && data.ValueKind == JsonValueKind.Object && data.TryGetProperty("trainDocumentIds", out _);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Opens a run; every problem (missing file, unknown document id, tokenizer mismatch) is an ArgumentException naming the file and the fix.</summary>
    public static LanguageModelRun Load(string directory, CorpusLocations? locations = null)
    {
        var path = Path.Combine(directory, RunDirectory.ManifestFile);
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{path}: not valid JSON ({e.Message}).", e);
        }

        var data = Get(root, "data", path);
        string spec = Get(data, "corpus", path).GetString() ?? throw new ArgumentException($"{path}: data.corpus is not a string.");
        string tokenizerName = Get(data, "tokenizer", path).GetString() ?? throw new ArgumentException($"{path}: data.tokenizer is not a string.");
        var recipe = Get(root, "recipe", path);
        float weightDecay = recipe.TryGetProperty("weightDecay", out var wd) ? wd.GetSingle() : 0f;
        float learningRate = recipe.TryGetProperty("learningRate", out var lr) ? lr.GetSingle() : 0f;
        var model = new GptModel(GptCheckpoint.Load(directory));
        var theta = new float[model.ParameterCount];
        model.CopyTo(theta);
        var tokenizer = Tokenizers.Create(tokenizerName);
        var corpus = TextCorpus.Load(spec, locations);
        var byId = corpus.Documents.ToDictionary(d => d.Id, d => d.Index);
        int[] Indices(string name) => [.. Get(data, name, path).EnumerateArray().Select(e => byId.TryGetValue(e.GetInt64(), out var i)
            ? i
            : throw new ArgumentException($"{path}: {name} holds document id {e.GetInt64()}, which corpus '{spec}' on this machine does not have (a different package version?); retrain the run here."))];
        return new LanguageModelRun(model.Gpt.Config, theta, corpus, tokenizer, Indices("trainDocumentIds"), Indices("validationDocumentIds"), weightDecay, learningRate);
    }

    /// <summary>
    /// The attribution problem: one unit per training document (its first Context + 1 framed tokens, see
    /// <see cref="AttributionProblem.Documents"/>), sources = the corpus sources. <paramref name="limit"/> &gt; 0 keeps only
    /// the first that many training documents (run.json order) as units.
    /// </summary>
    public AttributionProblem Problem(int limit = 0)
    {
        var units = limit > 0 ? TrainDocuments[..Math.Min(limit, TrainDocuments.Length)] : TrainDocuments;
        var docs = units.Select(i => Tokenizer.EncodeDocument(Corpus.Documents[i].Bytes)).ToArray();
        // The training learning rate is AdamW's and says nothing about a plain gradient step, so forward-only's step
        // size stays 1 / (h_max + λ) (TrainingLearningRate is left unknown).
        return AttributionProblem.ForGpt(Config, Theta, docs, [.. units.Select(i => Corpus.Documents[i].SourceId)], Corpus.Sources.Count, WeightDecay);
    }

    /// <summary>
    /// A held-out document as a query: its framed tokens split in the middle (at least the document start and one token
    /// as the prompt), the completion the next tokens up to half the context.
    /// </summary>
    public CompletionQuery Query(int validationPosition)
    {
        if ((uint)validationPosition >= (uint)ValidationDocuments.Length)
        {
            throw new ArgumentException($"query {validationPosition} is outside the run's {ValidationDocuments.Length} held-out documents (0..{ValidationDocuments.Length - 1}).");
        }

        var doc = Corpus.Documents[ValidationDocuments[validationPosition]];
        var tokens = Tokenizer.EncodeDocument(doc.Bytes);
        if (tokens.Length < 3)
        {
            throw new ArgumentException($"held-out document {validationPosition} (id {doc.Id}) has {tokens.Length} tokens; a query needs a prompt and a completion (3 or more).");
        }

        int split = Math.Max(2, tokens.Length / 2);
        int completion = Math.Min(tokens.Length - split, Math.Max(1, Config.Context / 2));
        return new CompletionQuery(tokens[..split], tokens[split..(split + completion)]);
    }

    /// <summary>The queries of held-out documents at <paramref name="validationPositions"/> (see <see cref="Query"/>).</summary>
    public QueryBatch Queries(IReadOnlyList<int> validationPositions) =>
        QueryBatch.Completions([.. validationPositions.Select(Query)], Config.Context);

    private static JsonElement Get(JsonElement e, string name, string path) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v
            : throw new ArgumentException($"{path}: no '{name}' in this run manifest; is it a './pipeline train --model gpt' run?");
}
