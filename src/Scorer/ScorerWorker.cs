using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Attribution.Contracts;
using Attribution.Transport;
using Attribution.Transport.Messages;
using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Attribution.Scorer;

/// <summary>A query that cannot be attributed (wrong input kind or width, non-finite features); dead-lettered with this message.</summary>
public sealed class QueryRejectedException(string message) : Exception(message);

/// <summary>
/// Consumes queries (group <see cref="ScorerOptions.GroupId"/>) and publishes one <see cref="AttributionResult"/> per
/// query to the attributions topic (same key, same partition index). Each query is decoded and validated on its lane
/// (poison is dead-lettered with its error and the stream goes on), then handed to a micro-batcher that scores up to
/// <see cref="ScorerOptions.MaxBatch"/> queries in one batched forward-only readout; a lane's handler returns only once
/// its attribution is acknowledged, so offsets are committed only after produce. Queries whose id already has an
/// attribution are skipped (see <see cref="AttributionDeduplicator"/>): exactly one attribution per query id.
/// </summary>
public sealed class ScorerWorker : EventConsumerWorker
{
    /// <summary>The method name written into attributions.</summary>
    public const string MethodName = "forward-only";

    private readonly IEventLog _log;
    private readonly IEventProducer _producer;
    private readonly ProbeIndex _index;
    private readonly ScorerOptions _options;
    private readonly IBus? _bus;
    private readonly Channel<Pending> _queue;
    private readonly CancellationTokenSource _batcherStop = new();
    private readonly HashSet<long> _flaggedSources;
    private readonly HashSet<long> _flaggedExamples;
    private readonly Dictionary<string, Task> _inFlight = new(StringComparer.Ordinal);
    private AttributionDeduplicator? _dedup;
    private Task[] _batchers = [];

    /// <summary>Creates the worker.</summary>
    public ScorerWorker(IEventLog log, IEventProducer producer, ProbeIndex index, ScorerMetrics metrics, IOptions<ScorerOptions> options,
        ILogger<ScorerWorker> logger, IBus? bus = null)
        : base(log, new EventWorkerOptions
        {
            Topics = [Topics.Queries],
            GroupId = options.Value.GroupId,
            DeadLetterTopic = Topics.DeadLetter,
            MaxInFlight = options.Value.MaxInFlight,
            LaneCapacity = 16,
            CommitEvery = options.Value.CommitEvery,
            CommitInterval = TimeSpan.FromMilliseconds(options.Value.CommitIntervalMs),
        }, logger, producer)
    {
        _log = log;
        _producer = producer;
        _index = index;
        Metrics = metrics;
        _options = options.Value;
        _bus = bus;
        _flaggedSources = [.. _options.FlaggedSources];
        _flaggedExamples = [.. _options.FlaggedExamples];
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(Math.Max(_options.MaxBatch, _options.MaxInFlight)) { SingleReader = _options.ConcurrentBatches == 1 });
    }

    /// <summary>Counters and latency histogram.</summary>
    public ScorerMetrics Metrics { get; }

    /// <summary>The index (live model, readiness).</summary>
    public ProbeIndex Index => _index;

    /// <inheritdoc />
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.BlasThreads > 0)
        {
            Engine.Blas.SetThreads(_options.BlasThreads);
        }

        // Attributions get exactly as many partitions as queries: query partition p maps to attribution partition p.
        int queries = (await new TopicProvisioner(_log, Logger).EnsureAsync(_options.RequiredTopics(), cancellationToken))[Topics.Queries];
        _dedup = new AttributionDeduplicator(_log, queries, _options.DedupWindow);
        _index.Start();
        _batchers = [.. Enumerable.Range(0, _options.ConcurrentBatches).Select(_ =>
            Task.Factory.StartNew(() => RunBatcherAsync(_batcherStop.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap())];
        await base.StartAsync(cancellationToken);
    }

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // Lanes drain first (each waits for its attribution), then the batcher stops.
        await base.StopAsync(cancellationToken);
        _queue.Writer.TryComplete();
        await _batcherStop.CancelAsync();
        await Task.WhenAll(_batchers).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);

        _dedup?.Dispose();
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        _batcherStop.Dispose();
        base.Dispose();
    }

    /// <inheritdoc />
    protected override void OnPartitionsAssigned(IReadOnlyList<TopicPartition> partitions) =>
        _dedup?.MarkStale(partitions.Where(p => p.Topic == Topics.Queries).Select(p => p.Partition));

    /// <inheritdoc />
    protected override async Task HandleAsync(EventRecord record, CancellationToken cancellationToken)
    {
        var model = await _index.WaitAsync(cancellationToken);
        ModelQuery query;
        try
        {
            query = EventCodecs.Queries.Decode(record.Value);
            Validate(query, model.InputWidth);
        }
        catch (Exception e) when (e is EventContractException or QueryRejectedException)
        {
            Metrics.Rejected();
            throw;
        }

        var pending = new Pending(record, query);
        await _queue.Writer.WriteAsync(pending, cancellationToken);
        await pending.Done.Task.WaitAsync(cancellationToken);
    }

    private static void Validate(ModelQuery query, int width)
    {
        if (query.Features is null)
        {
            throw new QueryRejectedException($"query '{query.QueryId}' carries token ids; this model takes features ({width} float32 values in 'features').");
        }

        if (query.Features.Count != width)
        {
            throw new QueryRejectedException($"query '{query.QueryId}' has {query.Features.Count} features; the model takes {width}. Send the full input vector.");
        }

        for (int i = 0; i < query.Features.Count; i++)
        {
            if (!float.IsFinite(query.Features[i]))
            {
                throw new QueryRejectedException($"query '{query.QueryId}' has a non-finite value ({query.Features[i].ToString(CultureInfo.InvariantCulture)}) at feature {i}; features must be finite.");
            }
        }
    }

    private async Task RunBatcherAsync(CancellationToken stop)
    {
        var reader = _queue.Reader;
        var window = TimeSpan.FromMilliseconds(_options.BatchWindowMs);
        try
        {
            while (await reader.WaitToReadAsync(stop))
            {
                var batch = new List<Pending>(_options.MaxBatch);
                var started = Stopwatch.GetTimestamp();
                while (batch.Count < _options.MaxBatch)
                {
                    if (reader.TryRead(out var p))
                    {
                        batch.Add(p);
                        continue;
                    }

                    var left = window - Stopwatch.GetElapsedTime(started);
                    if (left <= TimeSpan.Zero)
                    {
                        break;
                    }

                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(stop);
                    wait.CancelAfter(left);
                    try
                    {
                        if (!await reader.WaitToReadAsync(wait.Token))
                        {
                            break;
                        }
                    }
                    catch (OperationCanceledException e) when (e.CancellationToken == wait.Token && !stop.IsCancellationRequested)
                    {
                        break;
                    }
                }

                if (batch.Count == 0)
                {
                    continue;
                }

                try
                {
                    Process(batch, stop);
                }
                catch (Exception e)
                {
                    foreach (var p in batch)
                    {
                        p.Done.TrySetException(e);
                    }
                }
            }
        }
        catch (OperationCanceledException e) when (e.CancellationToken == stop)
        {
        }

        while (reader.TryRead(out var left))
        {
            left.Done.TrySetCanceled(stop);
        }
    }

    /// <summary>
    /// Scores a batch and starts publishing it; returns once the batch's produces are issued, not acknowledged, so the
    /// next batch is computed while this one's acknowledgements travel (each lane still waits for its own query's
    /// acknowledgement before its offset can be stored). Query ids being published are tracked so a redelivered copy
    /// that arrives meanwhile follows the first copy's outcome instead of being scored twice.
    /// </summary>
    private void Process(List<Pending> batch, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var model = _index.Current!;
        _dedup!.CatchUp([.. batch.Select(p => p.Record.Partition).Distinct()], ct);
        var work = new List<Pending>(batch.Count);
        foreach (var p in batch)
        {
            Task? first;
            bool duplicate = false;
            lock (_inFlight)
            {
                // One decision per query id at a time, across concurrent batches.
                if (!_inFlight.TryGetValue(p.Query.QueryId, out first) && !(duplicate = _dedup.Contains(p.Record.Partition, p.Query.QueryId))
                    && p.Query.Features!.Count == model.InputWidth)
                {
                    _inFlight[p.Query.QueryId] = p.Done.Task;
                    work.Add(p);
                    continue;
                }
            }

            if (first is not null)
            {
                // Redelivered while the first copy is being published: succeed or fail with it.
                _ = FollowAsync(p, first);
            }
            else if (duplicate)
            {
                Metrics.Duplicate();
                Logger.DuplicateSkipped(p.Query.QueryId);
                p.Done.TrySetResult();
            }
            else
            {
                // The live model changed width between validation and scoring.
                p.Done.TrySetException(new QueryRejectedException($"query '{p.Query.QueryId}' has {p.Query.Features!.Count} features; the model ({model.Version}) takes {model.InputWidth}."));
            }
        }

        if (work.Count == 0)
        {
            return;
        }

        try
        {
            int d = model.InputWidth, m = model.SourceIds.Length;
            var x = new float[(long)work.Count * d];
            for (int q = 0; q < work.Count; q++)
            {
                CopyFeatures(work[q].Query.Features!, x.AsSpan(q * d, d));
            }

            var readout = Stopwatch.GetTimestamp();
            var scores = model.Score(x, work.Count);
            Metrics.ReadOut(Stopwatch.GetElapsedTime(readout));
            Metrics.Batch();
            var results = new AttributionResult[work.Count];
            var messages = new EventMessage[work.Count];
            var now = DateTimeOffset.UtcNow;
            var headers = ArrowEvents.Headers<AttributionResult>();
            for (int q = 0; q < work.Count; q++)
            {
                var top = model.TopK(scores, q, _options.TopK);
                var latency = Math.Max(0, (long)(now - work[q].Record.Timestamp).TotalMicroseconds);
                var exampleIds = new long[top.Length];
                var exampleScores = new float[top.Length];
                for (int i = 0; i < top.Length; i++)
                {
                    exampleIds[i] = model.ExampleIds[top[i].Example];
                    exampleScores[i] = top[i].Score;
                }

                results[q] = new AttributionResult(work[q].Query.QueryId, model.Version, MethodName, exampleIds, exampleScores,
                    model.SourceIds, scores.SourceScores.AsSpan(q * m, m).ToArray(), latency);
                messages[q] = EventMessage.Create(work[q].Query.QueryId, EventCodecs.Attributions.Encode(results[q]), headers);
            }

            Metrics.Computed(Stopwatch.GetElapsedTime(started));
            _ = PublishAsync(model, work, results, messages, scores, ct);
        }
        catch (Exception e)
        {
            Release(work, e);
        }
    }

    private static void CopyFeatures(IReadOnlyList<float> features, Span<float> destination)
    {
        switch (features)
        {
            case float[] array:
                array.CopyTo(destination);
                break;
            case ArraySegment<float> segment:
                segment.AsSpan().CopyTo(destination);
                break;
            default:
                for (int j = 0; j < destination.Length; j++)
                {
                    destination[j] = features[j];
                }

                break;
        }
    }

    private async Task PublishAsync(AttributionModel model, List<Pending> work, AttributionResult[] results, EventMessage[] messages, BatchScores scores, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            // A query's alert goes out before its attribution: once the attribution exists a redelivered query is
            // skipped as a duplicate, so an alert published after it would be lost by a crash in between. This order
            // makes alerts at-least-once (a crash after the alert repeats it; consumers key on the query id).
            if (_flaggedSources.Count > 0 || _flaggedExamples.Count > 0)
            {
                int m = model.SourceIds.Length;
                var alerts = new List<Task>();
                for (int q = 0; q < work.Count; q++)
                {
                    alerts.Add(AlertIfFlaggedAsync(model, results[q], scores.SourceScores.AsMemory(q * m, m), scores.ExampleScores.AsMemory(q * model.ExampleIds.Length, model.ExampleIds.Length), ct));
                }

                await Task.WhenAll(alerts);
            }

            var sends = new Task<EventPosition>[work.Count];
            for (int q = 0; q < work.Count; q++)
            {
                sends[q] = _producer.ProduceAsync(Topics.Attributions, messages[q], ct);
            }

            for (int q = 0; q < work.Count; q++)
            {
                var p = work[q];
                EventPosition at;
                try
                {
                    at = await sends[q];
                }
                catch (Exception e)
                {
                    // A produce that failed may still have been written (e.g. acknowledged after the client gave up):
                    // the retry of this query reads its partition to the end first, so it finds such a record.
                    _dedup!.MarkStale([p.Record.Partition]);
                    Release(p, e);
                    continue;
                }

                _dedup!.AddOwn(at.Partition, at.Offset, p.Query.QueryId);
                Metrics.Scored(Math.Max(0, (long)(DateTimeOffset.UtcNow - p.Record.Timestamp).TotalMicroseconds));
                Release(p, null);
            }
        }
        catch (Exception e)
        {
            _dedup!.MarkStale(work.Select(p => p.Record.Partition));
            Release(work, e);
        }
        finally
        {
            Metrics.Published(Stopwatch.GetElapsedTime(started));
        }
    }

    private void Release(List<Pending> work, Exception error)
    {
        foreach (var p in work)
        {
            Release(p, error);
        }
    }

    /// <summary>Ends a query's in-flight state and completes its lane (with <paramref name="error"/> when it failed).</summary>
    private void Release(Pending p, Exception? error)
    {
        lock (_inFlight)
        {
            if (_inFlight.TryGetValue(p.Query.QueryId, out var t) && t == p.Done.Task)
            {
                _inFlight.Remove(p.Query.QueryId);
            }
        }

        if (error is null)
        {
            p.Done.TrySetResult();
        }
        else
        {
            p.Done.TrySetException(error);
        }
    }

    private async Task FollowAsync(Pending duplicate, Task first)
    {
        try
        {
            await first.ConfigureAwait(false);
            Metrics.Duplicate();
            Logger.DuplicateSkipped(duplicate.Query.QueryId);
            duplicate.Done.TrySetResult();
        }
        catch (Exception e)
        {
            duplicate.Done.TrySetException(e);
        }
    }

    private async Task AlertIfFlaggedAsync(AttributionModel model, AttributionResult result, ReadOnlyMemory<float> sourceScores, ReadOnlyMemory<float> exampleScores, CancellationToken ct)
    {
        var flagged = new List<string>();
        string rule;
        double score, threshold;
        var share = FlaggedShare(sourceScores.Span, model.SourceIds, _flaggedSources, "source", flagged);
        if (share >= _options.AlertThreshold)
        {
            (rule, score, threshold) = ("source-share", share, _options.AlertThreshold);
        }
        else if (ExampleLead(exampleScores.Span, model.ExampleNorms, model.ExampleIds, _flaggedExamples) is { } lead && lead.Lead >= _options.ExampleLeadRatio)
        {
            flagged.Clear();
            flagged.Add($"example:{lead.ExampleId}");
            (rule, score, threshold) = ("example-lead", lead.Lead, _options.ExampleLeadRatio);
        }
        else
        {
            return;
        }

        Logger.Contamination(result.QueryId, rule, score, threshold);
        if (_bus is null)
        {
            Metrics.Alert();
            return;
        }

        try
        {
            await _bus.Publish(new ContaminationAlertMessage
            {
                QueryId = result.QueryId,
                ModelVersion = result.ModelVersion,
                FlaggedIds = flagged,
                Rule = rule,
                Score = score,
                Threshold = threshold,
                Timestamp = DateTimeOffset.UtcNow,
            }, ct);
            Metrics.Alert();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Logger.AlertPublishFailed(e, result.QueryId);
        }
    }

    /// <summary>
    /// The example with the highest relative influence (score ÷ ‖response‖) when it is flagged and positive: its id and
    /// its lead over the runner-up (+∞ when no other example is positive); null otherwise.
    /// </summary>
    internal static (long ExampleId, double Lead)? ExampleLead(ReadOnlySpan<float> scores, ReadOnlySpan<float> norms, IReadOnlyList<long> ids, HashSet<long> flagged)
    {
        if (flagged.Count == 0)
        {
            return null;
        }

        int best = -1;
        double first = 0, second = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (norms[i] <= 0)
            {
                continue;
            }

            double relative = scores[i] / norms[i];
            if (relative > first)
            {
                second = first;
                first = relative;
                best = i;
            }
            else if (relative > second)
            {
                second = relative;
            }
        }

        return best >= 0 && flagged.Contains(ids[best]) ? (ids[best], second > 0 ? first / second : double.PositiveInfinity) : null;
    }

    /// <summary>
    /// Flagged share of positive mass: Σ max(s, 0) over flagged units / Σ max(s, 0) over all units (0 when nothing is
    /// positive). Positive scores are the units that pushed the prediction up, so this is "how much of what supports the
    /// answer comes from flagged data".
    /// </summary>
    internal static double FlaggedShare(ReadOnlySpan<float> scores, IReadOnlyList<long> ids, HashSet<long> flagged, string kind, List<string> contributors)
    {
        if (flagged.Count == 0)
        {
            return 0;
        }

        double total = 0, hit = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] > 0)
            {
                total += scores[i];
                if (flagged.Contains(ids[i]))
                {
                    hit += scores[i];
                    contributors.Add($"{kind}:{ids[i]}");
                }
            }
        }

        return total > 0 ? hit / total : 0;
    }

    private sealed class Pending(EventRecord record, ModelQuery query)
    {
        public EventRecord Record { get; } = record;

        public ModelQuery Query { get; } = query;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
