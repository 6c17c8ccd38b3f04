using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Attribution.Contracts;
using Attribution.Scorer;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Attribution.Integration.Tests.Kafka;

/// <summary>
/// A downstream subscriber in another ecosystem: Node's kafkajs reads the attributions topic of a pipeline run on the
/// mock cluster (infra/node/kafka-subscriber.mjs) and apache-arrow decodes every event. Protects the topic as a public
/// contract: what a foreign client reads is exactly what the pipeline wrote, one event per query.
/// </summary>
[Collection(KafkaPipelineCollection.Name)]
public sealed class NodeSubscriberTests(KafkaPipelineFixture kafka, ITestOutputHelper output)
{
    private const int Queries = 40;

    [Fact]
    public async Task AKafkajsSubscriber_ReadsEveryAttributionOnce_AndApacheArrowDecodesTheValuesThePipelineWrote()
    {
        var prefix = $"node-{Guid.NewGuid().ToString("N")[..8]}";
        using (var host = kafka.BuildScorer($"scorer-{prefix}"))
        {
            await host.StartAsync();
            var worker = host.Services.GetRequiredService<ScorerWorker>();
            await KafkaPipelineFixture.Until(() => worker.Index.Current, m => m is not null, "the Scorer's probe index", 60);
            await kafka.ProduceQueriesAsync(prefix, 0, Queries);
            await KafkaPipelineFixture.Until(() => kafka.RawAttributionIds(prefix).Distinct().Count(), c => c >= Queries, $"{Queries} attributions", 90);
            await host.StopAsync();
        }

        // What the pipeline wrote, read by the C# client: position → (record, decoded event).
        var written = kafka.ReadAll(Topics.Attributions)
            .Where(r => System.Text.Encoding.UTF8.GetString(r.Key).StartsWith(prefix + "-", StringComparison.Ordinal))
            .ToDictionary(r => (r.Partition, r.Offset), r => (Record: r, Event: EventCodecs.Attributions.Decode(r.Value)));
        Assert.Equal(Queries, written.Count);

        var read = RunSubscriber(prefix + "-");

        Assert.Equal(Queries, read.Count);
        var ids = read.Select(r => r.GetProperty("key").GetString()!).ToList();
        Assert.Equal(Enumerable.Range(0, Queries).Select(i => $"{prefix}-{i:D3}"), ids.Order(StringComparer.Ordinal)); // each query id exactly once
        foreach (var r in read)
        {
            var position = (r.GetProperty("partition").GetInt32(), long.Parse(r.GetProperty("offset").GetString()!, CultureInfo.InvariantCulture));
            Assert.True(written.TryGetValue(position, out var w), $"Node read {position}, which the C# reader did not");
            var (record, expected) = w;
            foreach (var h in record.Headers)
            {
                Assert.Equal(System.Text.Encoding.UTF8.GetString(h.Value), r.GetProperty("headers").GetProperty(h.Key).GetString());
            }

            var row = Assert.Single(r.GetProperty("rows").EnumerateArray());
            Assert.Equal(expected.QueryId, row.GetProperty("query_id").GetString());
            Assert.Equal(expected.ModelVersion, row.GetProperty("model_version").GetString());
            Assert.Equal(expected.Method, row.GetProperty("method").GetString());
            Assert.Equal(expected.ExampleIds, Longs(row.GetProperty("example_ids")));
            Assert.Equal(expected.Scores, Floats(row.GetProperty("scores")));
            Assert.Equal(expected.SourceIds, Longs(row.GetProperty("source_ids")));
            Assert.Equal(expected.SourceScores, Floats(row.GetProperty("source_scores")));
            Assert.Equal(expected.LatencyMicros, long.Parse(row.GetProperty("latency_us").GetString()!, CultureInfo.InvariantCulture));
            Assert.Equal(5, expected.ExampleIds.Count);
            Assert.Equal(KafkaPipelineFixture.SourceCount, expected.SourceIds.Count);
        }
    }

    // int64 travel as decimal strings; float32 as the JS number, which holds every float32 exactly.
    private static long[] Longs(JsonElement a) => [.. a.EnumerateArray().Select(e => long.Parse(e.GetString()!, CultureInfo.InvariantCulture))];

    private static float[] Floats(JsonElement a) => [.. a.EnumerateArray().Select(e => (float)e.GetDouble())];

    private List<JsonElement> RunSubscriber(string keyPrefix)
    {
        var root = AppContext.BaseDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "Pipeline.sln")))
        {
            root = Path.GetDirectoryName(root);
        }

        var nodeDir = Path.Combine(root ?? "", "infra", "node");
        Assert.True(Directory.Exists(Path.Combine(nodeDir, "node_modules", "kafkajs")) && Directory.Exists(Path.Combine(nodeDir, "node_modules", "apache-arrow")),
            "infra/node/node_modules lacks kafkajs or apache-arrow: run './pipeline test' (it installs the npm packages) or 'cd infra/node && npm ci'.");
        var outFile = Path.Combine(kafka.Root, $"node-subscriber-{Guid.NewGuid():N}.json");
        var start = new ProcessStartInfo("node", ["kafka-subscriber.mjs", kafka.Cluster.BootstrapServers, Topics.Attributions, outFile, keyPrefix])
        {
            WorkingDirectory = nodeDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"node kafka-subscriber.mjs did not finish within 90 s: {stderr.Result}");
        }

        output.WriteLine(stdout.Result);
        Assert.True(process.ExitCode == 0, $"node kafka-subscriber.mjs exited with {process.ExitCode}: {stderr.Result}{stdout.Result}");
        using var json = JsonDocument.Parse(File.ReadAllText(outFile));
        return [.. json.RootElement.EnumerateArray().Select(e => e.Clone())];
    }
}
