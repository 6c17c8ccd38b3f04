using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Models;

namespace Attribution.Scorer;

/// <summary>
/// A language model's text queries scored through an <see cref="IAttributionMethod"/> on its training documents (built
/// by <see cref="ProbeIndex"/> from the probe set: the same method class and state <c>./pipeline attribute</c>,
/// <c>eval</c> and the benchmarks score with). A query becomes a <see cref="CompletionQuery"/>
/// (<see cref="QueryValidator.ValidateText"/>), a batch becomes one <see cref="QueryBatch.Completions"/> readout; the
/// output explained is <see cref="CompletionQuery.OutputFunction"/>. Document scores are the method's
/// <see cref="IAttributionMethod.Score"/>, source scores the sums of their documents' scores
/// (<see cref="ScoreMatrix.SourceScores"/>, every method). Methods keep work buffers,
/// so readouts are serialised. The method's scores are compared as they are: <see cref="ExampleNorms"/> is 1 for every
/// document (no per-document normalisation for the example-lead alert rule).
/// </summary>
public sealed class LanguageModelScorer : IQueryScorer
{
    private readonly IAttributionMethod _method;
    private readonly Lock _gate = new();
    private readonly float[] _norms;

    /// <summary>
    /// Serves <paramref name="method"/> (already precomputed on the problem whose documents are
    /// <paramref name="documentIds"/>, in that order, with sources <paramref name="documentSources"/> as indices into
    /// <paramref name="sourceIds"/> / <paramref name="sourceNames"/>).
    /// </summary>
    public LanguageModelScorer(string version, IAttributionMethod method, GptConfig config, ITokenizer tokenizer,
        IReadOnlyList<long> documentIds, IReadOnlyList<int> documentSources, IReadOnlyList<long> sourceIds, IReadOnlyList<string> sourceNames)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(documentIds);
        ArgumentNullException.ThrowIfNull(documentSources);
        ArgumentNullException.ThrowIfNull(sourceIds);
        ArgumentNullException.ThrowIfNull(sourceNames);
        if (documentSources.Count != documentIds.Count || sourceNames.Count != sourceIds.Count)
        {
            throw new ArgumentException($"{documentIds.Count} documents with {documentSources.Count} sources, {sourceIds.Count} source ids with {sourceNames.Count} names: each needs one.");
        }

        if (tokenizer.VocabSize > config.VocabSize)
        {
            throw new ArgumentException($"the tokenizer '{tokenizer.Name}' has {tokenizer.VocabSize} ids but the model's vocabulary holds {config.VocabSize}.", nameof(tokenizer));
        }

        Version = version;
        _method = method;
        Config = config;
        Tokenizer = tokenizer;
        ExampleIds = [.. documentIds];
        ExampleSourceIds = ExampleSourceMap.Ids(documentSources, sourceIds, nameof(documentSources));
        SourceIds = [.. sourceIds];
        SourceNames = [.. sourceNames];
        _norms = new float[documentIds.Count];
        Array.Fill(_norms, 1f);
    }

    /// <summary>The model's configuration (vocabulary, context).</summary>
    public GptConfig Config { get; }

    /// <summary>The model's tokenizer: queries must name it.</summary>
    public ITokenizer Tokenizer { get; }

    /// <inheritdoc />
    public string Version { get; }

    /// <inheritdoc />
    public string Method => _method.Name;

    /// <summary>The served method as configured and loaded (<see cref="IAttributionMethod.Describe"/>: e.g. the compressed readout's basis size and the energy it keeps).</summary>
    public string MethodDescription => _method.Describe();

    /// <inheritdoc />
    public string OutputFunction => CompletionQuery.OutputFunction;

    /// <inheritdoc />
    public IReadOnlyList<long> ExampleIds { get; }

    /// <inheritdoc />
    public IReadOnlyList<long>? ExampleSourceIds { get; }

    /// <inheritdoc />
    public IReadOnlyList<long> SourceIds { get; }

    /// <inheritdoc />
    public IReadOnlyList<string>? SourceNames { get; }

    /// <inheritdoc />
    public ReadOnlyMemory<float> ExampleNorms => _norms;

    /// <inheritdoc />
    public void Validate(ModelQuery query) => QueryValidator.ValidateText(query, Tokenizer, Config.VocabSize, Config.Context);

    /// <summary>
    /// The tokens of <paramref name="query"/> that the span stage searches the training corpus for: the prompt (without
    /// the document-start token the readout frames it with) followed by the completion.
    /// </summary>
    public int[] SpanTokens(ModelQuery query)
    {
        var completion = QueryValidator.ValidateText(query, Tokenizer, Config.VocabSize, Config.Context);
        return [.. completion.Prompt.AsSpan(1), .. completion.Completion];
    }

    /// <inheritdoc />
    public QueryScores Score(IReadOnlyList<ModelQuery> queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var completions = queries.Select(q => QueryValidator.ValidateText(q, Tokenizer, Config.VocabSize, Config.Context)).ToArray();
        var batch = QueryBatch.Completions(completions, Config.Context);
        ScoreMatrix scores;
        float[] sources;
        lock (_gate)
        {
            // Forward-only reads documents and whole-simulated sources from one set of query factors; the other served
            // method (STRIDE) keeps no per-source state: its source scores are its Score's (the documents' sums), one readout.
            (scores, sources) = _method switch
            {
                ForwardOnlyMethod fo => fo.ScoreAll(batch),
                RelativeInfluenceMethod relative => relative.ScoreAll(batch),
                _ => Both(_method.Score(batch)),
            };
        }

        if (scores.ExampleCount != ExampleIds.Count || sources.Length != (long)queries.Count * SourceIds.Count)
        {
            throw new InvalidOperationException($"the method scored {scores.ExampleCount} documents and {sources.Length / Math.Max(1, queries.Count)} sources; this scorer serves {ExampleIds.Count} and {SourceIds.Count}.");
        }

        return new QueryScores(queries.Count, scores.Scores, sources);
    }

    private static (ScoreMatrix, float[]) Both(ScoreMatrix scores) => (scores, scores.SourceScores);

    /// <inheritdoc />
    public (int Example, float Score)[] TopK(QueryScores scores, int q, int k)
    {
        ArgumentNullException.ThrowIfNull(scores);
        return ScoreMatrix.TopK(scores.ExampleRow(q).Span, k);
    }
}
