using Attribution.Contracts;
using Attribution.Ingest;
using Attribution.Scorer;
using Attribution.Simulator;
using Attribution.Transport;
using Microsoft.Extensions.DependencyInjection;

namespace Attribution.Integration.Tests.Services;

/// <summary>
/// The image path's flagged items from configuration, end to end: Ingest publishes the run's batches, the Simulator its
/// probes, and the Scorer, configured with <c>Scorer:FlaggedExamples</c> only, reads the flagged images from the batches,
/// measures their self-influence with the live readout and alerts on a served copy of a flagged training image.
/// </summary>
public sealed class FlaggedImageAlertTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    [Fact]
    public async Task A_served_copy_of_a_configured_flagged_training_image_alerts_on_its_self_influence_match()
    {
        var dir = fixture.CopyRun("flagged-items");
        await using var log = Pipeline.NewLog();
        using var host = Pipeline.Build(log, s =>
        {
            s.AddIngest(o => { o.RunDirectory = dir; o.RunId = "flagged-items"; });
            s.AddSimulator(o => Pipeline.FastSimulation(o));
            // Self-influence evidence only: logistic(40 · self_match − 30) > 0.5 when the match is above 0.75 (the ratio within 3·10⁻⁵ of 1).
            s.AddScorer(o =>
            {
                o.FlaggedExamples = [7, 42];
                o.ExampleLeadRatio = 0;
                o.Contamination.Evidence = "self";
                o.Contamination.Weights = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40];
                o.Contamination.Bias = -30;
            });
        });
        await host.StartAsync();
        var worker = host.Services.GetRequiredService<ScorerWorker>();
        var items = await Pipeline.Until(() => worker.Index.Flagged, f => f is not null, "the flagged items loaded");
        var scorer = worker.Index.Scorer!;
        Assert.Equal(scorer.Version, items!.Version);
        Assert.Equal([7L, 42], items.Inputs.Ids);
        var norm = fixture.Recipe.Data.Normalization;
        var image7 = fixture.Data.Train.Select([7], norm).Inputs;
        Assert.Equal(image7, items.Inputs.Input(0).ToArray());
        Assert.Equal(2, items.Measured);
        int column = scorer.ExampleIds.ToList().IndexOf(7);
        // The same readout (scored here in a batch of one, there with the other item: equal to float rounding).
        float own = scorer.Score([new ModelQuery("x", scorer.Version, image7, null, DateTimeOffset.UnixEpoch)]).ExampleRow(0).Span[column];
        Assert.Equal(own, items.SelfInfluence[column], Math.Abs(own) * 1e-5f);

        var producer = host.Services.GetRequiredService<IEventProducer>();
        await Pipeline.ProduceQueryAsync(log, producer, "copy-7", image7);
        await Pipeline.Until(() => worker.Metrics.QueriesScored, c => c >= 1, "the copy attributed");
        Assert.Equal(1, worker.Metrics.AlertsRaised);
        var scores = scorer.Score([new ModelQuery("copy-7", scorer.Version, image7, null, DateTimeOffset.UnixEpoch)]);
        var verdict = worker.Alerts.Evaluate(scores.SourceRow(0).Span, scorer.SourceIds, scores.ExampleRow(0).Span, scorer.ExampleNorms.Span, scorer.ExampleIds, scorer.ExampleSourceIds, null, image7, items);
        Assert.NotNull(verdict);
        Assert.Contains(7L, verdict.FlaggedExampleIds);
        await host.StopAsync();
    }
}
