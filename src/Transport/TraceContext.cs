using System.Diagnostics;
namespace Attribution.Transport;

/// <summary>
/// W3C trace context on the event log: the <c>traceparent</c> record header (version-traceid-spanid-flags), set by the
/// query's producer and carried by the Scorer to the attribution event and the alert, so one trace id follows a query.
/// </summary>
public static class TraceContext
{
    /// <summary>The W3C header name.</summary>
    public const string Header = "traceparent";

    /// <summary>Name of the pipeline's activity source (query, attribution and alert spans).</summary>
    public const string SourceName = "Attribution.Pipeline";

    /// <summary>The pipeline's activity source; spans exist only while something listens (OpenTelemetry, see Observability).</summary>
    public static ActivitySource Source { get; } = new(SourceName);

    /// <summary>Starts the span of a query being sent (kind Producer), or null when nothing listens to the pipeline's source.</summary>
    public static Activity? StartQuery(string queryId)
    {
        var activity = Source.StartActivity("query send", ActivityKind.Producer);
        activity?.SetTag("messaging.destination.name", "queries");
        activity?.SetTag("attribution.query_id", queryId);
        return activity;
    }

    /// <summary><paramref name="message"/> with a <c>traceparent</c> header for <paramref name="activity"/> (unchanged when null).</summary>
    public static EventMessage Attach(EventMessage message, Activity? activity)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (activity?.Id is not { } id || activity.IdFormat != ActivityIdFormat.W3C)
        {
            return message;
        }

        var headers = new List<EventHeader>((message.Headers?.Count ?? 0) + 1);
        if (message.Headers is { } existing)
        {
            headers.AddRange(existing.Where(h => h.Key != Header));
        }

        headers.Add(EventHeader.Utf8(Header, id));
        return message with { Headers = headers };
    }

    /// <summary>The parent context a record carries, or default when it has no valid <c>traceparent</c>.</summary>
    public static ActivityContext Extract(EventRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return record.GetHeaderString(Header) is { } tp && ActivityContext.TryParse(tp, null, out var context) ? context : default;
    }

    /// <summary>The trace id of a <c>traceparent</c> value, or null when it is not one.</summary>
    public static string? TraceId(string? traceParent) =>
        traceParent is not null && ActivityContext.TryParse(traceParent, null, out var c) ? c.TraceId.ToHexString() : null;
}
