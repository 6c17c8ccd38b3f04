using System.Reflection;
using Attribution.Downstream.Feed;
using Attribution.Downstream.Ledger;
using Attribution.Downstream.Store;
using Attribution.Transport.Messages;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Attribution.Downstream.Web;

/// <summary>A SQL request of the console API.</summary>
/// <param name="Sql">One read-only statement.</param>
/// <param name="MaxRows">Most rows returned (default 1,000).</param>
public sealed record SqlRequest(string Sql, int? MaxRows = null);

/// <summary>
/// The console's pages and JSON API: <c>GET /</c> (the page), <c>/api/attributions?after=N</c> (live stream),
/// <c>/api/attributions/{queryId}</c>, <c>/api/examples/{id}</c> (preview), <c>/api/ledger?window=&amp;model=&amp;source=</c>,
/// <c>/api/alerts?after=N</c>, <c>/api/health</c>, <c>POST /api/sql</c> (<c>{"sql": "SELECT ..."}</c>).
/// </summary>
public static class ConsoleApi
{
    private const int MaxLimit = 500;

    /// <summary>Maps the pages and the API onto <paramref name="app"/>.</summary>
    public static void Map(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGet("/", () => Asset("index.html", "text/html; charset=utf-8"));
        app.MapGet("/app.js", () => Asset("app.js", "text/javascript; charset=utf-8"));
        app.MapGet("/app.css", () => Asset("app.css", "text/css; charset=utf-8"));

        app.MapGet("/api/attributions", (long? after, int? limit, LiveAttributions live, TrainingCatalog catalog) =>
        {
            var items = live.After(after ?? 0, Math.Clamp(limit ?? 50, 1, MaxLimit));
            return Results.Json(new { latest = live.Latest, items = items.Select(i => View(i.Seq, i.Event, catalog)) });
        });
        app.MapGet("/api/attributions/{queryId}", (string queryId, LiveAttributions live, AttributionStore store, TrainingCatalog catalog) =>
        {
            var hit = live.After(0, int.MaxValue).LastOrDefault(i => i.Event.Result.QueryId == queryId);
            return hit.Event is null ? Results.NotFound(new { error = $"no recent attribution for query '{queryId}'" }) : Results.Json(View(hit.Seq, hit.Event, catalog));
        });
        app.MapGet("/api/examples/{id:long}", (long id, TrainingCatalog catalog) =>
        {
            var source = catalog.SourceOf(id);
            var p = catalog.Preview(id);
            return Results.Json(new
            {
                id,
                source,
                sourceName = source is { } s ? catalog.SourceName(s) : null,
                flagged = source is { } f && catalog.IsFlagged(f),
                label = p?.Label,
                rows = p?.Rows ?? 0,
                cols = p?.Cols ?? 0,
                pixels = p?.Pixels is { } px ? Convert.ToBase64String(px) : null,
                text = p?.Text,
            });
        });
        app.MapGet("/api/ledger", (string? window, string? model, long? source, SourceLedger ledger, TrainingCatalog catalog) =>
        {
            if (!LedgerWindows.TryParse(window ?? "minute", out var w))
            {
                return Results.BadRequest(new { error = $"window must be minute, hour or day, got '{window}'" });
            }

            return Results.Json(ledger.Query(w, model, source).Select(e => new
            {
                window = LedgerWindows.Name(e.Key.Window),
                start = e.Key.Start,
                model = e.Key.ModelVersion,
                source = e.Key.SourceId,
                sourceName = catalog.SourceName(e.Key.SourceId),
                flagged = catalog.IsFlagged(e.Key.SourceId),
                mass = e.Mass,
                positiveMass = e.PositiveMass,
                queries = e.Queries,
            }));
        });
        app.MapGet("/api/alerts", (long? after, AlertFeed alerts) => Results.Json(new
        {
            total = alerts.Total,
            items = alerts.After(after ?? 0).Select(a => new
            {
                seq = a.Seq,
                queryId = a.Alert.QueryId,
                model = a.Alert.ModelVersion,
                rule = a.Alert.Rule switch { AlertRule.ExampleLead => "example-lead", AlertRule.Calibrated => "calibrated", _ => "source-share" },
                score = a.Alert.Score,
                threshold = a.Alert.Threshold,
                flaggedIds = a.Alert.FlaggedSourceIds.Select(id => $"source:{id}").Concat(a.Alert.FlaggedExampleIds.Select(id => $"example:{id}")),
                timestamp = a.Alert.Timestamp,
                traceId = a.TraceId,
                evidence = a.Alert.Evidence,
            }),
        }));
        app.MapGet("/api/health", async (ConsoleHealth health, AttributionFeed feed, AttributionStore store, LedgerPublisher ledger, CancellationToken token) =>
        {
            var report = await health.Check(token).ConfigureAwait(false);
            return Results.Json(new
            {
                status = report.Status.ToString(),
                checks = report.Entries.Select(e => new { name = e.Key, status = e.Value.Status.ToString(), description = e.Value.Description }),
                feed = new { events = feed.Events, rejected = feed.Rejected, lag = feed.Lag.OrderBy(kv => kv.Key).Select(kv => new { partition = kv.Key, lag = kv.Value }) },
                store = new { rows = store.Rows, retention = store.Retention.ToString(), location = store.Location },
                ledger = new { published = ledger.Published },
            });
        });
        app.MapPost("/api/sql", (SqlRequest request, AttributionStore store) =>
        {
            try
            {
                var result = store.Query(request.Sql, Math.Clamp(request.MaxRows ?? 1000, 1, 100_000));
                return Results.Json(new { columns = result.Columns, rows = result.Rows, truncated = result.Truncated });
            }
            catch (SqlQueryException e)
            {
                return Results.BadRequest(new { error = e.Message });
            }
        });
    }

    private static object View(long seq, AttributionEnvelope e, TrainingCatalog catalog)
    {
        var r = e.Result;
        return new
        {
            seq,
            queryId = r.QueryId,
            model = r.ModelVersion,
            method = r.Method,
            latencyUs = r.LatencyMicros,
            time = e.Timestamp,
            partition = e.Partition,
            offset = e.Offset,
            traceId = e.TraceParent?.Split('-') is { Length: 4 } tp ? tp[1] : null,
            examples = r.ExampleIds.Select((id, i) => new
            {
                id,
                score = r.Scores[i],
                source = catalog.SourceOf(id),
                sourceName = catalog.SourceOf(id) is { } s ? catalog.SourceName(s) : null,
                flagged = catalog.SourceOf(id) is { } f && catalog.IsFlagged(f),
            }),
            sources = r.SourceIds.Select((id, i) => new { id, name = catalog.SourceName(id), flagged = catalog.IsFlagged(id), score = r.SourceScores[i] })
                .OrderByDescending(s => s.score),
        };
    }

    private static IResult Asset(string name, string contentType)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("console/" + name);
        if (stream is null)
        {
            return Results.NotFound();
        }

        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return Results.Bytes(copy.ToArray(), contentType);
    }
}
