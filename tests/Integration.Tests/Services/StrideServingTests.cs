using Attribution.Attribution;
using Attribution.Attribution.Stride;
using Attribution.Contracts;
using Attribution.Engine.Training;
using Attribution.Ingest;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Microsoft.Extensions.DependencyInjection;

namespace Attribution.Integration.Tests.Services;

/// <summary>
/// STRIDE served through the pipeline: the Simulator trains the operators on the checkpoint and publishes their state
/// (subset ids per example, the shared operator tensors in several chunks), the Scorer imports it and attributes live
/// queries with the same method object <c>attribute</c> and <c>eval</c> use.
/// </summary>
public sealed class StrideServingTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private const string RunId = "stride-run";
    private const string Spec = "stride:k=40,d=4,rank=4,steps=30";

    [Fact]
    public async Task StrideProbeSet_IsPublishedInChunks_AndTheScorersScoresEqualTheOfflineMethods()
    {
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s =>
        {
            s.AddIngest(o =>
            {
                o.RunDirectory = fixture.RunDir;
                o.RunId = RunId;
                o.SourceCount = PipelineFixture.SourceCount;
            });
            s.AddSimulator(o =>
            {
                Pipeline.FastSimulation(o);
                o.Method = Spec;
                o.SharedChunkFloats = 1024; // the operators' 4 x 400 matrices then span two chunks
            });
            s.AddScorer(o =>
            {
                o.RunId = RunId;
                o.TopK = 5;
                o.Method = Spec;
            });
        });
        await host.StartAsync();
        var producer = host.Services.GetRequiredService<IEventProducer>();
        var scorer = host.Services.GetRequiredService<ScorerWorker>();
        var served = await Pipeline.Until(() => scorer.Index.Scorer, x => x is not null, "the Scorer serving the STRIDE probe set", 120);
        const int n = 6;
        for (int i = 0; i < n; i++)
        {
            await Pipeline.ProduceQueryAsync(log, producer, $"q-{i}", fixture.TestImage(i));
        }

        var metrics = host.Services.GetRequiredService<ScorerMetrics>();
        await Pipeline.Until(() => metrics.QueriesScored, c => c >= n, "6 attributions");
        await host.StopAsync();

        // The wire: one probe per example (its d = 4 subset ids), one empty probe per source, the shared tensors in chunks.
        var probes = Pipeline.ReadAll(log, Topics.Probes).Where(r => r.GetHeaderString(EventHeaders.EventType) == EventTypes.InfluenceProbe).Select(r => EventCodecs.Probes.Decode(r.Value)).ToList();
        Assert.Equal(PipelineFixture.TrainCount, probes.Count(p => p.Subject == ProbeSubject.Example));
        Assert.Equal(PipelineFixture.SourceCount, probes.Count(p => p.Subject == ProbeSubject.Source));
        var chunks = probes.Where(p => p.Subject == ProbeSubject.Shared).OrderBy(p => p.SubjectId).ToList();
        Assert.True(chunks.Count >= 2, $"{chunks.Count} shared chunks");
        Assert.All(probes, p => Assert.Equal(chunks.Count, p.SetShared));
        Assert.All(chunks, c => Assert.True(c.Factors.Length <= 1024));
        Assert.All(probes.Where(p => p.Subject == ProbeSubject.Example), p => Assert.Equal("stride.subsets", Assert.Single(p.Tensors).Name));
        Assert.Equal("stride", served!.Method);
        Assert.Equal($"{RunId}@4", served.Version);

        // The reference: the offline method (what 'attribute' and 'eval' run) on the same problem.
        var ids = Enumerable.Range(0, PipelineFixture.TrainCount).ToArray();
        var (_, model) = RunDirectory.LoadMlp(fixture.RunDir);
        var train = fixture.Data.Train.Select(ids, fixture.Recipe.Data.Normalization);
        var sourceOf = ids.Select(i => (int)RunScanner.SeededSource(i, 1, PipelineFixture.SourceCount)).ToArray();
        var problem = new AttributionProblem(model.Layout, model.ToFlat(), train.Inputs, train.Labels, sourceOf, PipelineFixture.SourceCount, fixture.Recipe.Optimizer.WeightDecay);
        var (name, options) = MethodFactory.ParseSpec(Spec);
        var method = (StrideMethod)MethodFactory.Create(name, options);
        method.Precompute(problem);

        var results = Pipeline.ReadAll(log, Topics.Attributions).Select(r => EventCodecs.Attributions.Decode(r.Value)).ToList();
        Assert.Equal(n, results.Count);
        foreach (var result in results)
        {
            int q = int.Parse(result.QueryId[2..], System.Globalization.CultureInfo.InvariantCulture);
            var x = fixture.TestImage(q);
            var logits = new float[10];
            model.Logits(x, 1, logits);
            int predicted = Array.IndexOf(logits, logits.Max());
            var direct = method.Score(new QueryBatch(x, [predicted], 784));
            var row = direct.Row(0).ToArray();
            // The operators are trained again here (threads sum the gradients in any order): equal up to float rounding.
            double scale = row.Max(v => Math.Abs(v));
            Assert.True(scale > 0, "the offline scores are all zero");
            double tolerance = 1e-3 * scale;
            var top = direct.TopK(0, 5);
            Assert.Equal(5, result.ExampleIds.Count);
            for (int k = 0; k < 5; k++)
            {
                Assert.Equal(row[(int)result.ExampleIds[k]], result.Scores[k], tolerance);
                Assert.Equal(top[k].Score, result.Scores[k], tolerance);
            }

            Assert.Equal([0L, 1, 2, 3], result.SourceIds);
            for (int s = 0; s < PipelineFixture.SourceCount; s++)
            {
                Assert.Equal(direct.SourceScores[s], result.SourceScores[s], tolerance * 10);
            }
        }
    }

    [Fact]
    public async Task ScorerServingAnotherMethodThanTheSimulatorPublishes_RejectsTheSetSayingWhichToServe()
    {
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s =>
        {
            s.AddIngest(o =>
            {
                o.RunDirectory = fixture.RunDir;
                o.RunId = RunId;
                o.SourceCount = PipelineFixture.SourceCount;
            });
            s.AddSimulator(o =>
            {
                Pipeline.FastSimulation(o);
                o.Method = Spec;
            });
            s.AddScorer(o => o.RunId = RunId);
        });
        await host.StartAsync();
        var scorer = host.Services.GetRequiredService<ScorerWorker>();
        var error = await Pipeline.Until(() => scorer.Index.LastError, e => e is not null, "the Scorer rejecting the STRIDE set", 120);
        await host.StopAsync();
        Assert.Contains("Scorer:Method is 'forward-only'", error, StringComparison.Ordinal);
        Assert.Null(scorer.Index.Scorer);
    }
}
