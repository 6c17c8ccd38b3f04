using System.Text.Json;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Ingest;

/// <summary>
/// A language-model run written by <c>./pipeline train --model gpt</c>: <c>run.json</c> (the <see cref="GptRecipe"/> under
/// <c>recipe</c>; corpus spec, tokenizer and training document ids under <c>data</c>) beside the Hugging Face layout
/// checkpoint. Its one checkpoint is at the run's last step; its examples are the training documents (63-bit stable ids),
/// their sources the corpus's sources, and each batch event carries the documents' token ids as the model trained on them.
/// </summary>
public sealed class LanguageRun : RunData
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly Dictionary<long, (int Source, int[] Tokens)> _documents;

    private LanguageRun(GptRecipe recipe, string architecture, string checkpointPath, long[] trainIds, Dictionary<long, (int, int[])> documents, string corpus, string tokenizer)
    {
        Recipe = recipe;
        CheckpointPath = checkpointPath;
        TrainDocumentIds = trainIds;
        _documents = documents;
        CheckpointRecipe = new CheckpointRecipe(architecture, recipe.LearningRate, recipe.WeightDecay, recipe.BatchSize, recipe.Seed, corpus, tokenizer);
        BytesPerExample = 12 + (4 * documents.Values.Select(d => d.Item2.Length).DefaultIfEmpty(0).Max());
    }

    /// <summary>The training recipe.</summary>
    public GptRecipe Recipe { get; }

    /// <summary>The checkpoint file (absolute).</summary>
    public string CheckpointPath { get; }

    /// <summary>Training document ids, in run.json order.</summary>
    public long[] TrainDocumentIds { get; }

    /// <inheritdoc />
    public override CheckpointRecipe CheckpointRecipe { get; }

    /// <inheritdoc />
    public override int BytesPerExample { get; }

    /// <summary>Whether <paramref name="directory"/>'s run.json is a language-model run's (its recipe has a transformer <c>config</c>).</summary>
    public static bool IsLanguageRun(string directory)
    {
        var path = Path.Combine(directory, RunDirectory.ManifestFile);
        if (!File.Exists(path))
        {
            return false;
        }

        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("recipe", out var r)
                && r.ValueKind == JsonValueKind.Object && r.TryGetProperty("config", out _);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Reads the run: recipe, training documents (from the corpus it names) and their framed token ids.</summary>
    public static LanguageRun Load(string directory)
    {
        var path = Path.Combine(directory, RunDirectory.ManifestFile);
        GptRecipe recipe;
        long[] trainIds;
        string corpusSpec, tokenizerName, checkpoint;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            recipe = root.GetProperty("recipe").Deserialize<GptRecipe>(Json) ?? throw new RunFormatException($"{path}: 'recipe' is null.");
            var data = root.GetProperty("data");
            trainIds = data.GetProperty("trainDocumentIds").Deserialize<long[]>(Json) ?? [];
            corpusSpec = data.GetProperty("corpus").GetString() ?? "";
            tokenizerName = data.GetProperty("tokenizer").GetString() ?? "";
            checkpoint = root.GetProperty("checkpoint").GetString() ?? "";
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new RunFormatException($"{path}: not a language-model run manifest as './pipeline train --model gpt' writes it (recipe.config, data.corpus, data.tokenizer, data.trainDocumentIds, checkpoint): {e.Message}", e);
        }

        var checkpointPath = Path.GetFullPath(Path.Combine(directory, checkpoint));
        if (!File.Exists(checkpointPath))
        {
            throw new RunFormatException($"{path} names checkpoint '{checkpoint}' but {checkpointPath} does not exist; re-run './pipeline train --model gpt'.");
        }

        TextCorpus corpus;
        ITokenizer tokenizer;
        try
        {
            corpus = TextCorpus.Load(corpusSpec);
            tokenizer = Tokenizers.Create(tokenizerName);
        }
        catch (Exception e) when (e is ArgumentException or IOException or DataFormatException or UnauthorizedAccessException)
        {
            throw new RunFormatException($"{path}: corpus '{corpusSpec}' or tokenizer '{tokenizerName}' cannot be loaded here: {e.Message}", e);
        }

        var byId = corpus.Documents.ToDictionary(d => d.Id);
        var documents = new Dictionary<long, (int, int[])>(trainIds.Length);
        foreach (var id in trainIds)
        {
            if (!byId.TryGetValue(id, out var d))
            {
                throw new RunFormatException($"{path}: training document {id} is not in corpus '{corpusSpec}' as installed here (a different package version?); Ingest publishes only documents it can read.");
            }

            documents[id] = (d.SourceId, tokenizer.EncodeDocument(d.Bytes));
        }

        // The architecture string is the model's own (IModel.Architecture), taken from a model of the recipe's shape.
        var architecture = new GptModel(new Gpt(recipe.Config, seed: 0)).Architecture;
        return new LanguageRun(recipe, architecture, checkpointPath, trainIds, documents, corpus.Spec, tokenizer.Name);
    }

    /// <summary>The corpus source of each training document (run.json order).</summary>
    public long[] SourceIds => [.. TrainDocumentIds.Select(id => (long)_documents[id].Source)];

    /// <inheritdoc />
    public override TrainingBatch Batch(string runId, long step, long[] exampleIds, long[] sourceIds, string where) =>
        new(runId, step, exampleIds, sourceIds, Documents: [.. exampleIds.Select(id => _documents.TryGetValue(id, out var d) ? d.Tokens
            : throw new RunFormatException($"{where}: document {id} is not a training document of this run."))]);
}
