namespace Attribution.Attribution;

/// <summary>
/// A method whose query splits into a fixed part and a per-document part: <see cref="Prepare"/> turns the queries into
/// what the stored documents are read against (the query's gradient factors, its projection: a cost that does not grow
/// with the number of documents), and <see cref="Readout"/> reads every stored document against it.
/// <see cref="IAttributionMethod.Score"/> is exactly <c>Readout.Score(Prepare(queries))</c>: one code path, exposed in two
/// parts so benchmarks can time the per-document part apart from the fixed part.
/// </summary>
public interface IPreparedScoring : IAttributionMethod
{
    /// <summary>The fixed part of a query: everything that does not read the stored documents. Requires Precompute (or ImportState).</summary>
    PreparedQueries Prepare(QueryBatch queries, CancellationToken cancellationToken = default);

    /// <summary>The per-document part over the stored documents. Requires Precompute (or ImportState).</summary>
    IDocumentReadout Readout { get; }

    /// <summary>
    /// The per-document part over the stored documents repeated <paramref name="factor"/> times (document
    /// <c>j·n + i</c> is document i, with its source), reading the same prepared queries: the per-document cost at
    /// n·factor documents without simulating or precomputing again (for cost measurement).
    /// </summary>
    IDocumentReadout RepeatedReadout(int factor);
}

/// <summary>The per-document part of a method's query (<see cref="IPreparedScoring"/>): stored documents read against prepared queries.</summary>
public interface IDocumentReadout
{
    /// <summary>Documents n the readout scores.</summary>
    int Documents { get; }

    /// <summary>Bytes of the stored documents the readout reads.</summary>
    long Bytes { get; }

    /// <summary>Scores [queries, documents] and their per-source sums for queries prepared by the same method.</summary>
    /// <exception cref="ArgumentException">The queries were prepared by another kind of method.</exception>
    ScoreMatrix Score(PreparedQueries queries, CancellationToken cancellationToken = default);
}

/// <summary>Queries after a method's fixed part (<see cref="IPreparedScoring.Prepare"/>): their count and the method's own form of them.</summary>
public sealed class PreparedQueries
{
    /// <summary>Wraps <paramref name="payload"/> (null only when there are no queries) for <paramref name="count"/> queries.</summary>
    public PreparedQueries(int count, object? payload)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > 0)
        {
            ArgumentNullException.ThrowIfNull(payload);
        }

        Count = count;
        Payload = payload;
    }

    /// <summary>Number of queries q.</summary>
    public int Count { get; }

    /// <summary>The preparing method's form of the queries (gradient factors, projected vectors...).</summary>
    public object? Payload { get; }

    /// <summary>The payload as <typeparamref name="T"/>, or a clear error naming <paramref name="readout"/>.</summary>
    public T As<T>(string readout)
        where T : class => Payload as T
        ?? throw new ArgumentException($"{readout} reads queries prepared as {typeof(T).Name}; these were prepared as {Payload?.GetType().Name ?? "nothing"} (prepare them with the same method).");
}
