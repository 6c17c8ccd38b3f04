using System.Net.Sockets;
using Attribution.Contracts;
using Attribution.MockKafka;
using Attribution.Transport.Kafka;
using Xunit.Abstractions;

namespace Attribution.Integration.Tests.Kafka;

/// <summary>
/// The services as a user runs them: <c>pipeline simulate</c>, <c>pipeline score</c> and <c>pipeline ingest</c> as three
/// separate processes over a mock Kafka cluster of their own, <c>pipeline replay</c> as the client, health over HTTP,
/// SIGTERM for a graceful stop. In the Kafka collection so it does not compete with those tests for the 2 cores; it
/// reuses the collection's tiny trained run directory.
/// </summary>
[Collection(KafkaPipelineCollection.Name)]
public sealed class ServiceCommandTests(KafkaPipelineFixture kafka, ITestOutputHelper output)
{
    private static readonly string Cli = CliProcess.Dll;

    [Fact]
    public async Task IngestSimulateAndScore_RunAsSeparateProcesses_AttributeReplayedQueries_AndStopCleanlyOnSigterm()
    {
        KafkaLibrary.EnsureLoaded();
        using var cluster = new MockKafkaCluster(3);
        foreach (var topic in KafkaPipelineFixture.PipelineTopics)
        {
            cluster.CreateTopic(topic, KafkaPipelineFixture.Partitions, 3);
        }

        var b = cluster.BootstrapServers;
        var healthPort = FreePort();
        string[] fast = ["--set", "Transport:Kafka:FetchWaitMaxMs=10", "--status-seconds", "1"];
        using var simulator = CliProcess.Start(Cli, ["simulate", "--kafka", b, "--horizon", "5", "--set", "Simulator:Precision=f32", .. fast]);
        using var scorer = CliProcess.Start(Cli, ["score", "--kafka", b, "--top-k", "5", "--health-port", healthPort.ToString(System.Globalization.CultureInfo.InvariantCulture), .. fast]);
        try
        {
            var ingest = await CliProcess.RunAsync(Cli, ["ingest", "--kafka", b, "--run", kafka.RunDir, "--sources", "4", .. fast], TimeSpan.FromSeconds(90));
            output.WriteLine(ingest.Output);
            Assert.True(ingest.ExitCode == 0, $"ingest exited {ingest.ExitCode}:\n{ingest.Output}");
            Assert.Contains("1 checkpoints published", ingest.Output, StringComparison.Ordinal);

            // The Scorer announces the model it serves once the probe set is complete.
            await KafkaPipelineFixture.Until(() => scorer.Output, o => o.Contains("is live", StringComparison.Ordinal), "the Scorer's probe index", 120);

            var arrow = Path.Combine(kafka.Root, "replayed.arrow");
            var replay = await CliProcess.RunAsync(Cli, ["replay", "--kafka", b, "--run", kafka.RunDir, "--queries", "30", "--out", arrow, "--timeout-seconds", "90"], TimeSpan.FromSeconds(120));
            output.WriteLine(replay.Output);
            Assert.True(replay.ExitCode == 0, $"replay exited {replay.ExitCode}:\n{replay.Output}");
            Assert.Contains("30 attributed", replay.Output, StringComparison.Ordinal);
            var results = EventCodecs.Attributions.DecodeBatch(await File.ReadAllBytesAsync(arrow));
            Assert.Equal(30, results.Select(r => r.QueryId).Distinct().Count());
            Assert.All(results, r =>
            {
                Assert.Equal($"{KafkaPipelineFixture.RunId}@4", r.ModelVersion);
                Assert.Equal(5, r.ExampleIds.Count);
                Assert.Equal(KafkaPipelineFixture.SourceCount, r.SourceIds.Count);
            });

            using var http = new HttpClient();
            var health = await http.GetAsync(new Uri($"http://127.0.0.1:{healthPort}/health"));
            var body = await health.Content.ReadAsStringAsync();
            Assert.True(health.IsSuccessStatusCode, body);
            Assert.Contains("\"scorer\":{\"status\":\"Healthy\"", body, StringComparison.Ordinal);
            Assert.Contains("30 scored", body, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var p in new[] { scorer, simulator })
            {
                p.Terminate();
            }
        }

        foreach (var p in new[] { scorer, simulator })
        {
            var exit = await p.WaitAsync(TimeSpan.FromSeconds(40));
            output.WriteLine(p.Output);
            Assert.True(exit == 0, $"exit {exit} after SIGTERM:\n{p.Output}");
            Assert.Contains("Stopped cleanly", p.Output, StringComparison.Ordinal);
        }

        Assert.Contains("30 queries scored", scorer.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "score" }, "needs a Kafka cluster")]
    [InlineData(new[] { "ingest", "--kafka", "127.0.0.1:1" }, "needs a run directory: give --run DIR")]
    [InlineData(new[] { "ingest", "--kafka", "127.0.0.1:1", "--run", "/no/such/run" }, "Ingest:RunDirectory '/no/such/run' does not exist")]
    [InlineData(new[] { "score", "--kafka", "127.0.0.1:1", "--set", "Scorer:TopK=0" }, "Scorer:TopK must be")]
    [InlineData(new[] { "score", "--kafka", "127.0.0.1:1", "--set", "TopK" }, "is not Section:Key=Value")]
    [InlineData(new[] { "simulate", "--kafka", "127.0.0.1:1", "--config", "/no/such.json" }, "configuration file '/no/such.json' does not exist")]
    [InlineData(new[] { "serve", "trainer", "--kafka", "127.0.0.1:1" }, "unknown service 'trainer'")]
    public async Task BadConfiguration_ExitsWithCode2_AndOneLineSayingWhatToFix(string[] args, string expected)
    {
        var run = await CliProcess.RunAsync(Cli, args, TimeSpan.FromSeconds(60));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(expected, run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Output, StringComparison.Ordinal); // no stack trace
    }

    [Fact]
    public async Task DemoOnAClusterWithoutThePipelineTopics_ExitsWithCode2_AndOneLineNamingEachTopicToCreate()
    {
        // librdkafka's mock cluster cannot create topics on request (its controller answers CreateTopics "not supported").
        KafkaLibrary.EnsureLoaded();
        using var cluster = new MockKafkaCluster(3);
        var outDir = Path.Combine(kafka.Root, "demo-no-topics");

        var run = await CliProcess.RunAsync(Cli, ["demo", "--kafka", cluster.BootstrapServers, "--out", outDir], TimeSpan.FromSeconds(60));
        output.WriteLine(run.Output);

        Assert.Equal(2, run.ExitCode);
        var error = Assert.Single(run.Output.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.Contains("could not be created (Could not create topic 'batches'", error, StringComparison.Ordinal);
        Assert.Contains("not supported by broker", error, StringComparison.Ordinal);
        Assert.Contains("create batches (1 partition, cleanup.policy=delete), checkpoints (1 partition, cleanup.policy=delete), " +
            "probes (4 partitions, cleanup.policy=compact), dead-letter (1 partition, cleanup.policy=delete), queries (4 partitions, cleanup.policy=delete), " +
            "ledger (1 partition, cleanup.policy=compact), attributions (4 partitions, cleanup.policy=delete); then run it again.", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Output, StringComparison.Ordinal); // no stack trace on the console
        // ... it is in the log, with the broker's error.
        var log = await File.ReadAllTextAsync(Path.Combine(outDir, "demo.log"));
        Assert.Contains("TopicProvisioningException", log, StringComparison.Ordinal);
        Assert.Contains("   at ", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DemoOverKafka_WithTheConsole_OnAClusterThatCannotCreateTopics_UsesTheExistingOnes_AndAttributesEveryQuery()
    {
        // The README's `demo --kafka` with its default web console, end to end. The mock refuses CreateTopics, so the
        // topics (the console's ledger too) exist beforehand, as `MockKafka --pipeline-topics` makes them. Without the
        // ledger topic this demo used to stop with exit code 1 and no message; now the demo provisions the ledger with
        // the pipeline's topics up front (exit 2 naming it: the test above).
        KafkaLibrary.EnsureLoaded();
        using var cluster = new MockKafkaCluster(3);
        foreach (var topic in KafkaPipelineFixture.PipelineTopics)
        {
            cluster.CreateTopic(topic, 4, 3);
        }

        cluster.CreateTopic("ledger", 1, 3);
        var root = Path.Combine(kafka.Root, "demo-kafka-console");
        var run = await CliProcess.RunAsync(Cli,
            ["demo", "--kafka", cluster.BootstrapServers, "--console-port", "0", "--train-size", "1000", "--epochs", "1", "--simulate", "40",
             "--horizon", "5", "--queries", "20", "--leaked-queries", "4", "--rate", "0", "--run-dir", Path.Combine(root, "run"), "--out", Path.Combine(root, "out")],
            TimeSpan.FromSeconds(240));
        output.WriteLine(run.Output);

        Assert.True(run.ExitCode == 0, $"demo exited {run.ExitCode}:\n{run.Output}");
        Assert.Contains("Web console: ", run.Output, StringComparison.Ordinal);
        Assert.Contains("Wrote 24 attribution events", run.Output, StringComparison.Ordinal);
        Assert.Equal(24, EventCodecs.Attributions.DecodeBatch(await File.ReadAllBytesAsync(Path.Combine(root, "out", "attributions.arrow"))).Count);
    }

    [Fact]
    public async Task ConsoleWhoseLedgerPublisherFails_ExitsWithCode2_AndSaysWhatFailedAndWhy()
    {
        // `./pipeline console` on a cluster without the ledger topic, which the mock cannot create: the ledger publisher
        // fails after the console started. It used to end with exit code 1 and no message; now it names the service,
        // the topic and what to create, and exits 2.
        KafkaLibrary.EnsureLoaded();
        using var cluster = new MockKafkaCluster(3);
        foreach (var topic in KafkaPipelineFixture.PipelineTopics)
        {
            cluster.CreateTopic(topic, 4, 3);
        }

        var db = Path.Combine(kafka.Root, "console-no-ledger", "a.duckdb");
        var run = await CliProcess.RunAsync(Cli, ["console", "--kafka", cluster.BootstrapServers, "--port", "0", "--flight-port", "0", "--db", db],
            TimeSpan.FromSeconds(90));
        output.WriteLine(run.Output);

        Assert.Equal(2, run.ExitCode);
        var error = Assert.Single(run.Output.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.Contains("the console's LedgerPublisher stopped", error, StringComparison.Ordinal);
        Assert.Contains("ledger (1 partition, cleanup.policy=compact)", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ScoreOnAClusterWithoutItsTopics_ExitsWithCode2_AndOneLineNamingThem()
    {
        KafkaLibrary.EnsureLoaded();
        using var cluster = new MockKafkaCluster(1);

        var run = await CliProcess.RunAsync(Cli, ["score", "--kafka", cluster.BootstrapServers], TimeSpan.FromSeconds(60));

        Assert.Equal(2, run.ExitCode);
        var error = Assert.Single(run.Output.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.Contains("create queries (4 partitions, cleanup.policy=delete), dead-letter (1 partition, cleanup.policy=delete), attributions (4 partitions, cleanup.policy=delete);", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ALibrdkafkaOverrideThatDoesNotLoad_ExitsWithCode2_AndOneLineNamingTheSetting()
    {
        var run = await CliProcess.RunAsync(Cli, ["score", "--kafka", "127.0.0.1:1", "--set", "Transport:Kafka:LibraryPath=/no/such/librdkafka.so.1"], TimeSpan.FromSeconds(60));

        Assert.Equal(2, run.ExitCode);
        var error = Assert.Single(run.Output.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.Contains("Could not load librdkafka (/no/such/librdkafka.so.1: no such file); point Transport:Kafka:LibraryPath at a librdkafka 2.x shared library", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Output, StringComparison.Ordinal);
    }

    private static int FreePort()
    {
        using var l = new TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }
}
