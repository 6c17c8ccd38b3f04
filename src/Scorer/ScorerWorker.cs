using System.Diagnostics;
using Attribution.Contracts;
using Attribution.Transport;
using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Attribution.Scorer;

/// <summary>
/// Consumes queries (group <see cref="ScorerOptions.GroupId"/>) and publishes one <see cref="AttributionResult"/> per
/// query id to the attributions topic, on the partition the id hashes to. This class composes the Scorer's parts:
/// <see cref="QueryValidator"/> (identity and shape; poison is dead-lettered with its error and the stream goes on),
/// <see cref="MicroBatcher{T}"/> (up to <see cref="ScorerOptions.MaxBatch"/> queries per readout),
/// <see cref="DeliveryGate"/> (one attribution per query id: duplicates are counted and skipped),
/// <see cref="BatchScorer"/> (the readout through <see cref="IQueryScorer"/>), <see cref="AlertPolicy"/> and
/// <see cref="AttributionPublisher"/>. A lane's handler returns only once its query has its outcome, so offsets are
/// committed only after the attribution is acknowledged.
/// </summary>
public sealed class ScorerWorker : EventConsumerWorker
{
    /// <summary>The method name written into attributions.</summary>
    public const string MethodName = BatchScorer.MethodName;

    private readonly IEventLog _log;
    private readonly IEventProducer _producer;
    private readonly ScorerOptions _options;
    private readonly MicroBatcher<PendingQuery> _batcher;
    private readonly BatchScorer _scoring;
    private volatile AlertPolicy _alerts;
    private readonly AttributionPublisher _publisher;
    private readonly CancellationTokenSource _batcherStop = new();
    private AttributionDeduplicator? _dedup;
    private DeliveryGate? _gate;
    private int _partitions;
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
        Index = index;
        Metrics = metrics;
        _options = options.Value;
        _batcher = new MicroBatcher<PendingQuery>(_options.MaxBatch, TimeSpan.FromMilliseconds(_options.BatchWindowMs),
            Math.Max(_options.MaxBatch, _options.MaxInFlight), singleReader: _options.ConcurrentBatches == 1);
        _scoring = new BatchScorer(_options.TopK, metrics);
        _alerts = AlertPolicy.From(_options);
        _publisher = new AttributionPublisher(producer, bus, metrics, logger);
        metrics.ObserveLag(() => PartitionLag);
        metrics.ObserveCheckpoints(() => Index.Scorer switch { null => 0, CheckpointEnsembleScorer e => e.Members.Count, _ => 1 });
    }

    /// <summary>Counters and latency histogram.</summary>
    public ScorerMetrics Metrics { get; }

    /// <summary>The contamination policy alerts are raised with.</summary>
    public AlertPolicy Alerts => _alerts;

    /// <summary>Replaces the contamination policy (e.g. with a threshold calibrated on clean queries); batches scored after this use it.</summary>
    public void UseAlertPolicy(AlertPolicy policy) => _alerts = policy ?? throw new ArgumentNullException(nameof(policy));

    /// <summary>The index (live model, readiness).</summary>
    public ProbeIndex Index { get; }

    /// <inheritdoc />
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.BlasThreads > 0)
        {
            Engine.Blas.SetThreads(_options.BlasThreads);
        }

        // Attributions get exactly as many partitions as queries: query partition p maps to attribution partition p.
        int queries = (await new TopicProvisioner(_log, Logger).EnsureAsync(_options.RequiredTopics(), cancellationToken))[Topics.Queries];
        _partitions = queries;
        _dedup = new AttributionDeduplicator(_log, queries, _options.DedupWindow);
        _gate = new DeliveryGate(_dedup, Metrics, Logger);
        Index.Start();
        _batchers = [.. Enumerable.Range(0, _options.ConcurrentBatches).Select(_ =>
            Task.Factory.StartNew(() => RunBatcherAsync(_batcherStop.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap())];
        await base.StartAsync(cancellationToken);
    }

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // Lanes drain first (each waits for its attribution), then the batcher stops.
        await base.StopAsync(cancellationToken);
        _batcher.Complete();
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
        var scorer = await Index.WaitScorerAsync(cancellationToken);
        ModelQuery query;
        string id;
        try
        {
            query = EventCodecs.Queries.Decode(record.Value);
            id = QueryValidator.Identify(record, query);
            scorer.Validate(query);
        }
        catch (Exception e) when (e is EventContractException or QueryRejectedException)
        {
            Metrics.Rejected();
            throw;
        }

        int home = QueryValidator.Home(id, _partitions);
        if (record.Partition != home)
        {
            // Sent without a key (or to an explicit partition): re-keyed onto its id's partition, where the ledger of
            // that id lives, so one query id has one home whichever way it was sent.
            await _producer.ProduceAsync(Topics.Queries, new EventMessage(System.Text.Encoding.UTF8.GetBytes(id), record.Value, record.Headers), cancellationToken);
            Metrics.Rerouted();
            Logger.QueryRerouted(id, record.ToString(), home);
            return;
        }

        var pending = new PendingQuery(record, query, home);
        await _batcher.EnqueueAsync(pending, cancellationToken);
        await pending.Done.Task.WaitAsync(cancellationToken);
    }

    private async Task RunBatcherAsync(CancellationToken stop)
    {
        try
        {
            while (await _batcher.NextBatchAsync(stop) is { } batch)
            {
                try
                {
                    Process(batch, stop);
                }
                catch (Exception e)
                {
                    foreach (var p in batch)
                    {
                        _gate!.Release(p, e);
                    }
                }
            }
        }
        catch (OperationCanceledException e) when (e.CancellationToken == stop)
        {
        }

        foreach (var left in _batcher.TakeRemaining())
        {
            left.Done.TrySetCanceled(stop);
        }
    }

    /// <summary>
    /// Scores a batch and starts publishing it; returns once the batch's produces are issued, not acknowledged, so the
    /// next batch is computed while this one's acknowledgements travel (each lane still waits for its own query).
    /// </summary>
    private void Process(List<PendingQuery> batch, CancellationToken ct)
    {
        long cpu = ThreadCpu.Nanoseconds();
        try
        {
            ScoreAndPublish(batch, ct);
        }
        finally
        {
            Metrics.BatchCpu(ThreadCpu.Nanoseconds() - cpu);
        }
    }

    private void ScoreAndPublish(List<PendingQuery> batch, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var scorer = Index.Scorer!;
        var admitted = new List<PendingQuery>(batch.Count);
        foreach (var p in batch)
        {
            Metrics.QueueWait(Stopwatch.GetElapsedTime(p.Enqueued, started));
            try
            {
                // The live model may have changed (width, tokenizer) between validation and scoring.
                scorer.Validate(p.Query);
                admitted.Add(p);
            }
            catch (QueryRejectedException e)
            {
                p.Done.TrySetException(new QueryRejectedException($"{e.Message} (the live model is now {scorer.Version})"));
            }
        }

        var work = _gate!.Admit(admitted, ct);
        if (work.Count == 0)
        {
            return;
        }

        try
        {
            var scored = _scoring.Score(scorer, [.. work.Select(p => p.Query)], [.. work.Select(p => p.Record.Timestamp)], DateTimeOffset.UtcNow);
            Metrics.BatchScored(work.Count);
            Metrics.Computed(Stopwatch.GetElapsedTime(started));
            // Encoding, the alert policy and issuing the produces run on the pool, off the batcher's thread, which goes
            // straight on to the next batch's readout (the critical path at saturation).
            _ = Task.Run(() => PublishAsync(scorer, work, scored, ct), CancellationToken.None);
        }
        catch (Exception e)
        {
            foreach (var p in work)
            {
                _gate.Release(p, e);
            }
        }
    }

    /// <summary>The span stage for <paramref name="scorer"/>: a language model with a loaded span index of its version and tokenizer, else null.</summary>
    private SpanLookup? SpansOf(IQueryScorer scorer) =>
        scorer is LanguageModelScorer lm && Index.Spans.For(lm.Version) is { } loaded && loaded.Tokenizer == lm.Tokenizer.Name
            ? new SpanLookup(lm, loaded.Matcher, _options.Contamination.MatchOptions())
            : null;

    private async Task PublishAsync(IQueryScorer scorer, List<PendingQuery> work, ScoredBatch scored, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var traces = work.Select(ScorerTracing.Start).ToArray();
        try
        {
            var messages = scored.Results.Select(AttributionPublisher.Encode).ToArray();
            // A query's alert goes out before its attribution: once the attribution exists a redelivered query is
            // skipped as a duplicate, so an alert published after it would be lost by a crash in between. This order
            // makes alerts at-least-once (a crash after the alert repeats it; consumers key on the query id).
            var policy = _alerts;
            var alerts = new List<Task>();
            var spans = SpansOf(scorer);
            var flagged = Index.Flagged is { } f && f.Version == scorer.Version ? f : null;
            for (int q = 0; q < work.Count; q++)
            {
                var querySpans = spans is { } s ? s.Find(work[q].Query) : null;
                if (policy.Evaluate(scored.Scores.SourceRow(q).Span, scorer.SourceIds, scored.Scores.ExampleRow(q).Span, scorer.ExampleNorms.Span, scorer.ExampleIds,
                    scorer.ExampleSourceIds, querySpans, work[q].Query.Features, flagged) is { } verdict)
                {
                    var result = scored.Results[q];
                    alerts.Add(ScorerTracing.InSpan(traces[q], () => _publisher.AlertAsync(result, verdict, ct)));
                }
            }

            await Task.WhenAll(alerts);

            var sends = new Task<EventPosition>[work.Count];
            for (int q = 0; q < work.Count; q++)
            {
                sends[q] = _publisher.ProduceAsync(TraceContext.Attach(messages[q], traces[q]), ct);
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
                    _gate!.Failed(p, e);
                    continue;
                }

                Metrics.Scored(Math.Max(0, (long)(DateTimeOffset.UtcNow - p.Record.Timestamp).TotalMicroseconds));
                _gate!.Delivered(p, at.Offset);
            }
        }
        catch (Exception e)
        {
            foreach (var p in work)
            {
                _gate!.Failed(p, e);
            }
        }
        finally
        {
            foreach (var trace in traces)
            {
                trace?.Dispose();
            }

            Metrics.Published(Stopwatch.GetElapsedTime(started));
        }
    }
}
