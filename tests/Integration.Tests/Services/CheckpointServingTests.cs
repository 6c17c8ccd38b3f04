using System.Globalization;
using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Contracts;
using Attribution.Engine.Models;
using Attribution.Engine.Training;
using Attribution.Ingest;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Microsoft.Extensions.DependencyInjection;

namespace Attribution.Integration.Tests.Services;

/// <summary>
/// Scorer:Checkpoints = J: a run whose trainer published several checkpoints is served as forward-only averaged over J
/// of them, each set read out at its own checkpoint, and the scores equal <c>forward-only:checkpoints=J</c> offline
/// (EnsembleMethod over the run's training checkpoints) on the same run.
/// </summary>
public sealed class CheckpointServingTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private const string RunId = "ck-run";

    // 3 checkpoints in a trainer's layout, J = 3: all three averaged. 5 checkpoints saved by train --save-every 1 in our
    // layout (Ingest:TrainingCheckpoints), J = 2: the spread picks the 3rd and 5th, and the 3rd, dropped when the 4th
    // arrived (the spread then named the 2nd and 4th), is read again from the probes topic.
    [Theory]
    [InlineData(3, 3, new[] { 0, 1, 2 }, true)]
    [InlineData(5, 2, new[] { 2, 4 }, false)]
    public async Task ScorerAveragingJCheckpoints_ServesTheScoresForwardOnlyCheckpointsJComputesOffline(int epochs, int j, int[] expectedMembers, bool trainerLayout)
    {
        // A trainer's layout: one checkpoint per epoch (checkpoints/step-N.safetensors) and its batches (batches/step-N.json);
        // ours: run.json listing the checkpoints saved along training (training-checkpoints/epoch-N.safetensors) + model.safetensors.
        var dir = Path.Combine(fixture.Root, $"ck-{epochs}-{Guid.NewGuid():N}");
        var ids = Enumerable.Range(0, PipelineFixture.TrainCount).ToArray();
        var recipe = TrainingRecipe.DefaultMlp(ids, [.. Enumerable.Range(0, 50)], epochs: epochs, seed: 3) with
        {
            Model = new ModelSpec { Widths = [784, 16, 10] },
            BatchSize = 50,
        };
        var thetas = new List<float[]>();
        var steps = new List<long>();
        var saved = new List<TrainingCheckpoint>();
        if (trainerLayout)
        {
            Directory.CreateDirectory(Path.Combine(dir, "checkpoints"));
            Directory.CreateDirectory(Path.Combine(dir, "batches"));
        }

        var result = MlpTrainer.Train(recipe, fixture.Data, checkpoints: new CheckpointRequest(1, (epoch, step, model) =>
        {
            saved.Add(RunDirectory.SaveTrainingCheckpoint(dir, epoch, step, model.Parameters));
            if (trainerLayout)
            {
                File.Copy(Path.Combine(dir, saved[^1].File), Path.Combine(dir, "checkpoints", $"step-{step}.safetensors"));
                File.WriteAllText(Path.Combine(dir, "batches", $"step-{step}.json"), $"{{\"exampleIds\": [{string.Join(",", ids)}]}}");
            }

            thetas.Add(model.ToFlat());
            steps.Add(step);
        }));
        RunDirectory.Save(dir, new RunManifest { Recipe = recipe, Metrics = result.Metrics, CreatedUtc = "2026-01-01T00:00:00Z", TrainingCheckpoints = saved }, result.Model.Parameters);
        if (trainerLayout)
        {
            File.Delete(Path.Combine(dir, RunDirectory.CheckpointFile));
        }

        Assert.Equal(epochs, thetas.Count);

        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s =>
        {
            s.AddIngest(o =>
            {
                o.RunDirectory = dir;
                o.RunId = RunId;
                o.SourceCount = PipelineFixture.SourceCount;
                o.TrainingCheckpoints = !trainerLayout;
            });
            s.AddSimulator(o => Pipeline.FastSimulation(o));
            s.AddScorer(o =>
            {
                o.TopK = 5;
                o.Checkpoints = j;
            });
        });
        await host.StartAsync();
        var index = host.Services.GetRequiredService<ScorerWorker>().Index;
        await Pipeline.Until(() => host.Services.GetRequiredService<IngestWorker>().CheckpointsPublished, c => c >= epochs, $"{epochs} checkpoints published", 60);
        var served = await Pipeline.Until(() => index.Scorer as CheckpointEnsembleScorer, e => e is not null && e.Version == $"{RunId}@{steps[^1]}", "the newest checkpoint's set live", 120);
        Assert.Equal(expectedMembers.Select(m => steps[m]), served!.Members.Select(m => m.Step));
        Assert.Equal(j, served.Wanted);

        var producer = host.Services.GetRequiredService<IEventProducer>();
        const int n = 6;
        for (int i = 0; i < n; i++)
        {
            await Pipeline.ProduceQueryAsync(log, producer, $"q-{i}", fixture.TestImage(i));
        }

        var metrics = host.Services.GetRequiredService<ScorerMetrics>();
        Assert.Equal(expectedMembers.Length, metrics.CheckpointsServed);
        await Pipeline.Until(() => metrics.QueriesScored, c => c >= n, $"{n} attributions");
        await host.StopAsync();
        var results = Pipeline.ReadAll(log, Topics.Attributions).Select(r => EventCodecs.Attributions.Decode(r.Value)).ToList();
        Assert.Equal(n, results.Count);
        Assert.All(results, r => Assert.Equal($"{RunId}@{steps[^1]}", r.ModelVersion));
        Assert.All(results, r => Assert.Equal($"forward-only:checkpoints={j}", r.Method));

        // forward-only:checkpoints=J offline on the same run: its training checkpoints, the last being the model.
        var model = new Mlp(recipe.Model.Widths, 0);
        model.LoadFrom(thetas[^1]);
        var train = fixture.Data.Train.Select(ids, recipe.Data.Normalization);
        var sourceOf = ids.Select(i => (int)RunScanner.SeededSource(i, 1, PipelineFixture.SourceCount)).ToArray();
        var problem = new AttributionProblem(model.Layout, thetas[^1], train.Inputs, train.Labels, sourceOf, PipelineFixture.SourceCount, recipe.Optimizer.WeightDecay)
        {
            TrainingCheckpoints = [thetas],
        };
        var options = Pipeline.FastSimulation(new SimulatorOptions()).ToForwardOnly();
        var method = new EnsembleMethod(j, () => new ForwardOnlyMethod(options), EnsembleMembers.TrainingCheckpoints);
        method.Precompute(problem);
        foreach (var r in results)
        {
            int q = int.Parse(r.QueryId[2..], CultureInfo.InvariantCulture);
            var x = fixture.TestImage(q);
            var logits = new float[10];
            model.Logits(x, 1, logits);
            var direct = method.Score(new QueryBatch(x, [Array.IndexOf(logits, logits.Max())], 784));
            var top = direct.TopK(0, 5);
            Assert.Equal(top.Select(t => (long)t.Example), r.ExampleIds);
            for (int k = 0; k < 5; k++)
            {
                Assert.Equal(top[k].Score, r.Scores[k], 1e-4f * Math.Max(1f, Math.Abs(top[k].Score)));
            }

            for (int s = 0; s < PipelineFixture.SourceCount; s++)
            {
                float magnitude = ids.Where(i => sourceOf[i] == s).Sum(i => Math.Abs(direct.Scores[i]));
                Assert.Equal(direct.SourceScores[s], r.SourceScores[s], 1e-4f * Math.Max(1f, magnitude));
            }
        }
    }

    [Fact]
    public void CheckpointsOption_IsValidatedAtStartUp_WithAMessageNamingTheSetting()
    {
        Assert.Null(new ScorerOptions().Validate());
        Assert.Null(new ScorerOptions { Checkpoints = 10 }.Validate());
        Assert.Contains("Scorer:Checkpoints must be 1..64", new ScorerOptions { Checkpoints = 0 }.Validate(), StringComparison.Ordinal);
        Assert.Contains("Scorer:Checkpoints must be 1..64", new ScorerOptions { Checkpoints = 65 }.Validate(), StringComparison.Ordinal);
        Assert.Contains("Scorer:Method is 'stride': set Checkpoints to 1", new ScorerOptions { Checkpoints = 3, Method = "stride" }.Validate(), StringComparison.Ordinal);
        Assert.Contains("set Compress to 0 and Normalize to none", new ScorerOptions { Checkpoints = 3, Compress = 8 }.Validate(), StringComparison.Ordinal);
        Assert.Contains("checkpoints=J is served with Scorer:Checkpoints = J", new ScorerOptions { Method = "forward-only:checkpoints=3" }.Validate(), StringComparison.Ordinal);
    }
}
