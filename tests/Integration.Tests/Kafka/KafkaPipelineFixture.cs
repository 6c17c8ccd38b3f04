using System.Collections.Concurrent;
using System.Diagnostics;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Training;
using Attribution.Ingest;
using Attribution.MockKafka;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Attribution.Transport.Alerts;
using Attribution.Transport.Kafka;
using Attribution.Transport.Messages;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Attribution.Integration.Tests.Kafka;

/// <summary>
/// Started once for the collection: a librdkafka mock Kafka cluster (3 brokers on loopback, the pipeline's topics with
/// 4 partitions, replication 3), a private RabbitMQ node (infra/rabbitmq.sh, 127.0.0.1:5673), a tiny trained run
/// (784-16-10, one epoch on 200 FashionMNIST images) and its probe set, built by Ingest → Simulator over Kafka.
/// The services use fixed topic names, so tests share the topics and stay apart by query-id prefix and consumer group.
/// </summary>
public sealed class KafkaPipelineFixture : IAsyncLifetime
{
    public const string RunId = "kafka-tiny-run";
    public const int Partitions = 4;
    public const int TrainCount = 200;
    public const int SourceCount = 4;
    /// <summary>The private RabbitMQ node's port: RABBITMQ_TEST_PORT when set (parallel runs on one machine), else 5673.</summary>
    public static readonly int RabbitPort = int.TryParse(Environment.GetEnvironmentVariable("RABBITMQ_TEST_PORT"), out var port) ? port : 5673;
    public static readonly string[] PipelineTopics = [Topics.Checkpoints, Topics.Batches, Topics.Probes, Topics.Queries, Topics.Attributions, Topics.DeadLetter];

    private string _rabbitScript = "";

    public MockKafkaCluster Cluster { get; private set; } = null!;

    public KafkaEventLog Log { get; private set; } = null!;

    public IEventProducer Producer { get; private set; } = null!;

    public FashionMnistData Data { get; private set; } = null!;

    public TrainingRecipe Recipe { get; private set; } = null!;

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "kafka-it-" + Guid.NewGuid().ToString("N"));

    public string RunDir => Path.Combine(Root, RunId);

    /// <summary>Seconds Ingest + Simulator took to publish the probe set over Kafka.</summary>
    public double ProbeSetSeconds { get; private set; }

    public async Task InitializeAsync()
    {
        await StartRabbitAsync();

        Data = FashionMnist.Load();
        Recipe = TrainingRecipe.DefaultMlp([.. Enumerable.Range(0, TrainCount)], [.. Enumerable.Range(0, 50)], epochs: 1, seed: 3) with
        {
            Model = new ModelSpec { Widths = [784, 16, 10] },
            BatchSize = 50,
        };
        var trained = MlpTrainer.Train(Recipe, Data);
        RunDirectory.Save(RunDir, new RunManifest { Recipe = Recipe, Metrics = trained.Metrics, CreatedUtc = "2026-01-01T00:00:00Z" }, trained.Model.Parameters);

        // Confluent.Kafka must use the same system library the mock cluster lives in.
        KafkaLibrary.EnsureLoaded();
        Cluster = new MockKafkaCluster(3);
        foreach (var topic in PipelineTopics)
        {
            // The mock reports no controller, so the AdminClient cannot create topics; the services' creates are no-ops.
            Cluster.CreateTopic(topic, Partitions, 3);
        }

        Log = new KafkaEventLog(new KafkaOptions
        {
            BootstrapServers = Cluster.BootstrapServers,
            ClientId = "kafka-integration-tests",
            SessionTimeoutMs = 6000,
            RetryBackoffMs = 50,
            FetchWaitMaxMs = 20,
            AdminTimeoutMs = 5000,
            DefaultReplicationFactor = 3,
            // One produce request in flight per connection: the mock does not check idempotent sequence numbers, so with
            // several in flight a request failed by an injected error, followed by a successful one, is reported
            // delivered (offset unset) but never appended (MockProduceAckTests; docs/benchmarks/pipeline.md, "59 of 60").
            Properties = { ["topic.metadata.refresh.interval.ms"] = "1000", ["reconnect.backoff.max.ms"] = "200", ["max.in.flight.requests.per.connection"] = "1" },
        }, Environment.GetEnvironmentVariable("SERVICE_TESTS_LOG") == "1" ? LoggerFactory.Create(b => b.AddSimpleConsole().SetMinimumLevel(LogLevel.Debug)) : null);
        Producer = Log.CreateProducer();
        foreach (var topic in PipelineTopics)
        {
            await Until(() => Log.GetPartitionCountAsync(topic).GetAwaiter().GetResult(), n => n == Partitions, $"topic {topic} visible", 20);
        }

        // Ingest → Simulator once for the collection: the probe set every test's Scorer loads from the compacted topic.
        var watch = Stopwatch.StartNew();
        using var upstream = BuildHost(s =>
        {
            s.AddIngest(o =>
            {
                o.RunDirectory = RunDir;
                o.RunId = RunId;
                o.SourceCount = SourceCount;
                o.Partitions = Partitions;
            });
            s.AddSimulator(o =>
            {
                o.Horizon = 8;
                o.Epsilon = 1e-3f;
                o.StepSize = 0.05f;
                o.BatchSize = 50;
                o.Rank = 16;
                o.Precision = "f32";
                o.UnitsPerBlock = 25;
                o.ProbePartitions = Partitions;
                o.GroupId = "simulator-" + Guid.NewGuid().ToString("N")[..8];
            });
        });
        await upstream.StartAsync();
        var simulator = upstream.Services.GetRequiredService<SimulatorWorker>();
        await Until(() => simulator.ProbeSetsCompleted, n => n >= 1, "the probe set over Kafka", 120);
        await upstream.StopAsync();
        ProbeSetSeconds = watch.Elapsed.TotalSeconds;
    }

    public async Task DisposeAsync()
    {
        Producer?.Dispose();
        if (Log is not null)
        {
            await Log.DisposeAsync();
        }

        Cluster?.Dispose();
        if (_rabbitScript.Length > 0)
        {
            await RunRabbitAsync("stop");
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Normalised features of FashionMNIST test image <paramref name="i"/>.</summary>
    public float[] TestImage(int i) => Data.Test.Select([i], Recipe.Data.Normalization).Inputs;

    /// <summary>The RabbitMQ alert bus settings of the private node.</summary>
    public static AlertBusOptions RabbitBus() => new()
    {
        Kind = "rabbitmq",
        RabbitMq = new RabbitMqOptions { Host = "127.0.0.1", Port = RabbitPort },
    };

    /// <summary>A host over the shared Kafka log (not disposed with the host), with <paramref name="add"/>'s services.</summary>
    public IHost BuildHost(Action<IServiceCollection> add, AlertBusOptions? bus = null, Action<IBusRegistrationConfigurator>? consumers = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLogging(b =>
        {
            // SERVICE_TESTS_LOG=1 shows the services' logs when a test needs explaining.
            if (Environment.GetEnvironmentVariable("SERVICE_TESTS_LOG") == "1")
            {
                b.AddSimpleConsole().SetMinimumLevel(LogLevel.Debug);
            }
        });
        builder.Services.AddEventLog(_ => { });
        builder.Services.AddSingleton<IEventLog>(Log);
        if (bus is not null)
        {
            builder.Services.AddAlertBus(bus, consumers);
        }

        add(builder.Services);
        return builder.Build();
    }

    /// <summary>A Scorer host in its own consumer group.</summary>
    public IHost BuildScorer(string groupId, Action<ScorerOptions>? configure = null, AlertBusOptions? bus = null) => BuildHost(s => s.AddScorer(o =>
    {
        o.GroupId = groupId;
        o.RunId = RunId;
        o.TopK = 5;
        o.QueryPartitions = Partitions;
        o.CommitEvery = 5;
        o.CommitIntervalMs = 200;
        // Two batches at a time, as `./pipeline score` runs: the fault tests cover the concurrent path.
        o.ConcurrentBatches = 2;
        configure?.Invoke(o);
    }), bus);

    /// <summary>Where each query produced by <see cref="ProduceQueryAsync"/> was acknowledged (for diagnosing a missing one).</summary>
    public ConcurrentDictionary<string, EventPosition> Acknowledged { get; } = new(StringComparer.Ordinal);

    public async Task ProduceQueryAsync(string id, float[] features)
    {
        var query = new ModelQuery(id, $"{RunId}@4", features, null, DateTimeOffset.UtcNow);
        Acknowledged[id] = await Producer.ProduceQueryAsync(query);
    }

    /// <summary>Queries <c>{prefix}-{i}</c> for i in [from, from + count), produced concurrently.</summary>
    public Task ProduceQueriesAsync(string prefix, int from, int count) =>
        Task.WhenAll(Enumerable.Range(from, count).Select(i => ProduceQueryAsync($"{prefix}-{i:D3}", TestImage(i % 1000))));

    /// <summary>Every record of a topic up to its current end offsets (standalone reader, duplicates included).</summary>
    public List<EventRecord> ReadAll(string topic)
    {
        var result = new List<EventRecord>();
        using var reader = Log.CreateConsumer(new ConsumerSettings { Topics = [topic], Start = StartPosition.Beginning });
        var ends = Enumerable.Range(0, Partitions).Select(p => reader.GetEndOffset(new TopicPartition(topic, p))).ToArray();
        var next = new long[Partitions];
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Enumerable.Range(0, Partitions).Any(p => next[p] < ends[p]))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"reading {topic} to its end offsets [{string.Join(",", ends)}] stopped at [{string.Join(",", next)}]");
            }

            if (reader.Consume(TimeSpan.FromMilliseconds(100)) is { } r)
            {
                next[r.Partition] = r.Offset + 1;
                if (r.Offset < ends[r.Partition])
                {
                    result.Add(r);
                }
            }
        }

        return result;
    }

    /// <summary>Query ids of the raw attributions topic with this prefix, one entry per record (duplicates kept).</summary>
    public List<string> RawAttributionIds(string prefix) =>
        [.. ReadAll(Topics.Attributions).Select(r => EventCodecs.Attributions.Decode(r.Value).QueryId).Where(id => id.StartsWith(prefix + "-", StringComparison.Ordinal))];

    /// <summary>As <see cref="Until{T}(Func{T}, Func{T, bool}, string, double)"/>, describing what was awaited only on timeout (with the state then).</summary>
    public static async Task<T> Until<T>(Func<T> probe, Func<T, bool> done, Func<string> what, double seconds = 60)
    {
        try
        {
            return await Until(probe, done, "", seconds);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"timed out after {seconds} s waiting for {what()}", e);
        }
    }

    public static async Task<T> Until<T>(Func<T> probe, Func<T, bool> done, string what, double seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var value = probe();
            if (done(value))
            {
                return value;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {seconds} s waiting for {what} (last value {value})");
            }

            await Task.Delay(20);
        }
    }

    private async Task StartRabbitAsync()
    {
        var root = AppContext.BaseDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "Pipeline.sln")))
        {
            root = Path.GetDirectoryName(root);
        }

        var script = root is null ? "" : Path.Combine(root, "infra", "rabbitmq.sh");
        Assert.True(File.Exists(script), $"infra/rabbitmq.sh not found above {AppContext.BaseDirectory}; run the tests from the repository (./pipeline test).");
        Assert.True(
            File.Exists("/usr/lib/rabbitmq/bin/rabbitmq-server") || File.Exists("/usr/sbin/rabbitmq-server"),
            "rabbitmq-server is not installed: run ./pipeline test (it installs the Debian package rabbitmq-server), or apt-get install rabbitmq-server.");
        _rabbitScript = script;
        var (code, output) = await RunRabbitAsync("start");
        Assert.True(code == 0, $"infra/rabbitmq.sh start failed (exit {code}):\n{output}");
    }

    private async Task<(int Code, string Output)> RunRabbitAsync(string verb)
    {
        var psi = new ProcessStartInfo("bash", [_rabbitScript, verb]) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["RABBITMQ_TEST_PORT"] = RabbitPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}

[CollectionDefinition(Name)]
public sealed class KafkaPipelineCollection : ICollectionFixture<KafkaPipelineFixture>
{
    public const string Name = "pipeline over mock kafka + rabbitmq";
}

/// <summary>The monitor side of the alert bus: collects contamination alerts delivered over RabbitMQ.</summary>
public sealed class ContaminationMonitor : IConsumer<ContaminationAlertMessage>
{
    public static ConcurrentQueue<ContaminationAlertMessage> Received { get; } = new();

    public Task Consume(ConsumeContext<ContaminationAlertMessage> context)
    {
        Received.Enqueue(context.Message);
        return Task.CompletedTask;
    }
}
