using Attribution.Attribution;
using Attribution.Contracts;
using Attribution.Engine.Models;

namespace Attribution.Scorer;

/// <summary>
/// Image-classifier queries scored through an <see cref="IAttributionMethod"/> imported from a probe set (STRIDE; the
/// forward-only readout has its own <see cref="AttributionModelScorer"/>): the class the checkpoint predicts by a
/// forward pass, then the method's <see cref="IAttributionMethod.Score"/> of that class's margin, the very object
/// <c>attribute</c> and <c>eval</c> score with. Source scores are the method's (<see cref="ScoreMatrix.SourceScores"/>:
/// for STRIDE the sums of the examples'). Readouts are serialised (the method keeps work buffers);
/// <see cref="ExampleNorms"/> is 1 for every example.
/// </summary>
public sealed class ImageMethodScorer : IQueryScorer
{
    private readonly IAttributionMethod _method;
    private readonly Mlp _model;
    private readonly Lock _gate = new();
    private readonly float[] _norms;

    /// <summary>
    /// Serves <paramref name="method"/> (imported for the examples <paramref name="exampleIds"/>, in that order, with
    /// sources <paramref name="exampleSources"/> as indices into <paramref name="sourceIds"/>) on the checkpoint
    /// <paramref name="model"/> (θ loaded).
    /// </summary>
    public ImageMethodScorer(string version, IAttributionMethod method, Mlp model, IReadOnlyList<long> exampleIds, IReadOnlyList<int> exampleSources, IReadOnlyList<long> sourceIds)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(exampleIds);
        ArgumentNullException.ThrowIfNull(exampleSources);
        ArgumentNullException.ThrowIfNull(sourceIds);
        if (exampleSources.Count != exampleIds.Count)
        {
            throw new ArgumentException($"{exampleIds.Count} examples with {exampleSources.Count} sources: each needs one.", nameof(exampleSources));
        }

        Version = version;
        _method = method;
        _model = model;
        ExampleIds = [.. exampleIds];
        ExampleSourceIds = ExampleSourceMap.Ids(exampleSources, sourceIds, nameof(exampleSources));
        SourceIds = [.. sourceIds];
        _norms = new float[exampleIds.Count];
        Array.Fill(_norms, 1f);
    }

    /// <inheritdoc />
    public string Version { get; }

    /// <inheritdoc />
    public string Method => _method.Name;

    /// <inheritdoc />
    public string OutputFunction => AttributionModelScorer.MarginOutput;

    /// <summary>Features per query.</summary>
    public int InputWidth => _model.InputWidth;

    /// <inheritdoc />
    public IReadOnlyList<long> ExampleIds { get; }

    /// <inheritdoc />
    public IReadOnlyList<long>? ExampleSourceIds { get; }

    /// <inheritdoc />
    public IReadOnlyList<long> SourceIds { get; }

    /// <inheritdoc />
    public IReadOnlyList<string>? SourceNames => null;

    /// <inheritdoc />
    public ReadOnlyMemory<float> ExampleNorms => _norms;

    /// <inheritdoc />
    public void Validate(ModelQuery query) => QueryValidator.Validate(query, InputWidth);

    /// <inheritdoc />
    public QueryScores Score(IReadOnlyList<ModelQuery> queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        int d = InputWidth, n = queries.Count;
        var x = AttributionModelScorer.PackFeatures(queries, d);

        ScoreMatrix scores;
        lock (_gate)
        {
            var predicted = new int[n];
            _model.Predict(x, n, predicted);
            scores = _method.Score(new QueryBatch(x, predicted, d));
        }

        if (scores.ExampleCount != ExampleIds.Count || scores.SourceScores.Length != (long)n * SourceIds.Count)
        {
            throw new InvalidOperationException($"the method scored {scores.ExampleCount} examples and {scores.SourceScores.Length / Math.Max(1, n)} sources; this scorer serves {ExampleIds.Count} and {SourceIds.Count}.");
        }

        return new QueryScores(n, scores.Scores, scores.SourceScores);
    }

    /// <inheritdoc />
    public (int Example, float Score)[] TopK(QueryScores scores, int q, int k)
    {
        ArgumentNullException.ThrowIfNull(scores);
        return ScoreMatrix.TopK(scores.ExampleRow(q).Span, k);
    }
}
