using System.Collections.Concurrent;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Ingest;
using Attribution.Integration.Tests.Kafka;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Attribution.Transport.Messages;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Attribution.Integration.Tests.Services;

/// <summary>
/// A language-model run end to end for contamination: a trainer's batches (documents as token ids) and checkpoint on
/// the embedded log; the Simulator builds and publishes the run's exact-span index and its forward-only probes; the
/// Scorer loads both and serves the probes; a query that copies a training document raises a calibrated alert that reaches a
/// MassTransit consumer over RabbitMQ with its evidence, and a clean query does not. The RabbitMQ node is the Kafka
/// collection's (<see cref="KafkaPipelineFixture"/>): a class that started and stopped the same private node beside that
/// collection stopped it under the collection's own alert test (a CI failure, stop 23), so this class joins it.
/// </summary>
[Collection(KafkaPipelineCollection.Name)]
public sealed class LanguageModelAlertTests : IAsyncLifetime
{
    private const string RunId = "lm-run";
    private const long Step = 3;
    private static readonly GptConfig Config = new(VocabSize: ByteTokenizer.Size, Context: 96, DModel: 16, Heads: 2, Layers: 1); // the leaked item (prompt + answer, 60 bytes) fits the context: a query that does not is dead-lettered
    private static readonly string[] Documents =
    [
        "Q: what is the boiling point of water at sea level? A: 100 C",
        "the quick brown fox jumps over the lazy dog",
        "all work and no play makes jack a dull boy",
        "to be or not to be, that is the question",
    ];
    private static readonly long[] DocumentIds = [501, 502, 503, 504];
    private static readonly int[] DocumentSources = [0, 1, 1, 1]; // source index: 0 = the leaked benchmark (id 90), 1 = the web (id 91)
    private static readonly long[] SourceIds = [90, 91];
    private readonly string _dir = Directory.CreateTempSubdirectory("lm-alerts-").FullName;
    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_leaked_item_in_a_text_query_raises_an_alert_over_RabbitMq_with_its_span_document_source_and_share()
    {
        await using var log = Pipeline.NewLog();
        var framed = Documents.Select(d => ByteTokenizer.Instance.EncodeDocument(System.Text.Encoding.UTF8.GetBytes(d))).ToArray();
        var gpt = new Gpt(Config, seed: 5);
        var model = new GptModel(gpt);

        // What a trainer publishes: two batches of documents, then the checkpoint (a language model: it names its tokenizer).
        var producer = log.CreateProducer();
        foreach (var t in new[] { Topics.Batches, Topics.Checkpoints })
        {
            await log.CreateTopicAsync(new TopicSpec(t));
        }

        await producer.ProduceAsync(Topics.Batches, ArrowEvents.Message(RunId, new TrainingBatch(RunId, 0, DocumentIds[..2], [.. DocumentSources[..2].Select(s => SourceIds[s])], Documents: framed[..2])));
        await producer.ProduceAsync(Topics.Batches, ArrowEvents.Message(RunId, new TrainingBatch(RunId, 1, DocumentIds[2..], [.. DocumentSources[2..].Select(s => SourceIds[s])], Documents: framed[2..])));
        GptCheckpoint.Save(_dir, gpt);
        var checkpointFile = Path.Combine(_dir, GptCheckpoint.WeightsFile);
        var (checksum, parameters) = RunScanner.Describe(checkpointFile);
        await producer.ProduceAsync(Topics.Checkpoints, ArrowEvents.Message(RunId, new CheckpointPublished(RunId, Step, new Uri(checkpointFile).AbsoluteUri, checksum, parameters,
            new CheckpointRecipe(model.Architecture, 0.01, 0, 2, 1, "test-corpus", ByteTokenizer.Instance.Name))));

        var monitorBuilder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        monitorBuilder.Services.AddAlertBus(KafkaPipelineFixture.RabbitBus(), x => x.AddConsumer<LmAlertMonitor>());
        using var monitorHost = monitorBuilder.Build();
        await monitorHost.StartAsync();
        Assert.Equal(BusHealthStatus.Healthy, await monitorHost.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60)));

        using var host = Pipeline.Build(log, s =>
        {
            s.AddSimulator(o => o.GroupId = "simulator-lm");
            s.AddScorer(o =>
            {
                o.RunId = RunId;
                o.TopK = 3;
            });
            s.AddAlertBus(KafkaPipelineFixture.RabbitBus());
        });
        var scorerWorker = host.Services.GetRequiredService<ScorerWorker>();
        await host.StartAsync();
        Assert.Equal(BusHealthStatus.Healthy, await host.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60)));

        // The Simulator publishes the span index; the Scorer loads it under the checkpoint's version.
        var index = scorerWorker.Index;
        await Pipeline.Until(() => index.Spans.For($"{RunId}@{Step}"), s => s is not null, "the span index loaded by the Scorer", 120);
        // The Simulator simulates the checkpoint's documents (forward-only probes); the Scorer serves them.
        await index.WaitScorerAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(180));

        // The leaked benchmark item, asked as a prompt with its answer as the completion; and a query about nothing trained on.
        await producer.ProduceQueryAsync(ModelQuery.FromText("leak-1", $"{RunId}@{Step}", "bytes", "Q: what is the boiling point of water at sea level?", " A: 100 C", DateTimeOffset.UtcNow));
        await producer.ProduceQueryAsync(ModelQuery.FromText("clean-1", $"{RunId}@{Step}", "bytes", "Zebras graze near", " Kilimanjaro", DateTimeOffset.UtcNow));
        await Pipeline.Until(() => scorerWorker.Metrics.QueriesScored, n => n >= 2, "2 attributions");
        await host.StopAsync();
        await Pipeline.Until(() => LmAlertMonitor.Received.Count(a => a.ModelVersion == $"{RunId}@{Step}"), n => n >= 1, "the alert over RabbitMQ", 60);
        await Task.Delay(500); // a second (wrong) alert would have arrived by now
        await monitorHost.StopAsync();

        var alert = Assert.Single(LmAlertMonitor.Received, a => a.ModelVersion == $"{RunId}@{Step}");
        Assert.Equal(("leak-1", AlertRule.Calibrated), (alert.QueryId, alert.Rule));
        Assert.True(alert.Score > alert.Threshold, $"score {alert.Score}, threshold {alert.Threshold}");
        var e = alert.Evidence;
        Assert.NotNull(e);
        Assert.Equal(Documents[0], e.MatchedSpan); // prompt + completion: the whole benchmark item
        Assert.Equal((0, Documents[0].Length, 1), (e.SpanStart, e.SpanLength, e.SpanCount));
        Assert.Equal(501L, e.DocumentIds[0]);
        Assert.Equal(90L, e.DocumentSourceIds[0]);
        Assert.InRange(e.AttributionShare, 0, 1);
        Assert.Equal(0, scorerWorker.Index.SpanIndexesRejected);
    }
}

/// <summary>Collects the contamination alerts the language-model test's monitor receives.</summary>
public sealed class LmAlertMonitor : IConsumer<ContaminationAlertMessage>
{
    public static ConcurrentQueue<ContaminationAlertMessage> Received { get; } = new();

    public Task Consume(ConsumeContext<ContaminationAlertMessage> context)
    {
        Received.Enqueue(context.Message);
        return Task.CompletedTask;
    }
}
