using Attribution.Attribution;
using Attribution.Contracts;

namespace Attribution.Scorer;

/// <summary>
/// The scores of a batch of queries: row q of <see cref="Examples"/> holds query q's score for every example (aligned
/// with <see cref="IQueryScorer.ExampleIds"/>), row q of <see cref="Sources"/> its score for every source.
/// </summary>
public sealed record QueryScores(int Count, float[] Examples, float[] Sources)
{
    /// <summary>Query <paramref name="q"/>'s example scores.</summary>
    public ReadOnlyMemory<float> ExampleRow(int q) => Examples.AsMemory(q * (Examples.Length / Math.Max(Count, 1)), Examples.Length / Math.Max(Count, 1));

    /// <summary>Query <paramref name="q"/>'s source scores.</summary>
    public ReadOnlyMemory<float> SourceRow(int q) => Sources.AsMemory(q * (Sources.Length / Math.Max(Count, 1)), Sources.Length / Math.Max(Count, 1));
}

/// <summary>
/// What the Scorer's pipeline needs from a live model: check a query against it, score a batch of queries against
/// every example and source, and rank a query's examples. The attribution maths stays behind this interface:
/// <see cref="AttributionModelScorer"/> (the image classifier's forward-only readout from probes)
/// and <see cref="LanguageModelScorer"/> (a language model's text queries through the forward-only method imported from
/// its probe set), both built by <see cref="ProbeIndex"/>.
/// </summary>
public interface IQueryScorer
{
    /// <summary>Model version written into attributions (run@step).</summary>
    string Version { get; }

    /// <summary>Method name written into attributions.</summary>
    string Method { get; }

    /// <summary>The model output the scores explain, written into attributions (<see cref="AttributionResult.OutputFunction"/>).</summary>
    string OutputFunction { get; }

    /// <summary>Example ids, in score-column order.</summary>
    IReadOnlyList<long> ExampleIds { get; }

    /// <summary>Source id of each example (aligned with <see cref="ExampleIds"/>), or null when the scorer does not know them.</summary>
    IReadOnlyList<long>? ExampleSourceIds { get; }

    /// <summary>Source ids, in score-column order.</summary>
    IReadOnlyList<long> SourceIds { get; }

    /// <summary>Source names (aligned with <see cref="SourceIds"/>), or null when the scorer does not know them.</summary>
    IReadOnlyList<string>? SourceNames { get; }

    /// <summary>Each example's response norm (for relative influence), aligned with <see cref="ExampleIds"/>.</summary>
    ReadOnlyMemory<float> ExampleNorms { get; }

    /// <summary>Checks that this model can score <paramref name="query"/> (pure).</summary>
    /// <exception cref="QueryRejectedException">It cannot, with what to fix.</exception>
    void Validate(ModelQuery query);

    /// <summary>Scores validated <paramref name="queries"/> in one batched readout.</summary>
    QueryScores Score(IReadOnlyList<ModelQuery> queries);

    /// <summary>Query <paramref name="q"/>'s top <paramref name="k"/> (example column, score), best first.</summary>
    (int Example, float Score)[] TopK(QueryScores scores, int q, int k);
}

/// <summary>The forward-only readout of a live <see cref="AttributionModel"/> as an <see cref="IQueryScorer"/>.</summary>
public sealed class AttributionModelScorer : IQueryScorer
{
    /// <summary>What the classifier's attributions explain.</summary>
    public const string MarginOutput = "predicted-class margin: z_y - logsumexp(z_j, j != y) of the logits, y = the class the model predicts";

    /// <summary>Wraps <paramref name="model"/>; each example's source id comes from the map its source scores sum over.</summary>
    public AttributionModelScorer(AttributionModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        ExampleSourceIds = ExampleSourceMap.Ids(model.ExampleSources, model.SourceIds, nameof(model));
    }

    /// <summary>The wrapped model.</summary>
    public AttributionModel Model { get; }

    /// <inheritdoc />
    public string Version => Model.Version;

    /// <inheritdoc />
    public string Method => BatchScorer.MethodName;

    /// <inheritdoc />
    public string OutputFunction => MarginOutput;

    /// <summary>Features per query.</summary>
    public int InputWidth => Model.InputWidth;

    /// <inheritdoc />
    public IReadOnlyList<long> ExampleIds => Model.ExampleIds;

    /// <inheritdoc />
    public IReadOnlyList<long>? ExampleSourceIds { get; }

    /// <inheritdoc />
    public IReadOnlyList<long> SourceIds => Model.SourceIds;

    /// <inheritdoc />
    public IReadOnlyList<string>? SourceNames => null;

    /// <inheritdoc />
    public ReadOnlyMemory<float> ExampleNorms => Model.ExampleNorms;

    /// <inheritdoc />
    public void Validate(ModelQuery query) => QueryValidator.Validate(query, InputWidth);

    /// <inheritdoc />
    public QueryScores Score(IReadOnlyList<ModelQuery> queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        int d = InputWidth, n = queries.Count;
        var x = PackFeatures(queries, d);

        var scores = Model.Score(x, n);
        return new QueryScores(n, scores.ExampleScores, scores.SourceScores);
    }

    /// <inheritdoc />
    public (int Example, float Score)[] TopK(QueryScores scores, int q, int k)
    {
        ArgumentNullException.ThrowIfNull(scores);
        return ScoreMatrix.TopK(scores.ExampleRow(q).Span, k);
    }

    /// <summary>The queries' features as one row-major [queries, width] block; a query without features or of another width is refused, named.</summary>
    internal static float[] PackFeatures(IReadOnlyList<ModelQuery> queries, int width)
    {
        var x = new float[(long)queries.Count * width];
        for (int q = 0; q < queries.Count; q++)
        {
            var features = queries[q].Features ?? throw new ArgumentException($"query '{queries[q].QueryId}' has no features", nameof(queries));
            if (features.Count != width)
            {
                throw new ArgumentException($"query '{queries[q].QueryId}' has {features.Count} features for a model of width {width}", nameof(queries));
            }

            var destination = x.AsSpan(q * width, width);
            switch (features)
            {
                case float[] array:
                    array.CopyTo(destination);
                    break;
                case ArraySegment<float> segment:
                    segment.AsSpan().CopyTo(destination);
                    break;
                default:
                    for (int j = 0; j < width; j++)
                    {
                        destination[j] = features[j];
                    }

                    break;
            }
        }

        return x;
    }
}
