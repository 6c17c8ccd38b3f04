using System.Globalization;
using System.Text;
using System.Text.Json;
using Attribution.Engine.Data;
using Attribution.Ingest;

namespace Attribution.Downstream;

/// <summary>What a training example looked like: an image's pixels or a document's text.</summary>
/// <param name="ExampleId">Training example id.</param>
/// <param name="Label">Class name (images) or null.</param>
/// <param name="Rows">Image height (0 for text).</param>
/// <param name="Cols">Image width (0 for text).</param>
/// <param name="Pixels">Grey levels 0..255, row-major, or null for text.</param>
/// <param name="Text">Text snippet, or null for images.</param>
public sealed record ExamplePreview(long ExampleId, string? Label, int Rows, int Cols, byte[]? Pixels, string? Text);

/// <summary>
/// A training run as downstream readers need it: source names and flags (<c>sources.json</c>), each example's source, and
/// previews of examples (FashionMNIST images, fortunes text) read from the dataset named in <c>run.json</c>. Without a
/// run directory every source is "source N" and there are no previews.
/// </summary>
public sealed class TrainingCatalog
{
    private const int SnippetChars = 280;
    private readonly Dictionary<long, SourceInfo> _sources;
    private readonly IReadOnlyDictionary<string, long> _exampleSources;
    private readonly Lazy<Func<long, ExamplePreview?>> _previews;
    private readonly string? _corpus;

    private TrainingCatalog(SourcesFile? sources, string? dataset, string? corpus = null)
    {
        _corpus = corpus;
        _sources = (sources?.Sources ?? []).ToDictionary(s => s.Id);
        _exampleSources = sources?.ExampleSources ?? new Dictionary<string, long>();
        Dataset = dataset;
        _previews = new Lazy<Func<long, ExamplePreview?>>(() => LoadPreviews(dataset, _corpus), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>A catalog with no sources and no previews.</summary>
    public static TrainingCatalog Empty { get; } = new(null, null);

    /// <summary>The dataset named by run.json ("fashion-mnist", "fortunes"), or null.</summary>
    public string? Dataset { get; }

    /// <summary>Known sources, by id.</summary>
    public IReadOnlyCollection<SourceInfo> Sources => _sources.Values;

    /// <summary>Reads <c>sources.json</c> and <c>run.json</c> from <paramref name="runDirectory"/> (either may be missing).</summary>
    /// <exception cref="InvalidDataException">A file exists but is not valid JSON of its kind (the message names it).</exception>
    public static TrainingCatalog Load(string? runDirectory)
    {
        if (runDirectory is null)
        {
            return Empty;
        }

        var options = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
        SourcesFile? sources = null;
        var sourcesPath = Path.Combine(runDirectory, RunScanner.SourcesFileName);
        string? dataset = null;
        string? corpus = null;
        var runPath = Path.Combine(runDirectory, "run.json");
        try
        {
            if (File.Exists(sourcesPath))
            {
                sources = JsonSerializer.Deserialize<SourcesFile>(File.ReadAllText(sourcesPath), options);
            }

            if (File.Exists(runPath))
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(runPath));
                dataset = FindDataName(doc.RootElement, 0);
                // A language-model run names its text corpus spec (e.g. "fortunes,jargon") in its recipe.
                corpus = FindString(doc.RootElement, "corpus", 0);
                dataset ??= corpus is null ? null : "text";
            }
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{(sources is null ? sourcesPath : runPath)} is not valid JSON ({e.Message}); fix or delete it.", e);
        }

        return new TrainingCatalog(sources, dataset, corpus);
    }

    /// <summary>The source's name from sources.json, else "source N".</summary>
    public string SourceName(long sourceId) => _sources.TryGetValue(sourceId, out var s) ? s.Name : string.Create(CultureInfo.InvariantCulture, $"source {sourceId}");

    /// <summary>Whether sources.json flags the source (leaked benchmark, unlicensed data).</summary>
    public bool IsFlagged(long sourceId) => _sources.TryGetValue(sourceId, out var s) && s.Flagged;

    /// <summary>The source of a training example, or null when unknown.</summary>
    public long? SourceOf(long exampleId) =>
        _exampleSources.TryGetValue(exampleId.ToString(CultureInfo.InvariantCulture), out var s) ? s : null;

    /// <summary>The example's image or text, or null when the dataset is unknown or has no such example.</summary>
    public ExamplePreview? Preview(long exampleId) => Dataset is null ? null : _previews.Value(exampleId);

    private static string? FindDataName(JsonElement e, int depth)
    {
        if (e.ValueKind != JsonValueKind.Object || depth > 3)
        {
            return null;
        }

        foreach (var p in e.EnumerateObject())
        {
            if (p.NameEquals("data") && p.Value.ValueKind == JsonValueKind.Object && p.Value.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String)
            {
                return n.GetString();
            }
        }

        return e.EnumerateObject().Select(p => FindDataName(p.Value, depth + 1)).FirstOrDefault(n => n is not null);
    }

    private static string? FindString(JsonElement e, string name, int depth)
    {
        if (e.ValueKind != JsonValueKind.Object || depth > 3)
        {
            return null;
        }

        foreach (var p in e.EnumerateObject())
        {
            if (p.NameEquals(name) && p.Value.ValueKind == JsonValueKind.String)
            {
                return p.Value.GetString();
            }
        }

        return e.EnumerateObject().Select(p => FindString(p.Value, name, depth + 1)).FirstOrDefault(n => n is not null);
    }

    private static Func<long, ExamplePreview?> LoadPreviews(string? dataset, string? corpusSpec)
    {
        try
        {
            switch (dataset)
            {
                case "fashion-mnist":
                    var train = FashionMnist.Load().Train;
                    return id => id < 0 || id >= train.Count ? null
                        : new ExamplePreview(id, FashionMnist.ClassNames[train.Labels[id]], train.Rows, train.Cols,
                            train.Pixels.AsSpan((int)id * train.Features, train.Features).ToArray(), null);
                case "fortunes" or "text":
                    // Example ids are a document's stable id or, failing that, its index in the corpus.
                    var docs = TextCorpus.Load(corpusSpec ?? "fortunes").Documents;
                    var byId = docs.GroupBy(d => d.Id).ToDictionary(g => g.Key, g => g.First());
                    return id => byId.TryGetValue(id, out var d) || (id >= 0 && id < docs.Count && (d = docs[(int)id]) is not null)
                        ? new ExamplePreview(id, null, 0, 0, null, Snippet(d!.Bytes)) : null;
                default:
                    return _ => null;
            }
        }
        catch (Exception e) when (e is IOException or DataFormatException or UnauthorizedAccessException or ArgumentException)
        {
            // Previews are a convenience: without the dataset files the console still shows ids, sources and scores.
            return _ => null;
        }
    }

    private static string Snippet(byte[] bytes)
    {
        var text = Encoding.UTF8.GetString(bytes).Trim();
        return text.Length <= SnippetChars ? text : string.Concat(text.AsSpan(0, SnippetChars), "…");
    }
}
