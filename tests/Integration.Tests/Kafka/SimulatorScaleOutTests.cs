using Attribution.Attribution;
using Attribution.Attribution.Kernels;
using Attribution.Attribution.Methods;
using Attribution.Contracts;
using Attribution.Engine.Training;
using Attribution.Ingest;
using Attribution.Scorer;
using Attribution.Simulator;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Attribution.Integration.Tests.Kafka;

/// <summary>
/// Simulator scale-out (issue 10 item 6): one checkpoint's probe set shared by two Simulator instances over the mock
/// Kafka cluster. Together they publish the whole set, no unit is simulated (published) twice, the one record both
/// write (the checkpoint reference) is the same key with the same bytes, and the Scorer's index goes live on the set.
/// </summary>
[Collection(KafkaPipelineCollection.Name)]
public sealed class SimulatorScaleOutTests(KafkaPipelineFixture kafka, ITestOutputHelper output)
{
    [Fact]
    public async Task Two_simulators_publish_one_checkpoints_probe_set_together_with_no_unit_twice_and_the_scorer_sees_it_complete()
    {
        var runId = $"scaleout-{Guid.NewGuid().ToString("N")[..8]}";
        // A run of its own, small (40 examples): its probes share the collection's probes topic, and librdkafka's mock
        // keeps at most 5 MB per partition (dropping the oldest records), so the collection's probe set must not be
        // pushed off it. Same probe format as the collection's Simulator, so these Simulators (which see every
        // checkpoint) find the collection's set done and leave it alone.
        const int examples = 40, sources = KafkaPipelineFixture.SourceCount;
        var recipe = TrainingRecipe.DefaultMlp([.. Enumerable.Range(0, examples)], [.. Enumerable.Range(0, 10)], epochs: 1, seed: 5) with
        {
            Model = new ModelSpec { Widths = [784, 16, 10] },
            BatchSize = 20,
        };
        var trained = MlpTrainer.Train(recipe, kafka.Data);
        var runDir = Path.Combine(kafka.Root, runId);
        RunDirectory.Save(runDir, new RunManifest { Recipe = recipe, Metrics = trained.Metrics, CreatedUtc = "2026-01-01T00:00:00Z" }, trained.Model.Parameters);
        long step = recipe.TotalSteps;
        var group = $"simulator-{runId}";
        void Simulator(IServiceCollection s, int instance) => s.AddSimulator(o =>
        {
            o.Horizon = 8;
            o.Epsilon = 1e-3f;
            o.StepSize = 0.05f;
            o.BatchSize = 50;
            o.Rank = 16;
            o.Precision = "f32";
            o.UnitsPerBlock = 25;
            o.ProbePartitions = KafkaPipelineFixture.Partitions;
            o.GroupId = group;
            o.Instances = 2;
            o.Instance = instance;
        });

        using var first = kafka.BuildHost(s =>
        {
            s.AddIngest(o =>
            {
                o.RunDirectory = runDir;
                o.RunId = runId;
                o.SourceCount = KafkaPipelineFixture.SourceCount;
                o.Partitions = KafkaPipelineFixture.Partitions;
            });
            Simulator(s, 0);
        });
        using var second = kafka.BuildHost(s => Simulator(s, 1));
        await Task.WhenAll(first.StartAsync(), second.StartAsync());
        var shares = await Task.WhenAll(
            first.Services.GetRequiredService<SimulatorWorker>().WhenProbeSetCompleteAsync(runId, step).WaitAsync(TimeSpan.FromSeconds(240)),
            second.Services.GetRequiredService<SimulatorWorker>().WhenProbeSetCompleteAsync(runId, step).WaitAsync(TimeSpan.FromSeconds(240)));
        await Task.WhenAll(first.StopAsync(), second.StopAsync());

        var probes = kafka.ReadAll(Topics.Probes).Where(r => r.KeyString.StartsWith(runId + "/", StringComparison.Ordinal)).ToList();
        var units = probes.Where(r => !r.KeyString.EndsWith("/checkpoint", StringComparison.Ordinal)).ToList();
        var twice = units.GroupBy(r => r.KeyString).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(twice.Count == 0, $"units published more than once: {string.Join(", ", twice)}");
        // Spectral forward-only (the MLP default) travels exactly: every example's factors and Ritz coefficients, plus the
        // Ritz vectors once, in shared chunks that instance 0 publishes; every probe carries the chunk count.
        var decoded = units.Select(r => EventCodecs.Probes.Decode(r.Value)).ToList();
        int chunks = (int)decoded[0].SetShared;
        Assert.True(chunks > 0, "the exact spectral set carries its Ritz vectors as shared chunks");
        Assert.All(decoded, p => Assert.Equal(chunks, p.SetShared));
        Assert.All(decoded.Where(p => p.Subject == ProbeSubject.Example), p => Assert.Equal(ResponseSet.DirectionsTensor, p.Tensors[^1].Name));
        Assert.Equal(
            Enumerable.Range(0, examples).Select(i => InfluenceProbe.KeyOf(runId, step, ProbeSubject.Example, i))
                .Concat(Enumerable.Range(0, chunks).Select(c => InfluenceProbe.KeyOf(runId, step, ProbeSubject.Shared, c))).Order(StringComparer.Ordinal),
            units.Select(r => r.KeyString).Order(StringComparer.Ordinal));
        // Each instance published exactly its share (instance 0 also the shared chunks), and the shares split the set.
        Assert.Equal(examples + chunks, shares.Sum(s => s.PublishedNow));
        foreach (var (share, instance) in shares.Select((s, i) => (s, i)))
        {
            long owned = Enumerable.Range(0, examples).Count(i => UnitPartition.Owner(ProbeSubject.Example, i, 2) == instance);
            Assert.InRange(owned, 1, examples - 1);
            Assert.Equal(owned + (instance == 0 ? chunks : 0), share.PublishedNow);
        }

        // The last to finish saw the whole set on the topic.
        Assert.Contains(shares, s => s.SetComplete);
        // Both wrote the checkpoint reference: same key, same bytes (harmless on the compacted topic).
        var references = probes.Where(r => r.KeyString == InfluenceProbe.CheckpointKey(runId, step)).ToList();
        Assert.Equal(2, references.Count);
        Assert.Equal(references[0].Value, references[1].Value);

        // The Scorer knows the shared set is complete: its index goes live on all of it.
        using var scorer = kafka.BuildScorer($"scorer-{runId}", o => o.RunId = runId);
        await scorer.StartAsync();
        var worker = scorer.Services.GetRequiredService<ScorerWorker>();
        var model = await KafkaPipelineFixture.Until(() => worker.Index.Current, m => m is not null, "the Scorer's index on the shared set", 60);
        Assert.Equal($"{runId}@{step}", model!.Version);
        Assert.Equal(examples, model.ExampleIds.Length);
        Assert.Equal(sources, model.SourceIds.Length);
        await scorer.StopAsync();

        // Served = computed in one process: instance 1's coefficients are on instance 0's Ritz vectors, so the operator
        // both fitted must be the same; the example scores of a few queries match forward-only precomputed directly.
        var ids = Enumerable.Range(0, examples).ToArray();
        var train = kafka.Data.Train.Select(ids, recipe.Data.Normalization);
        var sourceOf = ids.Select(i => (int)RunScanner.SeededSource(i, 1, sources)).ToArray();
        var problem = new AttributionProblem(trained.Model.Layout, trained.Model.ToFlat(), train.Inputs, train.Labels, sourceOf, sources, recipe.Optimizer.WeightDecay);
        var method = new ForwardOnlyMethod(new SimulatorOptions { Horizon = 8, Epsilon = 1e-3f, StepSize = 0.05f, BatchSize = 50, Rank = 16, UnitsPerBlock = 25 }.ToForwardOnly());
        method.Precompute(problem);
        for (int q = 0; q < 3; q++)
        {
            var x = kafka.TestImage(q);
            var served = model.Score(x, 1);
            var direct = method.Score(new QueryBatch(x, served.Predicted, 784));
            for (int i = 0; i < examples; i++)
            {
                Assert.Equal(direct.Scores[i], served.ExampleScores[i], 1e-4f * Math.Max(1f, Math.Abs(direct.Scores[i])));
            }
        }

        output.WriteLine($"instance 0 published {shares[0].PublishedNow}, instance 1 {shares[1].PublishedNow} of {examples} units; complete seen by {string.Join(", ", shares.Select((s, i) => s.SetComplete ? $"instance {i}" : null).Where(x => x is not null))}");
    }
}
