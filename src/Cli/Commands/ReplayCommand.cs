using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Training;
using Attribution.Scorer;
using Attribution.Transport;
using Attribution.Transport.Kafka;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline replay</c>: the client side of a running pipeline. Publishes a run's FashionMNIST test images as live
/// queries to a Kafka cluster, waits for their attributions (deduplicated by query id), prints a summary and a few
/// of them, and optionally writes them to an Arrow file.
/// </summary>
internal static class ReplayCommand
{
    public static Command Create()
    {
        var kafka = new Option<string>("--kafka") { Description = "Kafka bootstrap servers (host:port,...) of the running pipeline.", Required = true };
        var run = new Option<string>("--run") { Description = "The run directory (its recipe gives the test ids and the input normalisation).", Required = true };
        var queries = new Option<int>("--queries") { Description = "Test images to send as queries.", DefaultValueFactory = _ => 100 };
        var rate = new Option<double>("--rate") { Description = "Queries per second (0 = as fast as possible).", DefaultValueFactory = _ => 0 };
        var timeout = new Option<double>("--timeout-seconds") { Description = "Give up waiting for attributions after this long.", DefaultValueFactory = _ => 120 };
        var output = new Option<string?>("--out") { Description = "Write the attributions received to this Arrow IPC file." };
        var show = new Option<int>("--show") { Description = "Attributions printed in full.", DefaultValueFactory = _ => 3 };
        var command = new Command("replay", "Send a run's test images as live queries to a running pipeline (Kafka) and collect their attributions.");
        foreach (var o in new Option[] { kafka, run, queries, rate, timeout, output, show })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, token) =>
        {
            var count = parse.GetValue(queries);
            if (count < 1)
            {
                Console.Error.WriteLine($"error: --queries must be at least 1, got {count}.");
                return 2;
            }

            RunManifest manifest;
            var dir = Path.GetFullPath(parse.GetValue(run)!);
            try
            {
                manifest = RunDirectory.LoadManifest(dir);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or System.Text.Json.JsonException)
            {
                Console.Error.WriteLine($"error: cannot read the run at '{dir}': {e.Message}");
                return 2;
            }

            FashionMnistData data;
            try
            {
                data = FashionMnist.Load();
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or InvalidDataException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 2;
            }

            return await ReplayAsync(parse.GetValue(kafka)!, manifest, data, Path.GetFileName(dir.TrimEnd('/')), count, parse.GetValue(rate),
                TimeSpan.FromSeconds(parse.GetValue(timeout)), parse.GetValue(output), parse.GetValue(show), token);
        });
        return command;
    }

    private static async Task<int> ReplayAsync(string bootstrap, RunManifest manifest, FashionMnistData data, string runName, int count, double rate,
        TimeSpan timeout, string? outPath, int show, CancellationToken cancellationToken)
    {
        var testIds = manifest.Recipe.Data.TestIds;
        var ids = Enumerable.Range(0, count).Select(i => testIds.Length > 0 ? testIds[i % testIds.Length] : i % data.Test.Count).ToArray();
        var set = data.Test.Select(ids, manifest.Recipe.Data.Normalization);
        var stamp = DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture);
        var queryIds = Enumerable.Range(0, count).Select(i => $"replay-{stamp}-{i:D5}").ToArray();
        var wanted = queryIds.Select((q, i) => (q, i)).ToDictionary(x => x.q, x => x.i, StringComparer.Ordinal);

        KafkaEventLog log;
        try
        {
            KafkaLibrary.EnsureLoaded();
            log = new KafkaEventLog(new KafkaOptions { BootstrapServers = bootstrap, ClientId = "pipeline-replay", FetchWaitMaxMs = 10 });
        }
        catch (Exception e) when (e is EventLogException or ArgumentException or DllNotFoundException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }

        await using var disposeLog = log;
        using var producer = log.CreateProducer();
        var results = new Dictionary<string, (AttributionResult Result, double ReceivedMs)>(StringComparer.Ordinal);
        var sentAt = new double[count];
        var clock = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(timeout);
        var reader = new AttributionReader(log);
        var reading = Task.Run(async () =>
        {
            try
            {
                await foreach (var r in reader.ReadAsync(stop.Token))
                {
                    if (wanted.ContainsKey(r.QueryId))
                    {
                        results[r.QueryId] = (r, clock.Elapsed.TotalMilliseconds);
                        if (results.Count == count)
                        {
                            return;
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Timed out or interrupted: report what arrived.
            }
        }, CancellationToken.None);

        try
        {
            for (int i = 0; i < count; i++)
            {
                if (rate > 0 && TimeSpan.FromSeconds(i / rate) - clock.Elapsed is { Ticks: > 0 } ahead)
                {
                    await Task.Delay(ahead, stop.Token);
                }

                var query = new ModelQuery(queryIds[i], $"{runName}", set.Inputs.AsSpan(i * set.Features, set.Features).ToArray(), null, DateTimeOffset.UtcNow);
                sentAt[i] = clock.Elapsed.TotalMilliseconds;
                await producer.ProduceQueryAsync(query, stop.Token);
            }
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("Stopped before every query was sent.");
        }

        var sendSeconds = clock.Elapsed.TotalSeconds;
        await reading;
        var rtt = results.Values.Select(v => v.ReceivedMs - sentAt[wanted[v.Result.QueryId]]).Order().ToArray();
        Console.WriteLine($"Sent {count} queries in {sendSeconds:F1} s; {results.Count} attributed in {clock.Elapsed.TotalSeconds:F1} s.");
        if (rtt.Length > 0)
        {
            Console.WriteLine($"Round trip (produced → attribution read back): p50 {rtt[rtt.Length / 2]:F1} ms, p99 {rtt[Math.Min(rtt.Length - 1, (int)(0.99 * rtt.Length))]:F1} ms; " +
                $"Scorer latency p50 {Percentile(results.Values.Select(v => v.Result.LatencyMicros / 1000.0), 0.5):F1} ms.");
        }

        foreach (var i in Enumerable.Range(0, count).Where(i => results.ContainsKey(queryIds[i])).Take(show))
        {
            var r = results[queryIds[i]].Result;
            var top = string.Join(", ", r.ExampleIds.Zip(r.Scores).Take(5).Select(t => $"#{t.First} ({FashionMnist.ClassNames[data.Train.Labels[(int)t.First]]}) {t.Second:+0.000;-0.000}"));
            var sources = string.Join(", ", r.SourceIds.Zip(r.SourceScores).OrderByDescending(t => t.Second).Take(3).Select(t => $"{t.First}: {t.Second:+0.000;-0.000}"));
            Console.WriteLine($"  {r.QueryId}: test image {ids[i]} ({FashionMnist.ClassNames[set.Labels[i]]}), model {r.ModelVersion}; top examples {top}; top sources {sources}");
        }

        if (outPath is not null && results.Count > 0)
        {
            var full = Path.GetFullPath(outPath);
            var tmp = full + ".tmp";
            await File.WriteAllBytesAsync(tmp, EventCodecs.Attributions.EncodeBatch([.. results.Values.Select(v => v.Result).OrderBy(r => r.QueryId, StringComparer.Ordinal)]), cancellationToken);
            File.Move(tmp, full, overwrite: true);
            Console.WriteLine($"Wrote {results.Count} attributions to {full}");
        }

        if (results.Count < count)
        {
            Console.Error.WriteLine($"error: {count - results.Count} of {count} queries got no attribution within {timeout.TotalSeconds:F0} s. Is a Scorer running on this cluster " +
                "('./pipeline score --kafka ...') with a complete probe set (its status log says which model it serves)? Rejected queries are in the dead-letter topic.");
            return 1;
        }

        return 0;
    }

    private static double Percentile(IEnumerable<double> values, double q)
    {
        var a = values.Order().ToArray();
        return a.Length == 0 ? double.NaN : a[Math.Min(a.Length - 1, (int)(q * a.Length))];
    }
}
