using Attribution.Contracts;
using Attribution.Transport;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Attribution.Ingest;

/// <summary>
/// Publishes a run directory's checkpoints: for each checkpoint not yet on the checkpoints topic (same run, step and
/// checksum), first its TrainingBatch events (chunks of ≤ <see cref="IngestOptions.BatchChunk"/> examples, keyed by
/// run id, each carrying its examples' inputs and labels), waiting for every acknowledgement, then the CheckpointPublished
/// event (by reference: file:// uri, sha256, parameter count; with the architecture and recipe from run.json), keyed by run id. So a reader that sees a checkpoint finds all its batches already in the log.
/// Once mode publishes what is there and finishes; follow mode rescans every <see cref="IngestOptions.PollSeconds"/>.
/// </summary>
public sealed class IngestWorker(IEventLog log, IEventProducer producer, IOptions<IngestOptions> options, ILogger<IngestWorker> logger,
    IHostApplicationLifetime? lifetime = null) : BackgroundService
{
    /// <summary>Largest batch payload per event, in bytes.</summary>
    public const int MaxEventBytes = 900_000;

    private readonly IngestOptions _options = options.Value;
    private readonly TaskCompletionSource _firstScan = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _published;
    private long _skipped;
    private long _batches;

    /// <summary>Checkpoints published by this instance.</summary>
    public long CheckpointsPublished => Interlocked.Read(ref _published);

    /// <summary>Checkpoints found already published (idempotent restarts).</summary>
    public long CheckpointsSkipped => Interlocked.Read(ref _skipped);

    /// <summary>TrainingBatch events published by this instance.</summary>
    public long BatchEventsPublished => Interlocked.Read(ref _batches);

    /// <summary>Completes when the first scan has been published (once mode: when Ingest is done); faults with its error.</summary>
    public Task FirstScanCompleted => _firstScan.Task;

    /// <summary>The last error (null when healthy).</summary>
    public string? LastError { get; private set; }

    /// <inheritdoc />
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await new TopicProvisioner(log, logger).EnsureAsync(_options.RequiredTopics(), cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var runId = _options.EffectiveRunId;
        var scanner = new RunScanner(_options.RunDirectory, _options.SourceCount, _options.SourceSeed) { TrainingCheckpoints = _options.TrainingCheckpoints };
        logger.IngestStarted(scanner.Directory, runId, _options.Follow ? "follow" : "once");
        try
        {
            var done = new HashSet<(long Step, string Checksum)>();
            // Published = on the checkpoints topic, or already simulated (the Simulator copies each checkpoint event onto
            // the compacted probes topic; the embedded log drops checkpoint events once the Simulator committed them).
            var published = await TopicReader.ReadToEndAsync(log, Topics.Checkpoints, stoppingToken);
            published.AddRange((await TopicReader.ReadToEndAsync(log, Topics.Probes, stoppingToken)).Where(r => r.GetHeaderString(EventHeaders.EventType) == EventTypes.CheckpointPublished));
            foreach (var r in published)
            {
                if (TryDecode(r) is { } c && c.RunId == runId)
                {
                    done.Add((c.Step, c.Checksum));
                }
            }

            while (true)
            {
                try
                {
                    await PublishNewAsync(scanner, runId, done, stoppingToken);
                    LastError = null;
                }
                catch (RunFormatException e) when (_options.Follow)
                {
                    // A trainer may be mid-write; say what is wrong and look again at the next scan.
                    LastError = e.Message;
                    logger.ScanFailed(scanner.Directory, e.Message);
                }

                _firstScan.TrySetResult();
                if (!_options.Follow)
                {
                    break;
                }

                await Task.Delay(TimeSpan.FromSeconds(_options.PollSeconds), stoppingToken);
            }

            logger.IngestFinished(CheckpointsPublished, CheckpointsSkipped);
        }
        catch (OperationCanceledException e) when (e.CancellationToken == stoppingToken)
        {
            _firstScan.TrySetCanceled(stoppingToken);
        }
        catch (Exception e)
        {
            LastError = e.Message;
            logger.IngestFailed(e);
            _firstScan.TrySetException(e);
            throw;
        }
        finally
        {
            if (!_options.Follow && _options.StopHostWhenDone)
            {
                lifetime?.StopApplication();
            }
        }
    }

    private async Task PublishNewAsync(RunScanner scanner, string runId, HashSet<(long, string)> done, CancellationToken ct)
    {
        RunData? data = null;
        foreach (var found in scanner.Scan())
        {
            var (checksum, parameters) = RunScanner.Describe(found.Path);
            if (done.Contains((found.Step, checksum)))
            {
                Interlocked.Increment(ref _skipped);
                logger.CheckpointSkipped(runId, found.Step, checksum);
                continue;
            }

            data ??= RunData.Load(scanner, _options.DataDirectory);
            // Each batch event carries its examples' data; chunks stay under MaxEventBytes (brokers' default limit is 1 MB).
            int chunk = Math.Min(_options.BatchChunk, Math.Max(1, MaxEventBytes / data.BytesPerExample));
            var acks = new List<Task<EventPosition>>();
            for (int at = 0; at < found.ExampleIds.Length; at += chunk)
            {
                int n = Math.Min(chunk, found.ExampleIds.Length - at);
                var ids = found.ExampleIds[at..(at + n)];
                var batch = data.Batch(runId, found.Step, ids, found.SourceIds[at..(at + n)], found.Path);
                acks.Add(producer.ProduceAsync(Topics.Batches, EventMessage.Create(runId, EventCodecs.TrainingBatches.Encode(batch), ArrowEvents.Headers<TrainingBatch>()), ct));
            }

            // Batches first, acknowledged, then the checkpoint: a Simulator that sees the checkpoint finds its batches.
            await Task.WhenAll(acks);
            Interlocked.Add(ref _batches, acks.Count);
            var uri = new Uri(found.Path).AbsoluteUri;
            var checkpoint = new CheckpointPublished(runId, found.Step, uri, checksum, parameters, data.CheckpointRecipe);
            await producer.ProduceAsync(Topics.Checkpoints, EventMessage.Create(runId, EventCodecs.Checkpoints.Encode(checkpoint), ArrowEvents.Headers<CheckpointPublished>()), ct);
            done.Add((found.Step, checksum));
            Interlocked.Increment(ref _published);
            logger.CheckpointPublished(runId, found.Step, found.ExampleIds.Length, acks.Count, checksum);
        }
    }

    private static CheckpointPublished? TryDecode(EventRecord r)
    {
        try
        {
            return EventCodecs.Checkpoints.Decode(r.Value);
        }
        catch (EventContractException)
        {
            return null;
        }
    }
}
