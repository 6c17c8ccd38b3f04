using System.Collections.Concurrent;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Training;
using Attribution.Simulator;
using Attribution.Transport;
using Attribution.Transport.Alerts;
using Attribution.Transport.Embedded;
using Attribution.Transport.Messages;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Attribution.Integration.Tests.Services;

/// <summary>A tiny trained run (784-16-10, 1 epoch on 200 FashionMNIST images) in a temp directory, shared by the service tests.</summary>
public sealed class PipelineFixture : IDisposable
{
    public const int TrainCount = 200;
    public const int SourceCount = 4;

    public PipelineFixture()
    {
        Data = FashionMnist.Load();
        Root = Path.Combine(Path.GetTempPath(), "svc-tests-" + Guid.NewGuid().ToString("N"));
        RunDir = Path.Combine(Root, "tiny-run");
        var recipe = TrainingRecipe.DefaultMlp([.. Enumerable.Range(0, TrainCount)], [.. Enumerable.Range(0, 50)], epochs: 1, seed: 3) with
        {
            Model = new ModelSpec { Widths = [784, 16, 10] },
            BatchSize = 50,
        };
        var result = MlpTrainer.Train(recipe, Data);
        RunDirectory.Save(RunDir, new RunManifest { Recipe = recipe, Metrics = result.Metrics, CreatedUtc = "2026-01-01T00:00:00Z" }, result.Model.Parameters);
        Recipe = recipe;
    }

    public FashionMnistData Data { get; }

    public string Root { get; }

    public string RunDir { get; }

    public TrainingRecipe Recipe { get; }

    /// <summary>Test image <paramref name="i"/> as normalised features.</summary>
    public float[] TestImage(int i) => Data.Test.Select([i], Recipe.Data.Normalization).Inputs;

    /// <summary>A copy of the run directory (for tests that change files).</summary>
    public string CopyRun(string name)
    {
        var dir = Path.Combine(Root, name);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(RunDir))
        {
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), overwrite: true);
        }

        return dir;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Collects alerts delivered by the in-memory MassTransit bus.</summary>
public sealed class AlertSink : IConsumer<ContaminationAlertMessage>
{
    public static ConcurrentBag<ContaminationAlertMessage> Received { get; } = [];

    public Task Consume(ConsumeContext<ContaminationAlertMessage> context)
    {
        Received.Add(context.Message);
        return Task.CompletedTask;
    }
}

/// <summary>Builds hosts of the services over one shared embedded log, and waits by polling.</summary>
internal static class Pipeline
{
    public static SimulatorOptions FastSimulation(SimulatorOptions o)
    {
        o.Horizon = 8;
        o.Epsilon = 1e-3f;
        o.StepSize = 0.05f;
        o.BatchSize = 50;
        o.Rank = 16;
        o.Precision = "f32";
        o.UnitsPerBlock = 25;
        return o;
    }

    public static IHost Build(IEventLog log, Action<IServiceCollection> add, bool alerts = false)
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
        builder.Services.AddSingleton(log);
        if (alerts)
        {
            builder.Services.AddAlertBus(new AlertBusOptions(), x => x.AddConsumer<AlertSink>());
        }

        add(builder.Services);
        return builder.Build();
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

    /// <summary>Every record of a topic right now (standalone reader).</summary>
    public static List<EventRecord> ReadAll(IEventLog log, string topic)
    {
        var result = new List<EventRecord>();
        var partitions = log.GetPartitionCountAsync(topic).GetAwaiter().GetResult() ?? 0;
        if (partitions == 0)
        {
            return result;
        }

        using var reader = log.CreateConsumer(new ConsumerSettings { Topics = [topic], Start = StartPosition.Beginning });
        var ends = Enumerable.Range(0, partitions).Select(p => reader.GetEndOffset(new TopicPartition(topic, p))).ToArray();
        var next = new long[partitions];
        while (Enumerable.Range(0, partitions).Any(p => next[p] < ends[p]))
        {
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

    public static long Count(IEventLog log, string topic)
    {
        var partitions = log.GetPartitionCountAsync(topic).GetAwaiter().GetResult() ?? 0;
        if (partitions == 0)
        {
            return 0;
        }

        using var reader = log.CreateConsumer(new ConsumerSettings { Topics = [topic], Start = StartPosition.Beginning });
        return Enumerable.Range(0, partitions).Sum(p => reader.GetEndOffset(new TopicPartition(topic, p)));
    }

    public static async Task ProduceQueryAsync(IEventLog log, IEventProducer producer, string id, float[]? features, long[]? tokens = null)
    {
        var query = new ModelQuery(id, "tiny-run@4", features, tokens, DateTimeOffset.UtcNow);
        await producer.ProduceQueryAsync(query);
    }

    public static EmbeddedEventLog NewLog() => new(new EmbeddedOptions { DefaultPartitions = 4 });
}
