using System.Diagnostics;
using Attribution.Transport;

namespace Attribution.Scorer;

/// <summary>
/// One span per query ("attribute"), child of the trace context its record carries (a new trace when none), so the
/// query's trace id reaches its attribution event's <c>traceparent</c> header and its alert's.
/// </summary>
internal static class ScorerTracing
{
    /// <summary>Starts the query's span without making it current (a batch holds many queries; each is current only
    /// around its own publishes, see <see cref="InSpan"/>).</summary>
    public static Activity? Start(PendingQuery query)
    {
        var previous = Activity.Current;
        var span = TraceContext.Source.StartActivity("attribute", ActivityKind.Consumer, TraceContext.Extract(query.Record));
        span?.SetTag("attribution.query_id", query.QueryId);
        Activity.Current = previous;
        return span;
    }

    /// <summary>Runs <paramref name="publish"/> with <paramref name="span"/> current (the alert bus reads it for the header).</summary>
    public static async Task InSpan(Activity? span, Func<Task> publish)
    {
        if (span is not null)
        {
            Activity.Current = span;
        }

        await publish().ConfigureAwait(false);
    }
}
