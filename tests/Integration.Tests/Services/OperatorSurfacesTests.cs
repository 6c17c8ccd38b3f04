using System.Diagnostics;
using Apache.Arrow;
using Apache.Arrow.Flight;
using Apache.Arrow.Flight.Client;
using Attribution.Contracts;
using Attribution.Downstream.Feed;
using Attribution.Downstream.Flight;
using Attribution.Downstream.Ledger;
using Attribution.Downstream.Store;
using Attribution.Downstream.Web;
using Attribution.Ingest;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Attribution.Transport.Alerts;
using Grpc.Net.Client;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Attribution.Integration.Tests.Services;

/// <summary>
/// A demo-like run (Ingest, Simulator, Scorer over one embedded log, alerts on the in-memory bus) watched by the
/// downstream console: its Prometheus scrape, one trace id from query to attribution to alert, the ledger and SQL store
/// against a direct sum, and a Flight subscriber that gets every attribution once (with query -> Flight latency).
/// </summary>
public sealed class OperatorSurfacesTests(PipelineFixture fixture, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<PipelineFixture>
{
    private const int Queries = 40;

    [Fact]
    public async Task DemoLikeRun_IsSeenByMetricsTracesLedgerSqlAndFlight()
    {
        // Source 0 holds 180 of the 200 examples and is flagged: most queries raise an alert.
        var dir = fixture.CopyRun("operator");
        var map = string.Join(",", Enumerable.Range(0, PipelineFixture.TrainCount).Select(i => $"\"{i}\": {(i < 180 ? 0 : 1 + i % 3)}"));
        await File.WriteAllTextAsync(Path.Combine(dir, RunScanner.SourcesFileName), $"{{\"sources\": [{{\"id\": 0, \"name\": \"scraped\", \"flagged\": true}}], \"exampleSources\": {{{map}}}}}");
        await using var log = Pipeline.NewLog();
        var alerts = new AlertFeed();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddEventLog(_ => { });
        builder.Services.AddSingleton<IEventLog>(log);
        builder.Services.AddSingleton(alerts);
        builder.Services.AddAlertBus(new AlertBusOptions(), x => x.AddConsumer<AlertFeedConsumer>());
        builder.Services.AddIngest(o => { o.RunDirectory = dir; o.RunId = "operator"; });
        builder.Services.AddSimulator(o => Pipeline.FastSimulation(o));
        builder.Services.AddScorer(o => { o.FlaggedSources = [0]; o.AlertThreshold = 0.5; });
        using var host = builder.Build();
        await host.StartAsync();
        _ = host.Services.GetRequiredService<SimulatorInstruments>();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Downstream:StorePath"] = ":memory:",
            ["Downstream:RunDirectory"] = dir,
            ["Downstream:LedgerPublishInterval"] = "00:00:00.200",
        }).Build();
        await using var console = await ConsoleServer.StartAsync(new ConsoleSettings { Port = 0, FlightPort = 0 }, configuration, s =>
        {
            s.AddSingleton<IEventLog>(log);
            s.AddSingleton(host.Services.GetRequiredService<IEventProducer>());
            s.AddSingleton(alerts);
        });

        // A Flight subscriber from before the run: every attribution, once, in offset order per partition.
        var scorer = host.Services.GetRequiredService<ScorerWorker>();
        await Pipeline.Until(() => scorer.Index.Current is not null, ready => ready, "the probe index");
        using var channel = GrpcChannel.ForAddress(console.FlightUrl);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        using var call = new FlightClient(channel).GetStream(new FlightTicket(new AttributionFlightTicket(From: "latest").ToBytes()), null, null, stop.Token);
        var subscriptions = console.App.Services.GetRequiredService<FlightSubscriptions>();
        await Pipeline.Until(() => subscriptions.Active, n => n == 1, "the Flight subscription");

        // The trace id each query was sent under, as the producer's span recorded it.
        var sentTrace = new System.Collections.Concurrent.ConcurrentDictionary<string, string>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == TraceContext.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = a =>
            {
                if (a.OperationName == "query send" && a.GetTagItem("attribution.query_id") is string id)
                {
                    sentTrace[id] = a.TraceId.ToHexString();
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        var producer = host.Services.GetRequiredService<IEventProducer>();
        var sentAt = new Dictionary<string, long>();
        for (int i = 0; i < Queries; i++)
        {
            sentAt[$"op-{i:D3}"] = Stopwatch.GetTimestamp();
            await Pipeline.ProduceQueryAsync(log, producer, $"op-{i:D3}", fixture.TestImage(i));
        }
        var received = new List<(string Query, int Partition, long Offset, double Ms)>();
        while (received.Count < Queries && await call.ResponseStream.MoveNext(stop.Token))
        {
            var batch = call.ResponseStream.Current;
            var now = Stopwatch.GetTimestamp();
            var q = (StringArray)batch.Column("query_id");
            var p = (Int32Array)batch.Column("partition");
            var o = (Int64Array)batch.Column("offset");
            for (int i = 0; i < batch.Length; i++)
            {
                received.Add((q.GetString(i), p.GetValue(i)!.Value, o.GetValue(i)!.Value, Stopwatch.GetElapsedTime(sentAt[q.GetString(i)], now).TotalMilliseconds));
            }
        }
        Assert.Equal(sentAt.Keys.Order(), received.Select(r => r.Query).Order());
        Assert.All(received.GroupBy(r => r.Partition), g => Assert.Equal(g.Select(r => r.Offset).Order(), g.Select(r => r.Offset)));
        var ms = received.Select(r => r.Ms).Order().ToList();
        output.WriteLine($"query produced -> attribution delivered over Flight ({Queries} queries, Scorer on the embedded log): p50 {ms[ms.Count / 2]:F1} ms, max {ms[^1]:F1} ms");

        // One trace id from the query's send span (its record's traceparent) to its attribution's record, its alert and its SQL row.
        var metrics = host.Services.GetRequiredService<ScorerMetrics>();
        await Pipeline.Until(() => alerts.Total, n => n >= metrics.AlertsRaised && n > 0, "alerts on the console's feed");
        var alert = alerts.After(0).First(a => a.Alert.QueryId.StartsWith("op-", StringComparison.Ordinal));
        var attributionRecords = await TopicReader.ReadToEndAsync(log, Topics.Attributions, CancellationToken.None);
        var attributionRecord = attributionRecords.Single(r => r.KeyString == alert.Alert.QueryId);
        var traceId = sentTrace[alert.Alert.QueryId];
        Assert.Equal(traceId, TraceContext.TraceId(attributionRecord.GetHeaderString(TraceContext.Header)));
        Assert.Equal(traceId, alert.TraceId);
        var store = console.App.Services.GetRequiredService<AttributionStore>();
        var feed = console.App.Services.GetRequiredService<AttributionFeed>();
        await Pipeline.Until(() => feed.Events, n => n >= Queries, "the downstream feed");
        Assert.Equal(traceId, store.Query($"SELECT trace_id FROM attributions WHERE query_id = '{alert.Alert.QueryId}'").Rows.Single()[0]);

        // The ledger (latest record per key on the compacted topic) and the SQL store agree with a direct sum.
        var direct = new Dictionary<long, double>();
        foreach (var r in attributionRecords)
        {
            var a = EventCodecs.Attributions.Decode(r.Value);
            for (int i = 0; i < a.SourceIds.Count; i++)
            {
                direct[a.SourceIds[i]] = direct.GetValueOrDefault(a.SourceIds[i]) + a.SourceScores[i];
            }
        }

        var sql = store.Query("SELECT source, sum(score) FROM attribution_sources GROUP BY source").Rows.ToDictionary(r => (long)r[0]!, r => (double)r[1]!);
        Assert.Equal(direct.Keys.Order(), sql.Keys.Order());
        Assert.All(direct, kv => Assert.Equal(kv.Value, sql[kv.Key], 1e-4));
        var publisher = console.App.Services.GetRequiredService<LedgerPublisher>();
        await publisher.PublishChangedAsync(CancellationToken.None);
        var ledger = new Dictionary<string, LedgerEntry>();
        foreach (var r in await TopicReader.ReadToEndAsync(log, "ledger", CancellationToken.None))
        {
            foreach (var (entry, _) in LedgerArrow.Decode(r.Value))
            {
                ledger[r.KeyString] = entry;
            }
        }

        var days = ledger.Values.Where(e => e.Key.Window == LedgerWindow.Day).GroupBy(e => e.Key.SourceId).ToDictionary(g => g.Key, g => g.Sum(e => e.Mass));
        Assert.All(direct, kv => Assert.Equal(kv.Value, days[kv.Key], 1e-6));

        // A Prometheus scrape names every service's metrics. The exporter listens to every meter of the process by name,
        // so another Scorer alive in this process (a parallel test's host; here a bystander that scored 7) reports the
        // same instrument names: each Scorer's series carries its own scorer.instance tag, and this run's must say 4x.
        using var bystander = new ScorerMetrics();
        for (int i = 0; i < 7; i++)
        {
            bystander.Scored(1000);
        }

        // The lag gauge reports once the consume loop has learned its partitions' end offsets (a commit tick): under load
        // (parallel test classes) the scrape could come first.
        await Pipeline.Until(() => metrics.ConsumerLag.Count, c => c > 0, "the consumer lag gauge's first value");
        using var http = new HttpClient();
        var scrape = await http.GetStringAsync(new Uri(console.WebUrl, "/metrics"));
        foreach (var name in new[]
        {
            "pipeline_scorer_queries_total", "pipeline_scorer_latency_milliseconds_bucket", "pipeline_scorer_batch_size_bucket", "pipeline_scorer_batches_total", "pipeline_scorer_consumer_lag{",
            "pipeline_scorer_alerts_total", "pipeline_scorer_dead_letters_total", "pipeline_simulator_probes_total",
            "pipeline_downstream_lag{", "pipeline_downstream_events_total", "pipeline_downstream_dead_letters_total", "pipeline_downstream_flight_delivered_total",
        })
        {
            Assert.True(scrape.Contains(name, StringComparison.Ordinal), $"the scrape lacks {name}:\n{scrape}");
        }

        Assert.Matches($@"pipeline_scorer_queries_total\{{[^}}]*scorer_instance=""{metrics.Instance}""[^}}]*\}} 4\d", scrape);
        await host.StopAsync();
    }
}
