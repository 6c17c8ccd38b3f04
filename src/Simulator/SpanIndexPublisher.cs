using System.Security.Cryptography;
using Attribution.Attribution.Spans;
using Attribution.Contracts;
using Attribution.Transport;
using Microsoft.Extensions.Logging;

namespace Attribution.Simulator;

/// <summary>
/// Builds the exact-span index (<see cref="SpanIndex"/>) of a language model's checkpoint over the documents of the
/// run's training batches with step &lt;= the checkpoint's, writes it in <see cref="SpanIndexFormat"/> to the index folder
/// and puts its reference (<see cref="SpanIndexPublished"/>: URI, sha256, counts) on the compacted probes topic under
/// <see cref="SpanIndexPublished.KeyFor"/>. A training set that cannot be indexed (over
/// <see cref="SpanIndexOptions.MaxBytes"/>, a negative token, repeated document ids) is dead-lettered: the checkpoint
/// record goes to the dead-letter topic with the reason, and the Simulator carries on with the probes.
/// </summary>
public sealed class SpanIndexPublisher(IEventLog log, IEventProducer producer, SpanIndexOptions options, string groupId, ILogger logger)
{
    private readonly HashSet<(string, long)> _published = [];

    /// <summary>Indices published by this instance.</summary>
    public int Published { get; private set; }

    /// <summary>Training sets dead-lettered because they could not be indexed.</summary>
    public int Rejected { get; private set; }

    /// <summary>Whether <paramref name="checkpoint"/> is a language model's (it names a tokenizer).</summary>
    public static bool Applies(CheckpointPublished checkpoint) => checkpoint?.Recipe?.Tokenizer is { Length: > 0 };

    /// <summary>
    /// Publishes the index of <paramref name="checkpoint"/> (read from <paramref name="record"/>) unless disabled, not a
    /// language model, or already published by this instance. Returns the reference, or null when nothing was published.
    /// </summary>
    public async Task<SpanIndexPublished?> PublishAsync(EventRecord record, CheckpointPublished checkpoint, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (!options.Enabled || !Applies(checkpoint) || _published.Contains((checkpoint.RunId, checkpoint.Step)))
        {
            return null;
        }

        var where = $"checkpoint {checkpoint.RunId} step {checkpoint.Step}";
        var (ids, sources, documents) = await ReadDocumentsAsync(checkpoint, ct);
        if (ids.Count == 0)
        {
            return null; // the probes' own checks reject a run without training batches
        }

        long tokens = documents.Sum(d => (long)d.Length);
        long bytes = SpanIndexFormat.SizeOf(ids.Count, tokens);
        SpanIndex index;
        string path;
        try
        {
            path = FilePath(checkpoint);
            if (bytes > options.MaxBytes)
            {
                throw new SpanIndexRejectedException($"{where}: the span index of its {ids.Count:N0} training documents ({tokens:N0} tokens) would take {bytes:N0} bytes, over Simulator:Spans:MaxBytes ({options.MaxBytes:N0}); raise the limit or index a subset. Probes are published as usual.");
            }

            index = SpanIndex.Build(documents, ids, sources);
        }
        catch (ArgumentException e)
        {
            Rejected++;
            await new DeadLetterPublisher(producer, Topics.DeadLetter).PublishAsync(record, new SpanIndexRejectedException($"{where}: the training documents cannot be indexed: {e.Message}", e), groupId, ct);
            return null;
        }
        catch (SpanIndexRejectedException e)
        {
            Rejected++;
            await new DeadLetterPublisher(producer, Topics.DeadLetter).PublishAsync(record, e, groupId, ct);
            return null;
        }

        var content = SpanIndexFormat.Write(index);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tmp = path + ".tmp";
        await File.WriteAllBytesAsync(tmp, content, ct);
        File.Move(tmp, path, overwrite: true);
        var published = new SpanIndexPublished(checkpoint.RunId, checkpoint.Step, new Uri(path).AbsoluteUri, $"sha256:{Convert.ToHexStringLower(SHA256.HashData(content))}",
            index.DocumentCount, index.TokenCount, content.Length, checkpoint.Recipe!.Tokenizer!);
        await producer.ProduceAsync(Topics.Probes, EventMessage.Create(SpanIndexPublished.KeyFor(checkpoint.RunId, checkpoint.Step),
            EventCodecs.SpanIndexes.Encode(published), ArrowEvents.Headers<SpanIndexPublished>()), ct);
        _published.Add((checkpoint.RunId, checkpoint.Step));
        Published++;
        logger.SpanIndexPublished(checkpoint.RunId, checkpoint.Step, published.Documents, published.Tokens, published.Bytes, published.Uri);
        return published;
    }

    private string FilePath(CheckpointPublished checkpoint)
    {
        var folder = options.Directory;
        if (folder is null)
        {
            var uri = new Uri(checkpoint.Uri);
            folder = uri.IsFile ? Path.Combine(Path.GetDirectoryName(uri.LocalPath)!, "span-index")
                : throw new SpanIndexRejectedException($"checkpoint {checkpoint.RunId} step {checkpoint.Step}: its URI '{checkpoint.Uri}' is not a file, so there is no folder beside it; set Simulator:Spans:Directory.");
        }

        var name = string.Concat(checkpoint.RunId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
        return Path.GetFullPath(Path.Combine(folder, $"{name}-{checkpoint.Step}.spans"));
    }

    // Each document once (its first batch), in the order first trained; the ids and sources the batches give.
    private async Task<(List<long> Ids, List<int> Sources, List<int[]> Documents)> ReadDocumentsAsync(CheckpointPublished checkpoint, CancellationToken ct)
    {
        var ids = new List<long>();
        var sources = new List<int>();
        var documents = new List<int[]>();
        var seen = new HashSet<long>();
        foreach (var r in await TopicReader.ReadToEndAsync(log, Topics.Batches, ct))
        {
            if (r.KeyString != checkpoint.RunId)
            {
                continue;
            }

            var batch = EventCodecs.TrainingBatches.Decode(r.Value);
            if (batch.RunId != checkpoint.RunId || batch.Step > checkpoint.Step || batch.Documents is not { } docs)
            {
                continue;
            }

            for (int i = 0; i < batch.ExampleIds.Count; i++)
            {
                if (seen.Add(batch.ExampleIds[i]))
                {
                    ids.Add(batch.ExampleIds[i]);
                    long source = batch.SourceIds[i];
                    sources.Add(source is >= 0 and <= int.MaxValue ? (int)source : -1);
                    documents.Add(docs[i]);
                }
            }
        }

        return (ids, sources, documents);
    }
}

/// <summary>A training set that cannot be indexed; dead-lettered with this message.</summary>
public sealed class SpanIndexRejectedException(string message, Exception? inner = null) : Exception(message, inner);
