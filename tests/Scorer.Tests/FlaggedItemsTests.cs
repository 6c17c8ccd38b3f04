using Attribution.Contracts;
using Attribution.Transport;
using Attribution.Transport.Embedded;

namespace Attribution.Scorer.Tests;

/// <summary>
/// The image Scorer's flagged items come from configuration (<c>Scorer:FlaggedExamples</c>, <c>Scorer:FlaggedSources</c>)
/// and their inputs from the run's training batches, the same payloads the Simulator trains its probes on.
/// </summary>
public sealed class FlaggedItemsTests
{
    private static async Task<EmbeddedEventLog> LogWithBatchesAsync()
    {
        var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec(Topics.Batches, 2));
        using var producer = log.CreateProducer();
        // Run "r": step 1 trains examples 1 (source 7), 2 (source 9), 3 (source 9); step 5 trains 4 (source 9); run "other" trains 1 too.
        async Task Batch(string run, long step, long[] ids, long[] sources, float first)
        {
            var x = Enumerable.Range(0, ids.Length * 2).Select(i => first + i).ToArray();
            var batch = new TrainingBatch(run, step, ids, sources, BatchPayload.Encode(x, new int[ids.Length], 2));
            await producer.ProduceAsync(Topics.Batches, EventMessage.Create(run, EventCodecs.TrainingBatches.Encode(batch)));
        }

        await Batch("r", 1, [1, 2, 3], [7, 9, 9], 10);
        await Batch("r", 5, [4], [9], 50);
        await Batch("other", 1, [1], [7], 90);
        return log;
    }

    [Fact]
    public async Task The_flagged_examples_and_the_examples_of_flagged_sources_are_read_with_their_inputs_up_to_the_checkpoint_step()
    {
        await using var log = await LogWithBatchesAsync();
        var index = await FlaggedItems.ReadInputsAsync(log, "r", 3, new HashSet<long> { 1 }, new HashSet<long> { 9 }, 100, CancellationToken.None);
        Assert.NotNull(index);
        // Example 4 was trained after step 3; run "other"'s example 1 is another run's.
        Assert.Equal([1L, 2, 3], index.Ids);
        Assert.Equal([10f, 11], index.Input(0).ToArray());
        Assert.Equal([12f, 13], index.Input(1).ToArray());
        Assert.Equal([14f, 15], index.Input(2).ToArray());
        Assert.Equal(0, index.Find([12f, 13]).Distance);
        Assert.Equal((2L, 9), (index.Find([12f, 13]).DocumentId, index.Find([12f, 13]).SourceId));

        Assert.Null(await FlaggedItems.ReadInputsAsync(log, "r", 3, new HashSet<long>(), new HashSet<long>(), 100, CancellationToken.None));
        Assert.Null(await FlaggedItems.ReadInputsAsync(log, "r", 3, new HashSet<long> { 77 }, new HashSet<long>(), 100, CancellationToken.None));
        var over = await Assert.ThrowsAsync<ArgumentException>(() => FlaggedItems.ReadInputsAsync(log, "r", 9, new HashSet<long>(), new HashSet<long> { 9 }, 2, CancellationToken.None));
        Assert.Contains("Scorer:Contamination:MaxFlaggedInputs (2)", over.Message, StringComparison.Ordinal);
    }
}
