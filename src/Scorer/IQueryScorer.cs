using Attribution.Attribution;

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
/// What the Scorer's pipeline needs from a live probe set: score a batch of queries against every example and source,
/// and rank a query's examples. The attribution maths stays behind this interface (today <see cref="AttributionModel"/>).
/// </summary>
public interface IQueryScorer
{
    /// <summary>Model version written into attributions (run@step).</summary>
    string Version { get; }

    /// <summary>Features per query.</summary>
    int InputWidth { get; }

    /// <summary>Example ids, in score-column order.</summary>
    IReadOnlyList<long> ExampleIds { get; }

    /// <summary>Source ids, in score-column order.</summary>
    IReadOnlyList<long> SourceIds { get; }

    /// <summary>Each example's response norm (for relative influence), aligned with <see cref="ExampleIds"/>.</summary>
    ReadOnlyMemory<float> ExampleNorms { get; }

    /// <summary>Scores <paramref name="count"/> queries whose features are row-major in <paramref name="inputs"/> ([count, InputWidth]).</summary>
    QueryScores Score(float[] inputs, int count);

    /// <summary>Query <paramref name="q"/>'s top <paramref name="k"/> (example column, score), best first.</summary>
    (int Example, float Score)[] TopK(QueryScores scores, int q, int k);
}

/// <summary>The forward-only readout of a live <see cref="AttributionModel"/> as an <see cref="IQueryScorer"/>.</summary>
public sealed class AttributionModelScorer(AttributionModel model) : IQueryScorer
{
    /// <summary>The wrapped model.</summary>
    public AttributionModel Model { get; } = model ?? throw new ArgumentNullException(nameof(model));

    /// <inheritdoc />
    public string Version => Model.Version;

    /// <inheritdoc />
    public int InputWidth => Model.InputWidth;

    /// <inheritdoc />
    public IReadOnlyList<long> ExampleIds => Model.ExampleIds;

    /// <inheritdoc />
    public IReadOnlyList<long> SourceIds => Model.SourceIds;

    /// <inheritdoc />
    public ReadOnlyMemory<float> ExampleNorms => Model.ExampleNorms;

    /// <inheritdoc />
    public QueryScores Score(float[] inputs, int count)
    {
        var scores = Model.Score(inputs, count);
        return new QueryScores(count, scores.ExampleScores, scores.SourceScores);
    }

    /// <inheritdoc />
    public (int Example, float Score)[] TopK(QueryScores scores, int q, int k)
    {
        ArgumentNullException.ThrowIfNull(scores);
        return ScoreMatrix.TopK(scores.ExampleRow(q).Span, k);
    }
}
