using System.Globalization;
using Attribution.Contracts;

namespace Attribution.Transport;

/// <summary>Pipeline events on the log: one Arrow IPC stream per record value, with the standard headers.</summary>
public static class ArrowEvents
{
    /// <summary>The content-type, schema-version and event-type headers of an event type (shared, read-only).</summary>
    public static IReadOnlyList<EventHeader> Headers<T>() where T : IArrowEvent<T> => HeaderCache<T>.Value;

    /// <summary>An event encoded as one Arrow IPC stream, keyed by <paramref name="key"/>, with <see cref="Headers{T}"/>.</summary>
    public static EventMessage Message<T>(string key, T value) where T : IArrowEvent<T> =>
        EventMessage.Create(key, EventCodec<T>.Instance.Encode(value), Headers<T>());

    /// <summary>
    /// A live query as the Scorer expects it: keyed by its payload's query id, so every copy of one query lands on the
    /// query id's partition (the Scorer dead-letters a query whose key names another id).
    /// </summary>
    public static EventMessage Query(ModelQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        return Message(query.QueryId, query);
    }

    /// <summary>
    /// Produces <paramref name="query"/> to the queries topic keyed by its id (see <see cref="Query"/>), in a "query send"
    /// span whose W3C context rides in the record's <c>traceparent</c> header (see <see cref="TraceContext"/>).
    /// </summary>
    public static async Task<EventPosition> ProduceQueryAsync(this IEventProducer producer, ModelQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(producer);
        ArgumentNullException.ThrowIfNull(query);
        using var span = TraceContext.StartQuery(query.QueryId);
        return await producer.ProduceAsync(Topics.Queries, TraceContext.Attach(Query(query), span), cancellationToken).ConfigureAwait(false);
    }

    private static class HeaderCache<T> where T : IArrowEvent<T>
    {
        public static readonly EventHeader[] Value =
        [
            EventHeader.Utf8(EventHeaders.ContentType, EventHeaders.ArrowStreamContentType),
            EventHeader.Utf8(EventHeaders.SchemaVersion, T.SchemaVersion.ToString(CultureInfo.InvariantCulture)),
            EventHeader.Utf8(EventHeaders.EventType, T.EventType),
        ];
    }
}
