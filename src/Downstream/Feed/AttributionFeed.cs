using System.Collections.Concurrent;
using Attribution.Contracts;
using Attribution.Transport;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Attribution.Downstream.Feed;

/// <summary>
/// Reads the <c>attributions</c> topic from its first retained event with a standalone reader (no group: it never
/// competes with other readers) and hands each batch of decoded events to every <see cref="IAttributionSink"/> (ledger,
/// SQL store, live view), in offset order per partition. An event that does not decode is dead-lettered with its error
/// and the stream goes on. Keeps the lag of each partition (end offset minus events read).
/// </summary>
public sealed class AttributionFeed(IEventLog log, IEventProducer producer, IEnumerable<IAttributionSink> sinks, ILogger<AttributionFeed> logger) : BackgroundService
{
    /// <summary>Header carrying the W3C trace context of an event (see docs/SERVICES.md).</summary>
    public const string TraceParentHeader = "traceparent";

    private const int MaxBatch = 512;
    private readonly IAttributionSink[] _sinks = sinks.ToArray();
    private readonly ConcurrentDictionary<int, long> _lag = new();
    private readonly DeadLetterPublisher _deadLetters = new(producer, Topics.DeadLetter);
    private long _events;
    private long _rejected;

    /// <summary>Attribution events handed to the sinks.</summary>
    public long Events => Interlocked.Read(ref _events);

    /// <summary>Events that did not decode (dead-lettered).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Events appended but not yet read, per partition of <c>attributions</c> (updated about once a second).</summary>
    public IReadOnlyDictionary<int, long> Lag => _lag;

    /// <summary>Completes once the reader caught up with the end of every partition at least once.</summary>
    public Task CaughtUp => _caughtUp.Task;

    private readonly TaskCompletionSource _caughtUp = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        int? count;
        while ((count = await log.GetPartitionCountAsync(Topics.Attributions, stoppingToken).ConfigureAwait(false)) is null)
        {
            await Task.Delay(500, stoppingToken).ConfigureAwait(false);
        }

        var partitions = count.Value;
        await Task.Factory.StartNew(() => Run(partitions, stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap().ConfigureAwait(false);
    }

    private async Task Run(int partitions, CancellationToken stoppingToken)
    {
        using var reader = log.CreateConsumer(new ConsumerSettings { Topics = [Topics.Attributions], Start = StartPosition.Beginning, ClientId = "downstream-feed" });
        var next = new long[partitions];
        var batch = new List<AttributionEnvelope>(MaxBatch);
        var lastLag = DateTime.MinValue;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                batch.Clear();
                var record = reader.Consume(TimeSpan.FromMilliseconds(100), stoppingToken);
                while (record is not null)
                {
                    next[record.Partition] = record.Offset + 1;
                    if (await DecodeAsync(record, stoppingToken).ConfigureAwait(false) is { } e)
                    {
                        batch.Add(e);
                    }

                    record = batch.Count < MaxBatch ? reader.Consume(TimeSpan.Zero, stoppingToken) : null;
                }

                if (batch.Count > 0)
                {
                    Dispatch(batch);
                }

                if (batch.Count == 0 || DateTime.UtcNow - lastLag > TimeSpan.FromSeconds(1))
                {
                    lastLag = DateTime.UtcNow;
                    var total = 0L;
                    for (int i = 0; i < partitions; i++)
                    {
                        var lag = Math.Max(0, reader.GetEndOffset(new TopicPartition(Topics.Attributions, i)) - next[i]);
                        _lag[i] = lag;
                        total += lag;
                    }

                    if (total == 0)
                    {
                        _caughtUp.TrySetResult();
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown: every event read so far has been handed to the sinks.
        }
    }

    private async Task<AttributionEnvelope?> DecodeAsync(EventRecord record, CancellationToken cancellationToken)
    {
        try
        {
            var result = EventCodecs.Attributions.Decode(record.Value);
            return new AttributionEnvelope(result, record.Partition, record.Offset, record.Timestamp, record.GetHeaderString(TraceParentHeader));
        }
        catch (EventContractException e)
        {
            Interlocked.Increment(ref _rejected);
            DownstreamLog.EventRejected(logger, record.ToString(), e.Message);
            await _deadLetters.PublishAsync(record, e, "downstream-feed", cancellationToken).ConfigureAwait(false);
            return null;
        }
    }

    private void Dispatch(List<AttributionEnvelope> batch)
    {
        foreach (var sink in _sinks)
        {
            try
            {
                sink.Accept(batch);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // One broken sink (e.g. a full disk under the SQL store) must not stop the ledger or the live view.
                DownstreamLog.SinkFailed(logger, sink.GetType().Name, batch.Count, e.Message, e);
            }
        }

        Interlocked.Add(ref _events, batch.Count);
    }
}
