using Attribution.Contracts;
using Attribution.Downstream.Ledger;
using Attribution.Downstream.Store;
using Attribution.Transport;
using Attribution.Transport.Embedded;

namespace Attribution.Downstream.Tests;

public sealed class LedgerAndStoreTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 5, 1, 58, 30, TimeSpan.Zero);

    [Fact]
    public async Task Ledger_topic_and_sql_store_agree_with_a_direct_sum_over_the_events_of_a_run()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 12, 5, 23, 58, 30, TimeSpan.Zero));
        await using var h = await DownstreamHarness.StartAsync(clock);
        var rng = new Random(7);
        // 400 events over two model versions, 20 s apart: they cross minute, hour and day boundaries (23:58:30 → 02:11:30).
        var events = Enumerable.Range(0, 400).Select(i => SyntheticAttributions.Make(rng, i, i % 3 == 0 ? "run@5" : "run@9")).ToList();
        await h.PublishAsync(events, clock, TimeSpan.FromSeconds(20));
        await h.WaitForAsync(() => h.Feed.Events == events.Count, "the feed to read every event");

        // The direct sum: every event on the topic, at its log time.
        var records = await TopicReader.ReadToEndAsync(h.Log, Topics.Attributions, CancellationToken.None);
        Assert.Equal(events.Count, records.Count);
        var direct = new Dictionary<LedgerKey, double>();
        foreach (var r in records)
        {
            var a = EventCodecs.Attributions.Decode(r.Value);
            foreach (var w in LedgerWindows.All)
            {
                for (int i = 0; i < a.SourceIds.Count; i++)
                {
                    var key = new LedgerKey(w, LedgerWindows.Start(w, r.Timestamp), a.ModelVersion, a.SourceIds[i]);
                    direct[key] = direct.GetValueOrDefault(key) + a.SourceScores[i];
                }
            }
        }

        Assert.Contains(direct.Keys, k => k.Window == LedgerWindow.Day && k.Start.Day == 6);

        // The ledger as a downstream reader sees it: the latest record per key on the compacted topic.
        var publisher = h.Get<LedgerPublisher>();
        await h.WaitForAsync(() => publisher.Published >= direct.Count, "the ledger to publish every cell");
        await publisher.PublishChangedAsync(CancellationToken.None);
        var latest = new Dictionary<string, LedgerEntry>();
        foreach (var r in await TopicReader.ReadToEndAsync(h.Log, "ledger", CancellationToken.None))
        {
            var (entry, name) = Assert.Single(LedgerArrow.Decode(r.Value));
            Assert.Equal(r.KeyString, entry.Key.TopicKey);
            Assert.Equal($"source {entry.Key.SourceId}", name);
            latest[r.KeyString] = entry;
        }

        Assert.Equal(direct.Count, latest.Count);
        foreach (var (key, sum) in direct)
        {
            Assert.True(latest.TryGetValue(key.TopicKey, out var e), $"ledger topic has no {key.TopicKey}");
            Assert.Equal(sum, e!.Mass, 1e-9);
        }

        // The SQL store: per hour window, model and source, and one source over everything.
        var store = h.Get<AttributionStore>();
        var sql = store.Query("""
            SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AS hour, model_version, source, sum(score) AS mass
            FROM attribution_sources GROUP BY ALL
            """, 10_000);
        var hourly = direct.Where(kv => kv.Key.Window == LedgerWindow.Hour).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(hourly.Count, sql.Rows.Count);
        foreach (var row in sql.Rows)
        {
            var hour = (DateTimeOffset)row[0]!;
            var key = new LedgerKey(LedgerWindow.Hour, new DateTimeOffset(hour.DateTime, TimeSpan.Zero), (string)row[1]!, (long)row[2]!);
            Assert.Equal(hourly[key], (double)row[3]!, 1e-4);
        }

        var total = store.Query("SELECT count(*) FROM attributions");
        Assert.Equal((long)events.Count, total.Rows[0][0]);
    }

    // Protects "when PublishChangedAsync returns, the topic holds every change made before the call": a call made while
    // the timer's round is still waiting for its acknowledgements must wait for that round, not return at once because
    // the round already took the changed cells (the race that made an operator-surfaces test read a ledger topic
    // without the run's cells).
    [Fact]
    public async Task Publishing_waits_for_a_round_in_flight_so_its_cells_are_on_the_topic_when_it_returns()
    {
        await using var log = new EmbeddedEventLog(new EmbeddedOptions(), TimeProvider.System);
        var ledger = new SourceLedger();
        ledger.Add(SyntheticAttributions.Make(new Random(3), 0, "run@1"), Start);
        using var producer = new GatedProducer();
        using var publisher = new LedgerPublisher(log, producer, ledger, TrainingCatalog.Empty,
            Microsoft.Extensions.Options.Options.Create(new DownstreamOptions()), Microsoft.Extensions.Logging.Abstractions.NullLogger<LedgerPublisher>.Instance);

        var inFlight = publisher.PublishChangedAsync(CancellationToken.None); // takes every changed cell, waits for acks
        await producer.Started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var second = publisher.PublishChangedAsync(CancellationToken.None);
        await Task.Delay(200);
        Assert.False(second.IsCompleted, "a publish call returned while the cells of the round in flight were not yet acknowledged");

        producer.Release();
        await Task.WhenAll(inFlight, second).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(publisher.Published > 0);
        Assert.Equal(publisher.Published, producer.Acknowledged);
    }

    private sealed class GatedProducer : IEventProducer
    {
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private long _acknowledged;

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long Acknowledged => Interlocked.Read(ref _acknowledged);

        public void Release() => _gate.TrySetResult();

        public async Task<EventPosition> ProduceAsync(string topic, EventMessage message, CancellationToken cancellationToken = default)
        {
            Started.TrySetResult();
            await _gate.Task.WaitAsync(cancellationToken);
            Interlocked.Increment(ref _acknowledged);
            return default;
        }

        public Task FlushAsync(CancellationToken cancellationToken = default) => _gate.Task.WaitAsync(cancellationToken);

        public void Dispose()
        {
        }
    }

    [Fact]
    public void Store_reopened_on_the_same_file_skips_events_it_already_holds()
    {
        var dir = Directory.CreateTempSubdirectory("store-");
        try
        {
            var path = Path.Combine(dir.FullName, "a.duckdb");
            var rng = new Random(3);
            var batch = Enumerable.Range(0, 10).Select(i => new AttributionEnvelope(SyntheticAttributions.Make(rng, i, "m"), i % 2, i / 2, Start.AddSeconds(i))).ToList();
            using (var store = new AttributionStore(path, TimeSpan.FromDays(1), clock: new ManualClock(Start)))
            {
                store.Accept(batch[..6]);
            }

            using var reopened = new AttributionStore(path, TimeSpan.FromDays(1), clock: new ManualClock(Start));
            Assert.Equal(6, reopened.Rows);
            reopened.Accept(batch); // a restarted feed re-reads the topic from the beginning
            Assert.Equal(10L, reopened.Query("SELECT count(*) FROM attributions").Rows[0][0]);
            Assert.Equal(10L, reopened.Query("SELECT count(DISTINCT query_id) FROM attributions").Rows[0][0]);
            Assert.Equal(50L, reopened.Query("SELECT count(*) FROM attribution_sources").Rows[0][0]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Store_deletes_rows_older_than_its_retention()
    {
        var clock = new ManualClock(Start);
        using var store = new AttributionStore(":memory:", TimeSpan.FromHours(1), clock: clock);
        var rng = new Random(5);
        store.Accept(Enumerable.Range(0, 4).Select(i => new AttributionEnvelope(SyntheticAttributions.Make(rng, i, "m"), 0, i, Start.AddMinutes(i * 30))).ToList());
        Assert.Equal(4, store.Rows);
        // Events at 01:58:30, 02:28:30, 02:58:30, 03:28:30; at 03:38:30 the first two are older than one hour.
        var deleted = store.ApplyRetention(Start.AddMinutes(100));
        Assert.Equal(2, deleted);
        Assert.Equal(2L, store.Query("SELECT count(*) FROM attributions").Rows[0][0]);
        Assert.Equal(10L, store.Query("SELECT count(*) FROM attribution_sources").Rows[0][0]);
        Assert.Equal(0L, store.Query("SELECT count(*) FROM attribution_examples WHERE ts < TIMESTAMPTZ '2026-12-05 02:38:30+00'").Rows[0][0]);
    }

    [Theory]
    [InlineData("DROP TABLE attributions")]
    [InlineData("SELECT 1; DELETE FROM attributions")]
    [InlineData("INSERT INTO attributions VALUES (1)")]
    public void Store_refuses_statements_that_are_not_one_read_only_query(string sql)
    {
        using var store = new AttributionStore(":memory:", TimeSpan.FromDays(1));
        var e = Assert.Throws<SqlQueryException>(() => store.Query(sql));
        Assert.Contains("read-only", e.Message, StringComparison.Ordinal);
        Assert.Equal(0L, store.Query("SELECT count(*) FROM attributions").Rows[0][0]);
    }

    [Fact]
    public void Store_reports_duckdb_errors_with_their_message()
    {
        using var store = new AttributionStore(":memory:", TimeSpan.FromDays(1));
        var e = Assert.Throws<SqlQueryException>(() => store.Query("SELECT no_such_column FROM attributions"));
        Assert.Contains("no_such_column", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Feed_dead_letters_an_event_that_does_not_decode_and_goes_on()
    {
        var clock = new ManualClock(Start);
        await using var h = await DownstreamHarness.StartAsync(clock, partitions: 1);
        var rng = new Random(9);
        await h.PublishAsync([SyntheticAttributions.Make(rng, 0, "m")]);
        await h.Producer.ProduceAsync(Topics.Attributions, EventMessage.Create("bad", "not arrow"u8.ToArray()));
        await h.PublishAsync([SyntheticAttributions.Make(rng, 1, "m")]);
        await h.WaitForAsync(() => h.Feed.Events == 2 && h.Feed.Rejected == 1, "two events and one rejection");
        var dead = await TopicReader.ReadToEndAsync(h.Log, Topics.DeadLetter, CancellationToken.None);
        var record = Assert.Single(dead);
        Assert.Equal("bad", record.KeyString);
        Assert.Equal(Topics.Attributions, record.GetHeaderString(DeadLetterPublisher.OriginalTopicHeader));
    }

    [Fact]
    public void Ledger_arrow_round_trips_and_rejects_other_streams()
    {
        var entries = new[]
        {
            new LedgerEntry(new LedgerKey(LedgerWindow.Minute, Start.AddSeconds(-30), "run@5", 3), -0.25, 1.5, 7),
            new LedgerEntry(new LedgerKey(LedgerWindow.Day, new DateTimeOffset(2026, 12, 5, 0, 0, 0, TimeSpan.Zero), "run@9", 1000), 2.0, 2.0, 1),
        };
        var back = LedgerArrow.Decode(LedgerArrow.Encode(entries, id => id == 1000 ? "eval-suite" : null));
        Assert.Equal(entries, back.Select(b => b.Entry));
        Assert.Equal([null, "eval-suite"], back.Select(b => b.SourceName));
        Assert.Throws<FormatException>(() => LedgerArrow.Decode(EventCodecs.Attributions.Encode(SyntheticAttributions.Make(new Random(1), 0, "m"))));
    }
}
