using System.Security.Cryptography;
using Attribution.Attribution.Spans;
using Attribution.Contracts;
using Attribution.Transport;
using Attribution.Transport.Embedded;
using Microsoft.Extensions.Logging.Abstractions;

namespace Attribution.Simulator.Tests;

/// <summary>
/// The Simulator's span index for a language-model checkpoint: built over exactly the run's documents trained up to the
/// checkpoint's step, written with its sha256 and referenced on the probes topic; an oversized one is dead-lettered.
/// </summary>
public sealed class SpanIndexPublisherTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("spanpub-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly int[][] Docs = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [20, 21, 22, 23, 24, 25, 26, 27], [30, 31, 32, 33, 34, 35, 36, 37, 38], [40, 41, 42, 43, 44, 45, 46, 47, 48]];

    private async Task<(EmbeddedEventLog Log, IEventProducer Producer, EventRecord Checkpoint, CheckpointPublished Event)> SetUpAsync(string? tokenizer)
    {
        var log = new EmbeddedEventLog();
        foreach (var t in new[] { Topics.Batches, Topics.Probes, Topics.DeadLetter, Topics.Checkpoints })
        {
            await log.CreateTopicAsync(new TopicSpec(t));
        }

        var producer = log.CreateProducer();
        // Steps 0 and 1 of run r are in the checkpoint's training set (document 101 twice: indexed once), step 5 is not,
        // nor is run s's batch.
        TrainingBatch[] batches =
        [
            new("r", 0, [100, 101], [3, 4], Documents: [Docs[0], Docs[1]]),
            new("r", 1, [101, 102], [4, 3], Documents: [Docs[1], Docs[2]]),
            new("r", 5, [103], [3], Documents: [Docs[3]]),
            new("s", 0, [103], [3], Documents: [Docs[3]]),
        ];
        foreach (var b in batches)
        {
            await producer.ProduceAsync(Topics.Batches, ArrowEvents.Message(b.RunId, b));
        }

        var checkpoint = new CheckpointPublished("r", 1, new Uri(Path.Combine(_dir, "model.safetensors")).AbsoluteUri, "sha256:00", 10,
            new CheckpointRecipe("gpt:test", 0.01, 0, 2, 1, "fortunes/pets", tokenizer));
        await producer.ProduceAsync(Topics.Checkpoints, ArrowEvents.Message("r", checkpoint));
        var record = (await TopicReader.ReadToEndAsync(log, Topics.Checkpoints, default)).Single();
        return (log, producer, record, checkpoint);
    }

    [Fact]
    public async Task The_index_covers_the_documents_trained_up_to_the_step_and_its_reference_lands_on_the_probes_topic()
    {
        var (log, producer, record, checkpoint) = await SetUpAsync("bytes");
        await using var _ = log;
        var publisher = new SpanIndexPublisher(log, producer, new SpanIndexOptions(), "sim", NullLogger.Instance);
        var published = await publisher.PublishAsync(record, checkpoint, default);

        Assert.NotNull(published);
        Assert.Equal((3, (long)(Docs[0].Length + Docs[1].Length + Docs[2].Length), "bytes"), (published.Documents, published.Tokens, published.Tokenizer));
        var path = new Uri(published.Uri).LocalPath;
        Assert.Equal(Path.Combine(_dir, "span-index", "r-1.spans"), path);
        var bytes = await File.ReadAllBytesAsync(path);
        Assert.Equal(published.Bytes, bytes.Length);
        Assert.Equal("sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)), published.Checksum);

        var index = SpanIndexFormat.Read(bytes);
        var match = Assert.Single(index.Find([99, 32, 33, 34, 35, 36, 37, 38, 99], new SpanQueryOptions(MinLength: 4)));
        Assert.Equal((1, 7, 102L, 3), (match.QueryStart, match.Length, match.Documents.Single().Id, match.Documents.Single().SourceId));
        Assert.Empty(index.Find(Docs[3], new SpanQueryOptions(MinLength: 2))); // step 5 and run s are not in the set

        var onTopic = (await TopicReader.ReadToEndAsync(log, Topics.Probes, default)).Single();
        Assert.Equal(SpanIndexPublished.KeyFor("r", 1), onTopic.KeyString);
        Assert.Equal(EventTypes.SpanIndexPublished, onTopic.GetHeaderString(EventHeaders.EventType));
        Assert.Equal(published, EventCodecs.SpanIndexes.Decode(onTopic.Value));

        // Seen again (a retry of the same checkpoint): not rebuilt.
        Assert.Null(await publisher.PublishAsync(record, checkpoint, default));
        Assert.Equal(1, publisher.Published);
    }

    [Fact]
    public async Task An_index_over_the_size_limit_is_dead_lettered_with_the_reason_and_nothing_is_published()
    {
        var (log, producer, record, checkpoint) = await SetUpAsync("bytes");
        await using var _ = log;
        var publisher = new SpanIndexPublisher(log, producer, new SpanIndexOptions { MaxBytes = 1024 }, "sim", NullLogger.Instance);
        // Up to step 9: 5 documents, 236 tokens: 16 + 8·5 + 4·(5 + 6 + 2·241) = 2,028 bytes, over the 1,024 allowed.
        var big = checkpoint with { Step = 9 };
        await producer.ProduceAsync(Topics.Batches, ArrowEvents.Message("r", new TrainingBatch("r", 9, [104], [3], Documents: [Enumerable.Range(0, 200).ToArray()])));

        Assert.Null(await publisher.PublishAsync(record, big, default));
        Assert.Equal((0, 1), (publisher.Published, publisher.Rejected));
        var dead = (await TopicReader.ReadToEndAsync(log, Topics.DeadLetter, default)).Single();
        Assert.Contains("Simulator:Spans:MaxBytes", dead.GetHeaderString(DeadLetterPublisher.ErrorMessageHeader));
        Assert.Equal(record.Value, dead.Value);
        Assert.Empty(await TopicReader.ReadToEndAsync(log, Topics.Probes, default));
        Assert.False(Directory.Exists(Path.Combine(_dir, "span-index")));
    }

    [Fact]
    public async Task A_checkpoint_without_a_tokenizer_or_with_spans_disabled_is_not_indexed()
    {
        var (log, producer, record, checkpoint) = await SetUpAsync(tokenizer: null);
        await using var _ = log;
        Assert.Null(await new SpanIndexPublisher(log, producer, new SpanIndexOptions(), "sim", NullLogger.Instance).PublishAsync(record, checkpoint, default));
        Assert.Null(await new SpanIndexPublisher(log, producer, new SpanIndexOptions { Enabled = false }, "sim", NullLogger.Instance)
            .PublishAsync(record, checkpoint with { Recipe = checkpoint.Recipe! with { Tokenizer = "bytes" } }, default));
        Assert.Empty(await TopicReader.ReadToEndAsync(log, Topics.Probes, default));
    }
}
