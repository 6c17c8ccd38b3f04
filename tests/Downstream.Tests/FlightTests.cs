using System.Diagnostics;
using Apache.Arrow;
using Apache.Arrow.Flight;
using Apache.Arrow.Flight.Client;
using Attribution.Contracts;
using Attribution.Downstream.Flight;
using Attribution.Transport;
using Grpc.Net.Client;
using Xunit.Abstractions;

namespace Attribution.Downstream.Tests;

public sealed class FlightTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Flight_subscriber_receives_every_attribution_of_a_run_exactly_once_in_partition_order()
    {
        await using var f = await ConsoleFixture.StartAsync(partitions: 4);
        using var channel = GrpcChannel.ForAddress(f.Console.FlightUrl);
        var client = new FlightClient(channel);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        // Subscribe before the run starts ("latest": only what is appended from now on); wait until the reader is assigned.
        using var call = client.GetStream(new FlightTicket(new AttributionFlightTicket(From: "latest").ToBytes()), null, null, stop.Token);
        var subscriptions = f.Get<FlightSubscriptions>();
        while (subscriptions.Active == 0)
        {
            Assert.False(stop.IsCancellationRequested, "the Flight subscription never started");
            await Task.Delay(10);
        }

        const int Count = 400;
        var rng = new Random(21);
        var events = Enumerable.Range(0, Count).Select(i => SyntheticAttributions.Make(rng, i, i % 2 == 0 ? "run@5" : "run@9")).ToList();
        var sentAt = new Dictionary<string, long>();
        var producing = Task.Run(async () =>
        {
            foreach (var e in events)
            {
                lock (sentAt)
                {
                    sentAt[e.QueryId] = Stopwatch.GetTimestamp();
                }

                await f.Producer.ProduceAsync(Topics.Attributions, ArrowEvents.Message(e.QueryId, e));
                await Task.Delay(TimeSpan.FromMilliseconds(2));
            }
        });

        var received = new List<(string Query, int Partition, long Offset)>();
        var latencies = new List<double>();
        while (received.Count < Count && await call.ResponseStream.MoveNext(stop.Token))
        {
            var batch = call.ResponseStream.Current;
            var now = Stopwatch.GetTimestamp();
            var query = (StringArray)batch.Column("query_id");
            var partition = (Int32Array)batch.Column("partition");
            var offset = (Int64Array)batch.Column("offset");
            for (int i = 0; i < batch.Length; i++)
            {
                var q = query.GetString(i);
                received.Add((q, partition.GetValue(i)!.Value, offset.GetValue(i)!.Value));
                lock (sentAt)
                {
                    latencies.Add(Stopwatch.GetElapsedTime(sentAt[q], now).TotalMilliseconds);
                }
            }
        }

        await producing;
        // Nothing more may come: give a duplicate time to show up.
        stop.CancelAfter(TimeSpan.FromMilliseconds(500)); // ends the call after a quiet half second
        var extra = 0;
        try
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                extra += call.ResponseStream.Current.Length;
            }
        }
        catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.Cancelled)
        {
            // the quiet period ended
        }

        Assert.Equal(0, extra);
        Assert.Equal(Count, received.Count);
        Assert.Equal(events.Select(e => e.QueryId).Order(), received.Select(r => r.Query).Order());
        foreach (var part in received.GroupBy(r => r.Partition))
        {
            var offsets = part.Select(r => r.Offset).ToList();
            Assert.Equal(Enumerable.Range(0, offsets.Count).Select(i => (long)i), offsets); // every offset, in order
        }

        latencies.Sort();
        output.WriteLine($"produce -> Flight delivery over the embedded log, {Count} events: p50 {latencies[Count / 2]:F2} ms, p99 {latencies[(int)(Count * 0.99)]:F2} ms");
    }

    [Fact]
    public async Task Flight_ticket_filters_by_model_version_and_by_source_and_can_start_at_the_beginning()
    {
        await using var f = await ConsoleFixture.StartAsync(partitions: 2);
        var rng = new Random(5);
        var events = Enumerable.Range(0, 100).Select(i => SyntheticAttributions.Make(rng, i, i % 4 == 0 ? "run@5" : "run@9")).ToList();
        await f.PublishAsync(events);
        using var channel = GrpcChannel.ForAddress(f.Console.FlightUrl);
        var client = new FlightClient(channel);

        async Task<List<string>> Read(AttributionFlightTicket ticket, int expected)
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            using var call = client.GetStream(new FlightTicket(ticket.ToBytes()), null, null, stop.Token);
            var ids = new List<string>();
            while (ids.Count < expected && await call.ResponseStream.MoveNext(stop.Token))
            {
                var q = (StringArray)call.ResponseStream.Current.Column("query_id");
                ids.AddRange(Enumerable.Range(0, q.Length).Select(i => q.GetString(i)));
            }

            return ids;
        }

        var byModel = events.Where(e => e.ModelVersion == "run@5").Select(e => e.QueryId).Order().ToList();
        Assert.Equal(byModel, (await Read(new AttributionFlightTicket(Model: "run@5", From: "beginning"), byModel.Count)).Order());
        var bySource = events.Where(e => e.SourceScores[2] > 0).Select(e => e.QueryId).Order().ToList();
        Assert.InRange(bySource.Count, 10, 90);
        Assert.Equal(bySource, (await Read(new AttributionFlightTicket(Source: 2, From: "beginning"), bySource.Count)).Order());

        var bad = Assert.Throws<FormatException>(() => AttributionFlightTicket.Parse("{\"from\":\"yesterday\"}"u8));
        Assert.Contains("latest", bad.Message, StringComparison.Ordinal);
    }
}
