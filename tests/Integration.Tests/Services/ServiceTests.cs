using System.Text;
using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;
using Attribution.Ingest;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Attribution.Transport.Messages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Attribution.Integration.Tests.Services;

/// <summary>Ingest → Simulator → Scorer on the embedded log, on a tiny trained run.</summary>
public sealed class ServiceTests(PipelineFixture fixture, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<PipelineFixture>
{
    private const string RunId = "tiny-run";

    private static void AddAll(IServiceCollection s, string runDir, Action<ScorerOptions>? scorer = null, Action<SimulatorOptions>? simulator = null)
    {
        s.AddIngest(o =>
        {
            o.RunDirectory = runDir;
            o.RunId = RunId;
            o.SourceCount = PipelineFixture.SourceCount;
        });
        s.AddSimulator(o => simulator?.Invoke(Pipeline.FastSimulation(o)));
        s.AddScorer(o =>
        {
            o.TopK = 5;
            scorer?.Invoke(o);
        });
    }

    // Spectral (the MLP default): the Simulator publishes the exact form (gradient factors + Ritz coefficients per example,
    // the Ritz vectors once as shared chunks) and the Scorer loads it as eval/attribute hold it. Trajectory: dense
    // responses as rank-r probes (ProbeFormat, no shared chunks), the form older Simulators published: still served.
    [Theory]
    [InlineData(null)]
    [InlineData(ForwardPropagation.Trajectory)]
    public async Task EveryQueryGetsExactlyOneAttribution_WithTheScoresForwardOnlyComputesDirectly(ForwardPropagation? propagation)
    {
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s => AddAll(s, fixture.RunDir, simulator: o => o.Propagation = propagation));
        await host.StartAsync();
        var producer = host.Services.GetRequiredService<IEventProducer>();
        const int n = 12;
        for (int i = 0; i < n; i++)
        {
            await Pipeline.ProduceQueryAsync(log, producer, $"q-{i}", fixture.TestImage(i));
        }

        var metrics = host.Services.GetRequiredService<ScorerMetrics>();
        await Pipeline.Until(() => metrics.QueriesScored, c => c >= n, "12 attributions");
        await host.StopAsync();
        var results = Pipeline.ReadAll(log, Topics.Attributions).Select(r => EventCodecs.Attributions.Decode(r.Value)).ToList();
        Assert.Equal(n, results.Count);
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"q-{i}").Order(), results.Select(r => r.QueryId).Order());
        Assert.All(results, r => Assert.Equal($"{RunId}@4", r.ModelVersion));
        Assert.All(results, r => Assert.Equal(5, r.ExampleIds.Count));
        Assert.All(results, r => Assert.Equal([0L, 1, 2, 3], r.SourceIds));

        // The same problem computed directly: examples in ascending id order, sources from the seeded assignment.
        var ids = Enumerable.Range(0, PipelineFixture.TrainCount).ToArray();
        var (_, model) = RunDirectory.LoadMlp(fixture.RunDir);
        var train = fixture.Data.Train.Select(ids, fixture.Recipe.Data.Normalization);
        var sourceOf = ids.Select(i => (int)RunScanner.SeededSource(i, 1, PipelineFixture.SourceCount)).ToArray();
        var problem = new AttributionProblem(model.Layout, model.ToFlat(), train.Inputs, train.Labels, sourceOf, PipelineFixture.SourceCount, fixture.Recipe.Optimizer.WeightDecay);
        var options = Pipeline.FastSimulation(new SimulatorOptions { Propagation = propagation }).ToForwardOnly();
        var index = host.Services.GetRequiredService<ScorerWorker>().Index.Current!;
        Assert.Equal(propagation is null, index.ExampleFormat is null); // exact form (no ProbeFormat) exactly when spectral
        Assert.Equal(propagation is null, index.Examples.DirectionCount > 0);
        var method = new ForwardOnlyMethod(options);
        method.Precompute(problem);
        foreach (var result in results)
        {
            int q = int.Parse(result.QueryId[2..], System.Globalization.CultureInfo.InvariantCulture);
            var x = fixture.TestImage(q);
            var logits = new float[10];
            model.Logits(x, 1, logits);
            int predicted = Array.IndexOf(logits, logits.Max());
            var direct = method.Score(new QueryBatch(x, [predicted], 784));
            var top = direct.TopK(0, 5);
            Assert.Equal(top.Select(t => (long)t.Example), result.ExampleIds);
            // Each top example names its source, the one its score is summed into (source ids are 0..3 here).
            Assert.Equal(top.Select(t => (long)sourceOf[t.Example]), result.ExampleSourceIds!);
            for (int k = 0; k < 5; k++)
            {
                Assert.Equal(top[k].Score, result.Scores[k], 1e-4f * Math.Max(1f, Math.Abs(top[k].Score)));
            }

            // A source's score is the sum of its examples' scores (the Scorer learns each example's source from the
            // training batches); the tolerance scales with the summed magnitudes, as the sum may cancel.
            for (int s = 0; s < PipelineFixture.SourceCount; s++)
            {
                var members = ids.Where(i => sourceOf[i] == s).ToArray();
                float magnitude = members.Sum(i => Math.Abs(direct.Scores[i]));
                Assert.True(magnitude > 0, $"source {s} has no examples or only zero scores");
                Assert.Equal(direct.SourceScores[s], result.SourceScores[s], 1e-4f * Math.Max(1f, magnitude));
            }
        }
    }

    [Fact]
    public async Task BurstOfQueries_IsScoredInMicroBatches_EachAttributedOnce()
    {
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s => AddAll(s, fixture.RunDir));
        await host.StartAsync();
        var worker = host.Services.GetRequiredService<ScorerWorker>();
        await worker.Index.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        var producer = host.Services.GetRequiredService<IEventProducer>();
        const int n = 400;
        var images = Enumerable.Range(0, 50).Select(fixture.TestImage).ToArray();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, n).Select(i => Pipeline.ProduceQueryAsync(log, producer, $"b-{i}", images[i % 50])));
        await Pipeline.Until(() => worker.Metrics.QueriesScored, c => c >= n, "400 attributions");
        var seconds = watch.Elapsed.TotalSeconds;
        await host.StopAsync();
        var m = worker.Metrics;
        output.WriteLine($"{n} queries in {seconds:F2} s ({n / seconds:F0}/s), {m.Batches} batches (mean {m.MeanBatchSize:F1}), latency p50 {m.LatencyP50Micros} us, p99 {m.LatencyP99Micros} us");
        Assert.Equal(n, Pipeline.Count(log, Topics.Attributions));
        Assert.True(m.MeanBatchSize > 1.5, $"mean batch {m.MeanBatchSize:F2}: a burst should be scored in micro-batches");
        Assert.InRange(m.LatencyP50Micros, 1, m.LatencyP99Micros);
        // A burst queues behind the batches in progress: the wait for the batcher is counted, per query, and is part of
        // the queries' latency (the mean wait cannot exceed the largest latency).
        double meanWaitMicros = m.QueueWaitTime.TotalMicroseconds / m.QueriesScored;
        Assert.InRange(meanWaitMicros, 1, seconds * 1e6);
    }

    [Fact]
    public async Task PoisonQueries_LandInDeadLetterWithTheirError_WhileTheOthersAreAttributed()
    {
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s => AddAll(s, fixture.RunDir));
        await host.StartAsync();
        var producer = host.Services.GetRequiredService<IEventProducer>();
        var garbage = Encoding.UTF8.GetBytes("not an arrow stream");
        await producer.ProduceAsync(Topics.Queries, EventMessage.Create("bad-bytes", garbage));
        await Pipeline.ProduceQueryAsync(log, producer, "bad-width", new float[10]);
        var nan = fixture.TestImage(0);
        nan[17] = float.NaN;
        await Pipeline.ProduceQueryAsync(log, producer, "bad-nan", nan);
        await Pipeline.ProduceQueryAsync(log, producer, "bad-tokens", null, [1, 2, 3]);
        for (int i = 0; i < 4; i++)
        {
            await Pipeline.ProduceQueryAsync(log, producer, $"good-{i}", fixture.TestImage(i));
        }

        var metrics = host.Services.GetRequiredService<ScorerMetrics>();
        var worker = host.Services.GetRequiredService<ScorerWorker>();
        await Pipeline.Until(() => (metrics.QueriesScored, worker.DeadLetteredCount), c => c.QueriesScored >= 4 && c.DeadLetteredCount >= 4, "4 attributions and 4 dead letters");
        await host.StopAsync();

        var attributed = Pipeline.ReadAll(log, Topics.Attributions).Select(r => EventCodecs.Attributions.Decode(r.Value).QueryId).Order().ToArray();
        Assert.Equal(["good-0", "good-1", "good-2", "good-3"], attributed);
        var dead = Pipeline.ReadAll(log, Topics.DeadLetter).Where(r => r.GetHeaderString(DeadLetterPublisher.OriginalTopicHeader) == Topics.Queries)
            .ToDictionary(r => r.KeyString);
        Assert.Equal(["bad-bytes", "bad-nan", "bad-tokens", "bad-width"], dead.Keys.Order().ToArray());
        Assert.Equal(garbage, dead["bad-bytes"].Value);
        Assert.Contains("not a valid Arrow IPC stream", dead["bad-bytes"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Contains("has 10 features; the model takes 784", dead["bad-width"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Contains("non-finite value (NaN) at feature 17", dead["bad-nan"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Contains("this model is an image classifier and takes features", dead["bad-tokens"].GetHeaderString(DeadLetterPublisher.ErrorMessageHeader), StringComparison.Ordinal);
        Assert.Equal(4, metrics.QueriesRejected);
    }

    [Fact]
    public async Task ScorerRestartedWithoutItsCommits_AttributesEveryQueryExactlyOnce()
    {
        await using var log = Pipeline.NewLog();
        const int first = 10, second = 10;
        // An idle group on the queries topic keeps the embedded log from dropping what scorer-a commits, so a Scorer
        // without those commits can re-read every query (Kafka retains by time; this is the embedded equivalent).
        using var keepQueries = log.CreateConsumer(new ConsumerSettings { Topics = [Topics.Queries], GroupId = "retain-queries" });
        using (var host = Pipeline.Build(log, s => AddAll(s, fixture.RunDir, o => o.GroupId = "scorer-a")))
        {
            await host.StartAsync();
            var producer = host.Services.GetRequiredService<IEventProducer>();
            for (int i = 0; i < first; i++)
            {
                await Pipeline.ProduceQueryAsync(log, producer, $"q-{i}", fixture.TestImage(i));
            }

            var metrics = host.Services.GetRequiredService<ScorerMetrics>();
            await Pipeline.Until(() => metrics.QueriesScored, c => c >= first, "first half attributed");
            // Stopped mid-stream: the second half arrives while no Scorer runs.
            await host.StopAsync();
            for (int i = first; i < first + second; i++)
            {
                await Pipeline.ProduceQueryAsync(log, producer, $"q-{i}", fixture.TestImage(i));
            }
        }

        // A Scorer in a fresh group has none of the first one's commits: it re-reads every query, as after a crash
        // between producing and committing. Only Scorer work is needed now (the probe set is on the log).
        using (var host = Pipeline.Build(log, s => s.AddScorer(o => { o.TopK = 5; o.GroupId = "scorer-b"; })))
        {
            await host.StartAsync();
            var metrics = host.Services.GetRequiredService<ScorerMetrics>();
            await Pipeline.Until(() => metrics.QueriesScored + metrics.DuplicatesSkipped, c => c >= first + second, "every query seen by the restarted Scorer");
            await host.StopAsync();
            Assert.Equal(first, metrics.DuplicatesSkipped);
            Assert.Equal(second, metrics.QueriesScored);
        }

        var ids = Pipeline.ReadAll(log, Topics.Attributions).Select(r => EventCodecs.Attributions.Decode(r.Value).QueryId).ToList();
        Assert.Equal(first + second, ids.Count);
        Assert.Equal(first + second, ids.Distinct().Count());

        var reader = new AttributionReader(log);
        using var cts = new CancellationTokenSource();
        var seen = new List<string>();
        await foreach (var r in reader.ReadAsync(cts.Token))
        {
            seen.Add(r.QueryId);
            if (seen.Count == first + second)
            {
                break;
            }
        }

        Assert.Equal(ids.Order(), seen.Order());
    }

    [Fact]
    public async Task SimulatorRestartedMidProbeSet_SkipsTheUnitsItAlreadyPublished()
    {
        await using var log = Pipeline.NewLog();
        long publishedBefore, chunks;
        using (var host = Pipeline.Build(log, s =>
        {
            s.AddIngest(o => { o.RunDirectory = fixture.RunDir; o.RunId = RunId; o.SourceCount = PipelineFixture.SourceCount; });
            s.AddSimulator(o => { Pipeline.FastSimulation(o); o.UnitsPerBlock = 10; o.Horizon = 40; });
        }))
        {
            var sim = host.Services.GetRequiredService<SimulatorWorker>();
            // Crash right after the first block is acknowledged: the worker stops without committing the checkpoint.
            sim.Progress += _ => throw new FatalEventException("simulated crash after the first acknowledged block");
            await host.StartAsync();
            await host.WaitForShutdownAsync().WaitAsync(TimeSpan.FromSeconds(60));
            publishedBefore = sim.ProbesPublished;
            Assert.Equal(10, publishedBefore);
            Assert.Equal(0, sim.ProbeSetsCompleted);
        }

        using (var host = Pipeline.Build(log, s => s.AddSimulator(o => { Pipeline.FastSimulation(o); o.UnitsPerBlock = 10; o.Horizon = 40; })))
        {
            await host.StartAsync();
            var sim = host.Services.GetRequiredService<SimulatorWorker>();
            var done = await sim.WhenProbeSetCompleteAsync(RunId, 4).WaitAsync(TimeSpan.FromSeconds(90));
            await host.StopAsync();
            Assert.Equal(publishedBefore, sim.ProbesSkipped);
            chunks = sim.ProbesPublished - (PipelineFixture.TrainCount - publishedBefore);
            Assert.Equal(PipelineFixture.TrainCount, done.ExampleProbes);
        }

        var probes = Pipeline.ReadAll(log, Topics.Probes);
        var keys = probes.Where(r => r.GetHeaderString(EventHeaders.EventType) == EventTypes.InfluenceProbe).Select(r => r.KeyString).Distinct().ToList();
        // Example probes and the shared chunks of the Ritz vectors (published once, after the examples): no source is simulated.
        Assert.Equal(PipelineFixture.TrainCount, keys.Count(k => k.Contains("/example/", StringComparison.Ordinal)));
        var shared = keys.Where(k => k.Contains("/shared/", StringComparison.Ordinal)).ToList();
        Assert.True(shared.Count > 0, "the exact spectral set's Ritz vectors travel as shared chunks");
        Assert.Equal(shared.Count, chunks);
        Assert.Equal(PipelineFixture.TrainCount + shared.Count, keys.Count);
        Assert.Equal(1, probes.Count(r => r.KeyString == InfluenceProbe.CheckpointKey(RunId, 4)));
    }

    [Fact]
    public async Task CheckpointWhoseFileNoLongerMatchesItsChecksum_IsDeadLetteredWithAClearError()
    {
        var dir = fixture.CopyRun("tampered");
        await using var log = Pipeline.NewLog();
        using (var ingest = Pipeline.Build(log, s => s.AddIngest(o => { o.RunDirectory = dir; o.RunId = "tampered"; })))
        {
            await ingest.StartAsync();
            await ingest.Services.GetRequiredService<IngestWorker>().FirstScanCompleted.WaitAsync(TimeSpan.FromSeconds(30));
            await ingest.StopAsync();
        }

        var path = Path.Combine(dir, RunDirectory.CheckpointFile);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[^1] ^= 0x5A;
        await File.WriteAllBytesAsync(path, bytes);

        using var host = Pipeline.Build(log, s => s.AddSimulator(o => Pipeline.FastSimulation(o)));
        await host.StartAsync();
        var sim = host.Services.GetRequiredService<SimulatorWorker>();
        await Pipeline.Until(() => sim.DeadLetteredCount, c => c >= 1, "the checkpoint dead-lettered");
        await host.StopAsync();
        var dead = Assert.Single(Pipeline.ReadAll(log, Topics.DeadLetter));
        Assert.Equal(Topics.Checkpoints, dead.GetHeaderString(DeadLetterPublisher.OriginalTopicHeader));
        var error = dead.GetHeaderString(DeadLetterPublisher.ErrorMessageHeader)!;
        Assert.Contains("has checksum sha256:", error, StringComparison.Ordinal);
        Assert.Contains("the file changed after it was published", error, StringComparison.Ordinal);
        Assert.Equal(0, sim.ProbesPublished);
        Assert.Equal(0, Pipeline.Count(log, Topics.Probes));
    }

    [Fact]
    public async Task IngestRestarted_DoesNotPublishTheSameCheckpointTwice()
    {
        await using var log = Pipeline.NewLog();
        for (int run = 0; run < 2; run++)
        {
            using var host = Pipeline.Build(log, s => s.AddIngest(o => { o.RunDirectory = fixture.RunDir; o.RunId = RunId; o.BatchChunk = 64; }));
            await host.StartAsync();
            var ingest = host.Services.GetRequiredService<IngestWorker>();
            await ingest.FirstScanCompleted.WaitAsync(TimeSpan.FromSeconds(30));
            await host.StopAsync();
            Assert.Equal(run == 0 ? 1 : 0, ingest.CheckpointsPublished);
            Assert.Equal(run == 0 ? 0 : 1, ingest.CheckpointsSkipped);
        }

        var checkpoint = EventCodecs.Checkpoints.Decode(Assert.Single(Pipeline.ReadAll(log, Topics.Checkpoints)).Value);
        Assert.Equal(4, checkpoint.Step);
        Assert.StartsWith("sha256:", checkpoint.Checksum, StringComparison.Ordinal);
        Assert.Equal(new MlpLayout([784, 16, 10]).ParameterCount, checkpoint.ParameterCount);
        // The event states the model and the recipe (from run.json): the Simulator needs nothing beside the checkpoint file.
        var recipe = fixture.Recipe;
        Assert.Equal(new CheckpointRecipe("mlp:784-16-10", recipe.Optimizer.LearningRate, recipe.Optimizer.WeightDecay, recipe.BatchSize, recipe.Seed, "fashion-mnist"), checkpoint.Recipe);
        var batches = Pipeline.ReadAll(log, Topics.Batches).Select(r => EventCodecs.TrainingBatches.Decode(r.Value)).ToList();
        Assert.Equal(4, batches.Count);
        Assert.All(batches, b => Assert.True(b.ExampleIds.Count <= 64));
        Assert.Equal(Enumerable.Range(0, PipelineFixture.TrainCount).Select(i => (long)i), batches.SelectMany(b => b.ExampleIds).Order());
        // Each batch carries its examples' inputs, normalised as the run trained on them.
        var first = batches[0];
        var inputs = BatchPayload.Decode(first.Payload, first.ExampleIds.Count);
        var expected = fixture.Data.Train.Select([.. first.ExampleIds.Select(i => (int)i)], recipe.Data.Normalization);
        Assert.Equal(expected.Inputs, inputs.Inputs);
        Assert.Equal(expected.Labels, inputs.Labels);
    }

    [Fact]
    public async Task TrainerLayout_PublishesEachCheckpointAfterItsBatches_AndFollowModePicksUpNewOnes()
    {
        var dir = Path.Combine(fixture.Root, "trainer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(dir, "checkpoints"));
        Directory.CreateDirectory(Path.Combine(dir, "batches"));
        File.Copy(Path.Combine(fixture.RunDir, RunDirectory.ManifestFile), Path.Combine(dir, RunDirectory.ManifestFile));
        void Write(int step, long[] ids, long[]? sources)
        {
            File.Copy(Path.Combine(fixture.RunDir, RunDirectory.CheckpointFile), Path.Combine(dir, "checkpoints", $"step-{step}.safetensors"));
            var json = sources is null ? $"{{\"exampleIds\": [{string.Join(",", ids)}]}}" : $"{{\"exampleIds\": [{string.Join(",", ids)}], \"sourceIds\": [{string.Join(",", sources)}]}}";
            File.WriteAllText(Path.Combine(dir, "batches", $"step-{step}.json"), json);
        }

        Write(2, [5, 6, 7], [1, 1, 2]);
        // A checkpoint whose manifest is not there yet is not ready: skipped until it appears.
        File.Copy(Path.Combine(fixture.RunDir, RunDirectory.CheckpointFile), Path.Combine(dir, "checkpoints", "step-3.safetensors"));
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s => s.AddIngest(o => { o.RunDirectory = dir; o.RunId = "trainer"; o.Mode = "follow"; o.PollSeconds = 0.05; o.SourceCount = 3; }));
        await host.StartAsync();
        var ingest = host.Services.GetRequiredService<IngestWorker>();
        await ingest.FirstScanCompleted.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, ingest.CheckpointsPublished);
        Write(4, [8, 9], null);
        await Pipeline.Until(() => ingest.CheckpointsPublished, c => c >= 2, "the new checkpoint published in follow mode");
        await host.StopAsync();

        var checkpoints = Pipeline.ReadAll(log, Topics.Checkpoints).Select(r => EventCodecs.Checkpoints.Decode(r.Value)).ToList();
        Assert.Equal([2L, 4], checkpoints.Select(c => c.Step));
        Assert.All(checkpoints, c => Assert.Equal(new Uri(Path.Combine(dir, "checkpoints", $"step-{c.Step}.safetensors")).AbsoluteUri, c.Uri));
        var batches = Pipeline.ReadAll(log, Topics.Batches).Select(r => EventCodecs.TrainingBatches.Decode(r.Value)).ToList();
        Assert.Equal([5L, 6, 7], batches.Single(b => b.Step == 2).ExampleIds);
        Assert.Equal([1L, 1, 2], batches.Single(b => b.Step == 2).SourceIds);
        Assert.Equal([RunScanner.SeededSource(8, 1, 3), RunScanner.SeededSource(9, 1, 3)], batches.Single(b => b.Step == 4).SourceIds);
    }

    private CheckpointRecipe Recipe => new("mlp:784-16-10", fixture.Recipe.Optimizer.LearningRate, fixture.Recipe.Optimizer.WeightDecay, fixture.Recipe.BatchSize, fixture.Recipe.Seed, "fashion-mnist");

    [Theory]
    [InlineData("no-recipe", "the event carries no architecture and recipe")]
    [InlineData("gpt", "does not hold a model of architecture gpt:vocab=65,context=64")]
    [InlineData("no-inputs", "40 of 40 examples (first: 0) have no inputs in a TrainingBatch payload on 'batches'")]
    [InlineData("wrong-architecture", "does not hold a model of architecture mlp:784-32-10")]
    public async Task CheckpointTheSimulatorCannotSimulate_IsDeadLetteredSayingWhatIsMissing(string variant, string expected)
    {
        // The Simulator learns everything from the checkpoint event and the batches: no run.json, no data set of its own.
        await using var log = Pipeline.NewLog();
        var (checksum, parameters) = RunScanner.Describe(Path.Combine(fixture.RunDir, RunDirectory.CheckpointFile));
        var ids = Enumerable.Range(0, 40).Select(i => (long)i).ToArray();
        var train = fixture.Data.Train.Select([.. Enumerable.Range(0, 40)], fixture.Recipe.Data.Normalization);
        var recipe = variant switch
        {
            "no-recipe" => null,
            "gpt" => Recipe with { Architecture = "gpt:vocab=65,context=64,d=64,heads=4,layers=2,mlp=4,tied=1", Dataset = "fortunes", Tokenizer = "bytes" },
            "wrong-architecture" => Recipe with { Architecture = "mlp:784-32-10" },
            _ => Recipe,
        };
        using var host = Pipeline.Build(log, s => s.AddSimulator(o => Pipeline.FastSimulation(o)));
        await host.StartAsync();
        var producer = host.Services.GetRequiredService<IEventProducer>();
        await producer.ProduceAsync(Topics.Batches, EventMessage.Create(variant, EventCodecs.TrainingBatches.Encode(new TrainingBatch(variant, 4, ids, [.. ids.Select(i => i % 2)],
            variant == "no-inputs" ? null : BatchPayload.Encode(train.Inputs, train.Labels, 784)))));
        await producer.ProduceAsync(Topics.Checkpoints, EventMessage.Create(variant, EventCodecs.Checkpoints.Encode(
            new CheckpointPublished(variant, 4, new Uri(Path.Combine(fixture.RunDir, RunDirectory.CheckpointFile)).AbsoluteUri, checksum, parameters, recipe))));
        var sim = host.Services.GetRequiredService<SimulatorWorker>();
        await Pipeline.Until(() => sim.DeadLetteredCount, c => c >= 1, "the checkpoint dead-lettered");
        await host.StopAsync();
        var dead = Assert.Single(Pipeline.ReadAll(log, Topics.DeadLetter));
        Assert.Equal(Topics.Checkpoints, dead.GetHeaderString(DeadLetterPublisher.OriginalTopicHeader));
        var error = dead.GetHeaderString(DeadLetterPublisher.ErrorMessageHeader)!;
        Assert.Contains($"checkpoint {variant} step 4: ", error, StringComparison.Ordinal);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.Equal(0, sim.ProbesPublished);
        Assert.Equal(0, Pipeline.Count(log, Topics.Probes));
    }

    // A run as './pipeline train --model gpt' writes it (untrained weights: the plumbing and the maths are under test,
    // not the model's quality); 12 documents of two sources listed interleaved, as training order may be.
    private async Task<(string Dir, GptConfig Config, Gpt Gpt, TextDocument[] Picked, long[] Train, GptRecipe Recipe)> WriteGptRun()
    {
        var dir = Path.Combine(fixture.Root, "gpt-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var config = new GptConfig(VocabSize: ByteTokenizer.Size, Context: 16, DModel: 8, Heads: 2, Layers: 1);
        var gpt = new Gpt(config, seed: 3);
        GptCheckpoint.Save(dir, gpt);
        var corpus = TextCorpus.Load("fortunes/tao,fortunes/pets");
        var picked = corpus.Documents.Where(d => d.SourceId == 0).Take(6).Zip(corpus.Documents.Where(d => d.SourceId == 1).Take(6)).SelectMany(p => new[] { p.First, p.Second }).ToArray();
        long[] train = [.. picked.Select(d => d.Id)];
        var recipe = new GptRecipe { Config = config, Corpus = corpus.Spec, Steps = 5 };
        await File.WriteAllTextAsync(Path.Combine(dir, RunDirectory.ManifestFile), System.Text.Json.JsonSerializer.Serialize(new
        {
            recipe,
            data = new { corpus = corpus.Spec, tokenizer = "bytes", trainDocumentIds = train },
            checkpoint = GptCheckpoint.WeightsFile,
        }, new System.Text.Json.JsonSerializerOptions { PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase }));
        return (dir, config, gpt, picked, train, recipe);
    }

    private static SimulatorOptions GptSimulation(SimulatorOptions o)
    {
        Pipeline.FastSimulation(o);
        o.Horizon = 3;
        o.BatchSize = 4;
        o.Rank = 2;
        o.UnitsPerBlock = 5;
        return o;
    }

    // compress = 0: the full forward-only readout; 4: Scorer:Compress, the readout over a basis of 4 directions fitted
    // from the set's 12 documents at load (below their rank, so the compressed scores differ from the full readout's).
    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public async Task LanguageModelRun_FlowsThroughIngestSimulatorAndScorer_AndATextQueryGetsWhatTheOfflineMethodGives(int compress)
    {
        var (dir, config, gpt, picked, train, recipe) = await WriteGptRun();
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s =>
        {
            s.AddIngest(o => { o.RunDirectory = dir; o.RunId = "lm"; });
            s.AddSimulator(o => GptSimulation(o));
            s.AddScorer(o => { o.RunId = "lm"; o.TopK = 5; o.Compress = compress; });
        });
        await host.StartAsync();
        var sim = host.Services.GetRequiredService<SimulatorWorker>();
        var scorer = host.Services.GetRequiredService<ScorerWorker>();
        var producer = host.Services.GetRequiredService<IEventProducer>();
        var served = await Pipeline.Until(() => scorer.Index.Scorer, x => x is not null, "the Scorer serving the GPT probe set", 120);
        var query = ModelQuery.FromText("lm-q1", "lm@5", "bytes", "The way", " is", DateTimeOffset.UtcNow);
        await producer.ProduceQueryAsync(query);
        // Poison: a prompt the context cannot hold, an unknown tokenizer.
        await producer.ProduceQueryAsync(ModelQuery.FromText("lm-long", "lm@5", "bytes", new string('x', 40), " y", DateTimeOffset.UtcNow));
        await producer.ProduceQueryAsync(ModelQuery.FromText("lm-tok", "lm@5", "llama3", "The way", " is", DateTimeOffset.UtcNow));
        await Pipeline.Until(() => Pipeline.Count(log, Topics.Attributions) + Pipeline.Count(log, Topics.DeadLetter), c => c >= 3, "one attribution and two dead letters", 60);
        await host.StopAsync();

        // Ingest: documents with their token ids and sources; Simulator: one probe per document (none per source), typed.
        var batch = EventCodecs.TrainingBatches.Decode(Assert.Single(Pipeline.ReadAll(log, Topics.Batches)).Value);
        Assert.Equal(train, batch.ExampleIds);
        Assert.Equal(ByteTokenizer.Instance.EncodeDocument(picked[5].Bytes), batch.Documents![5]);
        Assert.Equal(0, sim.DeadLetteredCount);
        var probes = Pipeline.ReadAll(log, Topics.Probes).Where(r => r.GetHeaderString(EventHeaders.EventType) == EventTypes.InfluenceProbe).Select(r => EventCodecs.Probes.Decode(r.Value)).ToList();
        Assert.Equal(12, probes.Count);
        Assert.All(probes, p => Assert.Equal((ProbeSubject.Example, 12L, 0L), (p.Subject, p.SetExamples, p.SetSources)));
        Assert.All(probes, p => Assert.StartsWith("gpt:vocab=259,context=16,d=8", p.Architecture, StringComparison.Ordinal));
        Assert.Contains(probes[0].Tensors, t => t.Name.Contains("attn", StringComparison.Ordinal) && t.Rank == 2);
        Assert.Equal("lm@5", served!.Version);
        Assert.Equal("forward-only", served.Method);

        // The reference: the offline method (what 'attribute' and 'eval' run) on the same run, documents in training order.
        var theta = new float[new GptModel(gpt).ParameterCount];
        new GptModel(gpt).CopyTo(theta);
        var problem = AttributionProblem.ForGpt(config, theta, [.. picked.Select(d => ByteTokenizer.Instance.EncodeDocument(d.Bytes))], [.. picked.Select(d => d.SourceId)], 2, (float)recipe.WeightDecay);
        var forward = new ForwardOnlyMethod(GptSimulation(new SimulatorOptions()).ToForwardOnly());
        IProbeSetMethod method = compress > 0 ? new CompressedReadoutMethod(forward, compress) : forward;
        method.Precompute(problem);
        var completion = QueryValidator.ValidateText(query, ByteTokenizer.Instance, config.VocabSize, config.Context);
        var batchOfOne = QueryBatch.Completions([completion], config.Context);
        var (expected, expectedSources) = (method.Score(batchOfOne), method.ScoreSources(batchOfOne));
        if (compress > 0)
        {
            // The compressed readout is its own method (a rank-4 basis of 12 responses), not the full readout.
            var full = forward.Score(batchOfOne).Scores;
            Assert.True(full.Zip(expected.Scores).Max(p => Math.Abs(p.First - p.Second)) > 1e-3 * full.Max(v => Math.Abs(v)));
            Assert.Contains("compress=4 (fitted basis, rank 4", Assert.IsType<LanguageModelScorer>(served).MethodDescription, StringComparison.Ordinal);
        }

        var result = EventCodecs.Attributions.Decode(Assert.Single(Pipeline.ReadAll(log, Topics.Attributions)).Value);
        Assert.Equal(CompletionQuery.OutputFunction, result.OutputFunction);
        var top = ScoreMatrix.TopK(expected.Row(0), 5);
        double scale = expected.Scores.Max(v => Math.Abs(v));
        Assert.True(scale > 0);
        Assert.Equal(top.Select(t => train[t.Example]), result.ExampleIds);
        for (int i = 0; i < top.Length; i++)
        {
            Assert.Equal(top[i].Score, result.Scores[i], 1e-4 * scale);
            Assert.Equal(picked[top[i].Example].SourceId, result.ExampleSourceIds![i]);
        }

        Assert.Equal([0L, 1], result.SourceIds);
        Assert.Equal(["fortunes/pets", "fortunes/tao"], result.SourceNames);
        double sourceScale = expectedSources.Max(v => Math.Abs(v));
        Assert.True(sourceScale > 0);
        Assert.Equal(expectedSources[0], result.SourceScores[0], 1e-4 * sourceScale);
        Assert.Equal(expectedSources[1], result.SourceScores[1], 1e-4 * sourceScale);

        var dead = Pipeline.ReadAll(log, Topics.DeadLetter).ToDictionary(r => r.KeyString, r => r.GetHeaderString(DeadLetterPublisher.ErrorMessageHeader)!);
        Assert.Contains("do not fit this model's context of 16 tokens", dead["lm-long"], StringComparison.Ordinal);
        Assert.Contains("unknown tokenizer 'llama3'", dead["lm-tok"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task ScorerCompressingToMoreDirectionsThanTheSetHasDocuments_RejectsTheSetSayingHowManyItHas()
    {
        var (dir, _, _, _, _, _) = await WriteGptRun();
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s =>
        {
            s.AddIngest(o => { o.RunDirectory = dir; o.RunId = "lm"; });
            s.AddSimulator(o => GptSimulation(o));
            s.AddScorer(o => { o.RunId = "lm"; o.Compress = 13; });
        });
        await host.StartAsync();
        var scorer = host.Services.GetRequiredService<ScorerWorker>();
        var error = await Pipeline.Until(() => scorer.Index.LastError, e => e is not null, "the Scorer rejecting the set", 120);
        await host.StopAsync();
        Assert.Contains("probe set lm@5: compress=13 asks for more basis directions than the probe set's 12 documents; use compress <= 12", error, StringComparison.Ordinal);
        Assert.Null(scorer.Index.Scorer);
    }

    [Fact]
    public async Task BatchesCarryingTheirInputs_AreSimulatedFromThePayload_NotFromTheDataset()
    {
        // Example ids far outside FashionMNIST: only the payload can supply their inputs.
        var ids = Enumerable.Range(0, 40).Select(i => 50_000_000L + i).ToArray();
        var train = fixture.Data.Train.Select([.. Enumerable.Range(0, 40)], fixture.Recipe.Data.Normalization);
        var payload = BatchPayload.Encode(train.Inputs, train.Labels, 784);
        var decoded = BatchPayload.Decode(payload, 40);
        Assert.Equal(784, decoded.Features);
        Assert.Equal(train.Inputs, decoded.Inputs);
        Assert.Equal(train.Labels, decoded.Labels);
        Assert.Contains("need", Assert.Throws<InvalidDataException>(() => BatchPayload.Decode(payload[..^1], 40)).Message, StringComparison.Ordinal);

        await using var log = Pipeline.NewLog();
        var (checksum, parameters) = RunScanner.Describe(Path.Combine(fixture.RunDir, RunDirectory.CheckpointFile));
        using var host = Pipeline.Build(log, s =>
        {
            s.AddSimulator(o => Pipeline.FastSimulation(o));
            s.AddScorer(o => o.RunId = "payload");
        });
        await host.StartAsync();
        var producer = host.Services.GetRequiredService<IEventProducer>();
        await producer.ProduceAsync(Topics.Batches, EventMessage.Create("payload", EventCodecs.TrainingBatches.Encode(new TrainingBatch("payload", 4, ids, [.. ids.Select(i => i % 2)], payload))));
        await producer.ProduceAsync(Topics.Checkpoints, EventMessage.Create("payload", EventCodecs.Checkpoints.Encode(
            new CheckpointPublished("payload", 4, new Uri(Path.Combine(fixture.RunDir, RunDirectory.CheckpointFile)).AbsoluteUri, checksum, parameters, Recipe))));
        var sim = host.Services.GetRequiredService<SimulatorWorker>();
        var done = await sim.WhenProbeSetCompleteAsync("payload", 4).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(40, done.ExampleProbes);
        await Pipeline.ProduceQueryAsync(log, producer, "p-0", fixture.TestImage(0));
        var metrics = host.Services.GetRequiredService<ScorerMetrics>();
        await Pipeline.Until(() => metrics.QueriesScored, c => c >= 1, "the query attributed");
        await host.StopAsync();
        var result = EventCodecs.Attributions.Decode(Assert.Single(Pipeline.ReadAll(log, Topics.Attributions)).Value);
        Assert.Equal("payload@4", result.ModelVersion);
        Assert.All(result.ExampleIds, id => Assert.Contains(id, ids));
        Assert.Equal([0L, 1], result.SourceIds);
    }

    [Fact]
    public async Task InvalidOptions_StopStartUpWithAMessageNamingTheSetting()
    {
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s =>
        {
            s.AddIngest(o => o.RunDirectory = "/nonexistent/run");
            s.AddScorer(o => o.AlertThreshold = 2);
        });
        var error = await Assert.ThrowsAnyAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("Ingest:RunDirectory '/nonexistent/run' does not exist", error.Message + string.Join(" ", error.Failures), StringComparison.Ordinal);
    }

    [Fact]
    public async Task FlaggedSourceCarryingMostOfTheMass_RaisesAnAlertOnTheInMemoryBus()
    {
        // Source 0 holds 180 of the 200 examples, so it carries most of the positive attribution mass.
        var dir = fixture.CopyRun("flagged");
        var map = string.Join(",", Enumerable.Range(0, PipelineFixture.TrainCount).Select(i => $"\"{i}\": {(i < 180 ? 0 : 1 + i % 3)}"));
        await File.WriteAllTextAsync(Path.Combine(dir, RunScanner.SourcesFileName), $"{{\"sources\": [{{\"id\": 0, \"name\": \"scraped\", \"flagged\": true}}], \"exampleSources\": {{{map}}}}}");
        AlertSink.Received.Clear();
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s =>
        {
            s.AddIngest(o => { o.RunDirectory = dir; o.RunId = "flagged"; });
            s.AddSimulator(o => Pipeline.FastSimulation(o));
            s.AddScorer(o => { o.FlaggedSources = [0]; o.AlertThreshold = 0.5; });
        }, alerts: true);
        await host.StartAsync();
        var producer = host.Services.GetRequiredService<IEventProducer>();
        for (int i = 0; i < 5; i++)
        {
            await Pipeline.ProduceQueryAsync(log, producer, $"a-{i}", fixture.TestImage(i));
        }

        var metrics = host.Services.GetRequiredService<ScorerMetrics>();
        await Pipeline.Until(() => metrics.QueriesScored, c => c >= 5, "5 attributions");
        Assert.True(metrics.AlertsRaised >= 1, $"no alert raised for 5 queries where source 0 holds 90% of the data (alerts {metrics.AlertsRaised})");
        await Pipeline.Until(() => AlertSink.Received.Count, c => c >= metrics.AlertsRaised, "alerts delivered to the consumer");
        await host.StopAsync();
        Assert.All(AlertSink.Received, a =>
        {
            Assert.Equal(AlertRule.SourceShare, a.Rule);
            Assert.Contains(0L, a.FlaggedSourceIds);
            Assert.InRange(a.Score, 0.5, 1.0);
            Assert.Equal("flagged@4", a.ModelVersion);
        });
    }
}
