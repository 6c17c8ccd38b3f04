using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// BM25 over training documents (<see cref="Bm25Index"/>), a lexical baseline for language models: the query is its
/// whole token sequence (prompt and completion), each training document its framed tokens, terms are token n-grams.
/// A score is a non-negative similarity, not a counterfactual effect: larger means "shares more rare n-grams with the
/// query", read as more helpful. Source scores are the sums over each source's documents.
/// </summary>
public sealed class Bm25Method(int ngram = 1, float k1 = 1.2f, float b = 0.75f) : IAttributionMethod
{
    private Bm25Index? _index;
    private AttributionProblem? _problem;

    /// <inheritdoc />
    public string Name => "bm25";

    /// <inheritdoc />
    public string Describe() => FormattableString.Invariant($"BM25 over token {ngram}-grams, k1 {k1}, b {b}");

    /// <inheritdoc />
    public long StateBytes => _index?.StateBytes ?? 0;

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        if (!problem.IsLanguageModel)
        {
            throw new ArgumentException($"bm25 attributes token sequences; the model {problem.Architecture} takes float inputs.", nameof(problem));
        }

        _index = new Bm25Index(Sequences(problem.Training), ngram, k1, b);
        _problem = problem;
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var problem = _problem ?? throw new InvalidOperationException("bm25: call Precompute first.");
        var index = _index!;
        problem.CheckQueries(queries);
        var rows = Sequences(queries.Batch);
        int n = index.Count;
        var scores = new float[(long)rows.Length * n];
        for (int q = 0; q < rows.Length; q++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            index.Score(rows[q], scores.AsSpan(q * n, n));
        }

        return new ScoreMatrix(scores, rows.Length, n, problem.SourceIds, problem.SourceCount);
    }

    /// <summary>
    /// The token sequence of every row: its inputs up to the last position with a target, then that target (a framed
    /// training document, or a query's prompt and completion); padding is left out, a row with no target is empty.
    /// </summary>
    public static int[][] Sequences(in ModelBatch batch)
    {
        var tokens = batch.Tokens ?? throw new ArgumentException("BM25 reads token rows, not float inputs.", nameof(batch));
        int t = batch.SequenceLength;
        var rows = new int[batch.Count][];
        for (int i = 0; i < batch.Count; i++)
        {
            int length = batch.TargetExtent(i);

            rows[i] = length == 0 ? [] : [.. tokens.AsSpan(i * t, length), batch.Labels[(i * t) + length - 1]];
        }

        return rows;
    }
}
