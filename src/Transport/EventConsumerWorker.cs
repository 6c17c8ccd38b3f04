using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Attribution.Transport;

/// <summary>What to do with an event whose handler threw.</summary>
public enum FailureAction
{
    /// <summary>Handle it again after a back-off (up to <see cref="EventWorkerOptions.MaxRetries"/>, then dead-letter).</summary>
    Retry,

    /// <summary>Publish it to the dead-letter topic with its error, commit past it, go on.</summary>
    DeadLetter,

    /// <summary>Stop the worker (and, by default, the host) without committing past it.</summary>
    Fatal,
}

/// <summary>Thrown by a handler to say "retrying may help" (the default classification retries it).</summary>
public sealed class TransientEventException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TransientEventException() { }

    /// <summary>Creates the exception.</summary>
    public TransientEventException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public TransientEventException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Thrown by a handler to say "this worker cannot go on" (the default classification stops the worker).</summary>
public sealed class FatalEventException : Exception
{
    /// <summary>Creates the exception.</summary>
    public FatalEventException() { }

    /// <summary>Creates the exception.</summary>
    public FatalEventException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public FatalEventException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Options of an <see cref="EventConsumerWorker"/>.</summary>
public sealed record EventWorkerOptions
{
    /// <summary>Topics to consume.</summary>
    public required IReadOnlyList<string> Topics { get; init; }

    /// <summary>Consumer group; instances of a service share it to split partitions.</summary>
    public required string GroupId { get; init; }

    /// <summary>Where poison events go; null makes a poison event fatal (it is never skipped silently).</summary>
    public string? DeadLetterTopic { get; init; }

    /// <summary>Events handled concurrently (one lane each; events with the same key share a lane, so stay in order).</summary>
    public int MaxInFlight { get; init; } = 8;

    /// <summary>Events queued per lane before the consume loop waits (back-pressure).</summary>
    public int LaneCapacity { get; init; } = 64;

    /// <summary>Retries of a transient failure before the event is dead-lettered.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>First retry back-off; doubles per attempt up to <see cref="MaxRetryBackoff"/>.</summary>
    public TimeSpan RetryBackoff { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest retry back-off.</summary>
    public TimeSpan MaxRetryBackoff { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Commit after this many handled events...</summary>
    public int CommitEvery { get; init; } = 500;

    /// <summary>...or after this long, whichever comes first.</summary>
    public TimeSpan CommitInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Where to start reading (Beginning rebuilds state from a compacted topic).</summary>
    public StartPosition Start { get; init; } = StartPosition.Committed;

    /// <summary>How long one poll waits before the loop checks commits and shutdown.</summary>
    public TimeSpan PollTimeout { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Throws <see cref="ArgumentException"/> that says what is wrong.</summary>
    public void Validate()
    {
        new ConsumerSettings { Topics = Topics, GroupId = GroupId }.Validate();
        if (DeadLetterTopic is not null)
        {
            TopicNames.Validate(DeadLetterTopic);
        }

        if (MaxInFlight is < 1 or > 1024 || LaneCapacity is < 1 or > 1_000_000 || MaxRetries < 0 || CommitEvery < 1)
        {
            throw new ArgumentException($"EventWorkerOptions out of range: MaxInFlight {MaxInFlight} (1..1024), LaneCapacity {LaneCapacity} (1..1e6), MaxRetries {MaxRetries} (>=0), CommitEvery {CommitEvery} (>=1).");
        }
    }
}

/// <summary>
/// Consume-handle-commit loop for a hosted service. Subclasses implement <see cref="HandleAsync"/> (and optionally
/// <see cref="Classify"/>). The consume loop runs on its own long-running thread; events are dispatched to
/// <see cref="EventWorkerOptions.MaxInFlight"/> lanes by key hash (per-key order, bounded in-flight work); an offset
/// is stored only once it and every earlier event of its partition are handled (or dead-lettered), and stored offsets
/// are committed every <see cref="EventWorkerOptions.CommitEvery"/> events / <see cref="EventWorkerOptions.CommitInterval"/>,
/// on rebalance (after draining) and at shutdown (drain, commit, close).
/// </summary>
public abstract class EventConsumerWorker : BackgroundService
{
    private readonly IEventLog _log;
    private readonly IEventProducer? _deadLetterProducer;
    private readonly object _trackLock = new();
    private readonly Dictionary<TopicPartition, PartitionProgress> _progress = [];
    private Exception? _fatal;
    private IEventConsumer? _consumer;
    private long _handled;
    private long _deadLettered;
    private IReadOnlyDictionary<TopicPartition, long> _lag = new Dictionary<TopicPartition, long>();

    /// <summary>Creates the worker. <paramref name="deadLetterProducer"/> is required when a dead-letter topic is set.</summary>
    protected EventConsumerWorker(IEventLog log, EventWorkerOptions options, ILogger logger, IEventProducer? deadLetterProducer = null)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        options.Validate();
        if (options.DeadLetterTopic is not null && deadLetterProducer is null)
        {
            throw new ArgumentException($"Worker {GetType().Name}: DeadLetterTopic '{options.DeadLetterTopic}' is set but no producer was given to publish dead letters.", nameof(deadLetterProducer));
        }

        _log = log;
        Options = options;
        Logger = logger;
        _deadLetterProducer = deadLetterProducer;
    }

    /// <summary>The worker's options.</summary>
    protected EventWorkerOptions Options { get; }

    /// <summary>The worker's logger.</summary>
    protected ILogger Logger { get; }

    /// <summary>Events handled successfully so far.</summary>
    public long HandledCount => Interlocked.Read(ref _handled);

    /// <summary>Events dead-lettered so far.</summary>
    public long DeadLetteredCount => Interlocked.Read(ref _deadLettered);

    /// <summary>
    /// Consumer lag per assigned partition, refreshed with every commit tick (<see cref="EventWorkerOptions.CommitInterval"/>):
    /// events appended to the partition that this worker has not finished handling (the end offset its consumer last
    /// learned, minus the lowest offset not yet handled, so events queued in lanes or in a batch count as lag).
    /// Partitions whose end offset is not known yet are absent. Thread-safe snapshot.
    /// </summary>
    public IReadOnlyDictionary<TopicPartition, long> PartitionLag => Volatile.Read(ref _lag);

    /// <summary>
    /// Handles one event durably (its effects must be persisted or published before it returns). Called concurrently for
    /// events of different lanes, never concurrently for events with the same key.
    /// </summary>
    protected abstract Task HandleAsync(EventRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// Classifies a handler failure. Default: <see cref="TransientEventException"/>, transient
    /// <see cref="EventLogException"/>, <see cref="TimeoutException"/> and <see cref="IOException"/> retry;
    /// <see cref="FatalEventException"/> and <see cref="OutOfMemoryException"/> are fatal; anything else is poison and
    /// dead-lettered (fatal when no dead-letter topic is configured).
    /// </summary>
    protected virtual FailureAction Classify(Exception error, EventRecord record, int attempt) => error switch
    {
        TransientEventException or TimeoutException or IOException or EventLogException { IsTransient: true } => FailureAction.Retry,
        FatalEventException or OutOfMemoryException => FailureAction.Fatal,
        _ => FailureAction.DeadLetter,
    };

    /// <summary>
    /// Called on the consume thread when partitions are assigned, before any of their events is dispatched (e.g. to
    /// re-read state another owner may have left for them). Must not block for long: the consume loop waits.
    /// </summary>
    protected virtual void OnPartitionsAssigned(IReadOnlyList<TopicPartition> partitions)
    {
    }

    /// <inheritdoc />
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => RunAsync(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var token = stop.Token;
        var name = GetType().Name;
        var deadLetters = Options.DeadLetterTopic is { } dlt ? new DeadLetterPublisher(_deadLetterProducer!, dlt) : null;
        // Subscribe first: if that fails there are no lanes left waiting.
        var consumer = _log.CreateConsumer(new ConsumerSettings
        {
            Topics = Options.Topics,
            GroupId = Options.GroupId,
            Start = Options.Start,
            PartitionsRevoked = revoked => DrainAndStore(revoked, token),
            PartitionsAssigned = OnPartitionsAssigned,
        });
        _consumer = consumer;
        var lanes = new Channel<EventRecord>[Options.MaxInFlight];
        var laneTasks = new Task[lanes.Length];
        for (var i = 0; i < lanes.Length; i++)
        {
            lanes[i] = Channel.CreateBounded<EventRecord>(new BoundedChannelOptions(Options.LaneCapacity) { SingleReader = true, SingleWriter = true });
            var reader = lanes[i].Reader;
            laneTasks[i] = Task.Run(() => RunLaneAsync(reader, deadLetters, stop, name), CancellationToken.None);
        }

        Logger.WorkerStarted(name, string.Join(",", Options.Topics), Options.GroupId);
        var sinceCommit = 0L;
        var lastCommit = Stopwatch.GetTimestamp();
        try
        {
            while (!token.IsCancellationRequested)
            {
                EventRecord? record;
                try
                {
                    record = consumer.Consume(Options.PollTimeout, token);
                }
                catch (OperationCanceledException e) when (e.CancellationToken == token)
                {
                    break;
                }

                if (record is not null)
                {
                    lock (_trackLock)
                    {
                        if (!_progress.TryGetValue(record.TopicPartition, out var p))
                        {
                            _progress[record.TopicPartition] = p = new PartitionProgress();
                        }

                        p.Dispatched(record.Offset);
                    }

                    var lane = record.Key.Length > 0
                        ? (Partitioner.Murmur2(record.Key) & 0x7fffffff) % lanes.Length
                        : record.Partition % lanes.Length;
                    try
                    {
                        // Blocks the consume thread while the lane is full: back-pressure up to the log.
                        await lanes[lane].Writer.WriteAsync(record, token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException e) when (e.CancellationToken == token)
                    {
                        break;
                    }

                    sinceCommit++;
                }

                if (sinceCommit >= Options.CommitEvery || Stopwatch.GetElapsedTime(lastCommit) >= Options.CommitInterval)
                {
                    StoreCompleted(consumer, null);
                    try
                    {
                        consumer.Commit();
                    }
                    catch (EventLogException e) when (e.IsTransient)
                    {
                        // Coordinator moving or unreachable (broker down): the stored offsets go with the next commit.
                        Logger.CommitFailed(Options.GroupId ?? name, e.Message);
                    }

                    sinceCommit = 0;
                    lastCommit = Stopwatch.GetTimestamp();
                    UpdateLag(consumer);
                }
            }
        }
        finally
        {
            // Drain: lanes finish the event in hand, skip the rest (not stored, so redelivered), then commit and close.
            await stop.CancelAsync().ConfigureAwait(false);
            foreach (var l in lanes)
            {
                l.Writer.TryComplete();
            }

            await Task.WhenAll(laneTasks).ConfigureAwait(false);
            StoreCompleted(consumer, null);
            consumer.Close();
            Logger.WorkerStopped(name, HandledCount, DeadLetteredCount);
        }

        if (_fatal is not null)
        {
            throw new InvalidOperationException($"Worker {name} stopped on a fatal error: {_fatal.Message}", _fatal);
        }
    }

    private async Task RunLaneAsync(ChannelReader<EventRecord> reader, DeadLetterPublisher? deadLetters, CancellationTokenSource stop, string name)
    {
        var token = stop.Token;
        await foreach (var record in reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            if (token.IsCancellationRequested)
            {
                continue;
            }

            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await HandleAsync(record, token).ConfigureAwait(false);
                    Interlocked.Increment(ref _handled);
                    Completed(record);
                    break;
                }
                catch (OperationCanceledException e) when (e.CancellationToken == token)
                {
                    break;
                }
                catch (Exception e)
                {
                    var action = Classify(e, record, attempt);
                    if (action == FailureAction.Retry && attempt > Options.MaxRetries)
                    {
                        action = FailureAction.DeadLetter;
                    }

                    if (action == FailureAction.DeadLetter && deadLetters is null)
                    {
                        action = FailureAction.Fatal;
                    }

                    if (action == FailureAction.Retry)
                    {
                        var delay = TimeSpan.FromTicks(Math.Min(Options.MaxRetryBackoff.Ticks, Options.RetryBackoff.Ticks << Math.Min(attempt - 1, 20)));
                        Logger.HandlerRetry(e, name, record.ToString(), attempt, delay.TotalMilliseconds);
                        try
                        {
                            await Task.Delay(delay, token).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException c) when (c.CancellationToken == token)
                        {
                            break;
                        }

                        continue;
                    }

                    if (action == FailureAction.DeadLetter)
                    {
                        try
                        {
                            await deadLetters!.PublishAsync(record, e, Options.GroupId, token).ConfigureAwait(false);
                            Interlocked.Increment(ref _deadLettered);
                            Logger.DeadLettered(name, record.ToString(), deadLetters.Topic, e.GetType().FullName ?? e.GetType().Name, e.Message);
                            Completed(record);
                            break;
                        }
                        catch (OperationCanceledException c) when (c.CancellationToken == token)
                        {
                            break;
                        }
                        catch (EventLogException dlqError)
                        {
                            e = new AggregateException($"Dead-lettering {record} to '{deadLetters!.Topic}' failed", e, dlqError);
                        }
                    }

                    Logger.WorkerFatal(e, name, record.ToString());
                    Interlocked.CompareExchange(ref _fatal, e, null);
                    await stop.CancelAsync().ConfigureAwait(false);
                    break;
                }
            }
        }
    }

    private void UpdateLag(IEventConsumer consumer)
    {
        var lag = new Dictionary<TopicPartition, long>();
        foreach (var tp in consumer.Assignment)
        {
            if (consumer.GetLocalWatermark(tp) is not { } mark)
            {
                continue;
            }

            long unhandled = mark.Position;
            lock (_trackLock)
            {
                if (_progress.TryGetValue(tp, out var p) && p.LowestInFlight is { } lowest)
                {
                    unhandled = Math.Min(unhandled, lowest);
                }
            }

            lag[tp] = Math.Max(0, mark.EndOffset - unhandled);
        }

        Volatile.Write(ref _lag, lag);
    }

    private void Completed(EventRecord record)
    {
        lock (_trackLock)
        {
            if (_progress.TryGetValue(record.TopicPartition, out var p))
            {
                p.Completed(record.Offset);
                Monitor.PulseAll(_trackLock);
            }
        }
    }

    /// <summary>Rebalance: wait until the revoked partitions' in-flight events are done, then store their offsets.</summary>
    private void DrainAndStore(IReadOnlyList<TopicPartition> revoked, CancellationToken token)
    {
        lock (_trackLock)
        {
            while (!token.IsCancellationRequested && revoked.Any(tp => _progress.TryGetValue(tp, out var p) && p.InFlightCount > 0))
            {
                Monitor.Wait(_trackLock, 50);
            }
        }

        // The log commits right after this returns; forget the partitions (a later owner resumes from that commit).
        if (_consumer is { } consumer)
        {
            StoreCompleted(consumer, revoked);
        }

        lock (_trackLock)
        {
            foreach (var tp in revoked)
            {
                _progress.Remove(tp);
            }
        }
    }

    private void StoreCompleted(IEventConsumer consumer, IReadOnlyList<TopicPartition>? only)
    {
        List<(TopicPartition Tp, long Next)> toStore = [];
        lock (_trackLock)
        {
            foreach (var (tp, p) in _progress)
            {
                if ((only is null || only.Contains(tp)) && p.TakeStorable() is { } next)
                {
                    toStore.Add((tp, next));
                }
            }
        }

        foreach (var (tp, next) in toStore)
        {
            try
            {
                consumer.StoreOffset(tp, next);
            }
            catch (EventLogException)
            {
                // No longer assigned (revoked or lost); its new owner resumes from the last commit.
                lock (_trackLock)
                {
                    _progress.Remove(tp);
                }
            }
        }
    }

    /// <summary>Per-partition progress: the lowest offset not yet handled bounds what may be stored.</summary>
    private sealed class PartitionProgress
    {
        private readonly SortedSet<long> _inFlight = [];
        private long _nextAfterDispatched = -1;
        private long _stored = -1;

        public int InFlightCount => _inFlight.Count;

        public long? LowestInFlight => _inFlight.Count > 0 ? _inFlight.Min : null;

        public void Dispatched(long offset)
        {
            _inFlight.Add(offset);
            _nextAfterDispatched = Math.Max(_nextAfterDispatched, offset + 1);
        }

        public void Completed(long offset) => _inFlight.Remove(offset);

        public long? TakeStorable()
        {
            var next = _inFlight.Count > 0 ? _inFlight.Min : _nextAfterDispatched;
            if (next <= _stored || next < 0)
            {
                return null;
            }

            _stored = next;
            return next;
        }
    }
}
