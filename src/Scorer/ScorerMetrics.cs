using System.Diagnostics.Metrics;

namespace Attribution.Scorer;

/// <summary>
/// Counters and a latency histogram of the Scorer (thread-safe), for the demo and health checks, also published as
/// System.Diagnostics.Metrics instruments of the meter <see cref="MeterName"/> (exported by OpenTelemetry):
/// <c>pipeline.scorer.queries</c>, <c>.latency</c> (ms histogram), <c>.batches</c>, <c>.batch_size</c> (histogram of
/// queries per readout), <c>.alerts</c>, <c>.dead_letters</c>, <c>.duplicates</c>, <c>.consumer_lag</c> (queries not yet
/// handled, per queries partition; see <see cref="ObserveLag"/>), <c>.checkpoints</c> (probe sets the live scores average:
/// 1, or up to <c>Scorer:Checkpoints</c>; 0 before the first; see <see cref="ObserveCheckpoints"/>). Every measurement carries the tag
/// <c>scorer.instance</c> = <see cref="Instance"/>: exporters listen by meter name across the whole process, so two
/// Scorers in one process (a test run, the bench's two hosts) would otherwise report one series under the same name, each
/// collection overwriting the other's value.
/// </summary>
public sealed class ScorerMetrics : IDisposable
{
    /// <summary>The meter of the Scorer's instruments.</summary>
    public const string MeterName = "Attribution.Scorer";

    /// <summary>The tag that tells this instance's measurements from another Scorer's in the same process.</summary>
    public const string InstanceTag = "scorer.instance";

    private readonly Meter _meter = new(MeterName);
    private readonly KeyValuePair<string, object?> _instance;
    private readonly Histogram<double> _latency;
    private readonly Histogram<int> _batchSize;
    private Func<IReadOnlyDictionary<Transport.TopicPartition, long>> _lag = () => new Dictionary<Transport.TopicPartition, long>();
    private Func<int> _checkpoints = () => 0;

    private const int Reservoir = 65_536;
    private readonly long[] _latencies = new long[Reservoir];
    private readonly Lock _lock = new();
    private long _recorded;
    private long _scored;
    private long _duplicates;
    private long _alerts;
    private long _batches;
    private long _rejected;
    private long _rerouted;
    private long _computeTicks;
    private long _readoutTicks;
    private long _publishTicks;
    private long _batchCpuNanoseconds;
    private long _queueWaitTicks;

    /// <summary>Creates the counters and their instruments.</summary>
    public ScorerMetrics()
    {
        Instance = Guid.NewGuid().ToString("N")[..12];
        _instance = new(InstanceTag, Instance);
        _latency = _meter.CreateHistogram<double>("pipeline.scorer.latency", "ms", "Query appended to the log -> its attribution acknowledged",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] });
        _meter.CreateObservableCounter("pipeline.scorer.queries", () => Tagged(QueriesScored), "{query}", "Attributions published");
        _meter.CreateObservableCounter("pipeline.scorer.batches", () => Tagged(Batches), "{batch}", "Batched readouts run");
        _batchSize = _meter.CreateHistogram<int>("pipeline.scorer.batch_size", "{query}", "Queries per batched readout",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
        _meter.CreateObservableGauge("pipeline.scorer.consumer_lag", () => _lag().Select(kv => new Measurement<long>(kv.Value,
            new KeyValuePair<string, object?>("topic", kv.Key.Topic), new KeyValuePair<string, object?>("partition", kv.Key.Partition), _instance)),
            "{query}", "Queries appended to a queries partition that this Scorer has not finished (lag of its consumer group member)");
        _meter.CreateObservableGauge("pipeline.scorer.checkpoints", () => new Measurement<int>(_checkpoints(), _instance), "{checkpoint}",
            "Checkpoints whose probe sets the live scores average (fewer than Scorer:Checkpoints while the run has fewer sets)");
        _meter.CreateObservableCounter("pipeline.scorer.alerts", () => Tagged(AlertsRaised), "{alert}", "Contamination alerts raised");
        _meter.CreateObservableCounter("pipeline.scorer.dead_letters", () => Tagged(QueriesRejected), "{query}", "Poison queries dead-lettered");
        _meter.CreateObservableCounter("pipeline.scorer.duplicates", () => Tagged(DuplicatesSkipped), "{query}", "Queries skipped as already attributed");
    }

    /// <summary>This instance's id, the value of its <see cref="InstanceTag"/> tag (12 hex digits, new per instance).</summary>
    public string Instance { get; }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();

    private Measurement<long> Tagged(long value) => new(value, _instance);

    /// <summary>This instance's meter (tests listen to it alone).</summary>
    internal Meter Meter => _meter;

    /// <summary>Attributions published.</summary>
    public long QueriesScored => Interlocked.Read(ref _scored);

    /// <summary>Queries skipped because they already had an attribution.</summary>
    public long DuplicatesSkipped => Interlocked.Read(ref _duplicates);

    /// <summary>
    /// Queries that arrived off their id's home partition (no key, or an explicit partition) and were re-keyed onto it;
    /// each one's outcome is that of its re-keyed copy.
    /// </summary>
    public long QueriesRerouted => Interlocked.Read(ref _rerouted);

    /// <summary>Queries rejected as poison (sent to the dead-letter topic): undecodable, mis-keyed, or invalid.</summary>
    public long QueriesRejected => Interlocked.Read(ref _rejected);

    /// <summary>Contamination alerts raised.</summary>
    public long AlertsRaised => Interlocked.Read(ref _alerts);

    /// <summary>Batched readouts run.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Time the batcher spent on batches (validation, dedup admission, readout, top-k, results), summed over batches.</summary>
    public TimeSpan ComputeTime => TimeSpan.FromTicks(Interlocked.Read(ref _computeTicks));

    /// <summary>Of <see cref="ComputeTime"/>, the batched readout alone (<see cref="AttributionModel.Score"/>).</summary>
    public TimeSpan ReadoutTime => TimeSpan.FromTicks(Interlocked.Read(ref _readoutTicks));

    /// <summary>Time batches spent being published (Arrow encoding, alerts, attributions until acknowledged), summed over batches.</summary>
    public TimeSpan PublishTime => TimeSpan.FromTicks(Interlocked.Read(ref _publishTicks));

    /// <summary>
    /// CPU time of the batcher thread per batch, summed: what <see cref="ComputeTime"/> covers, in thread CPU time, so a
    /// thread that waits for a core adds nothing (Linux; zero elsewhere). Encoding and publishing run on the pool.
    /// </summary>
    public TimeSpan BatchCpuTime => TimeSpan.FromTicks(Interlocked.Read(ref _batchCpuNanoseconds) / 100);

    /// <summary>
    /// Time queries waited between being handed to the batcher and their batch's processing (queue behind earlier
    /// batches plus the batch window), summed over queries: with <see cref="ComputeTime"/> and
    /// <see cref="PublishTime"/> it splits a query's time in the Scorer into waiting and work.
    /// </summary>
    public TimeSpan QueueWaitTime => TimeSpan.FromTicks(Interlocked.Read(ref _queueWaitTicks));

    /// <summary>Mean queries per batch.</summary>
    public double MeanBatchSize => Batches == 0 ? 0 : (double)QueriesScored / Batches;

    /// <summary>Median latency (arrival in the log → attribution acknowledged) over the last 65,536 queries, in µs.</summary>
    public long LatencyP50Micros => Percentile(0.50);

    /// <summary>99th-percentile latency over the last 65,536 queries, in µs.</summary>
    public long LatencyP99Micros => Percentile(0.99);

    /// <summary>The <paramref name="q"/>-quantile (0..1) of recent latencies in µs (0 when none).</summary>
    public long Percentile(double q)
    {
        long[] copy;
        lock (_lock)
        {
            copy = _latencies[..(int)Math.Min(_recorded, Reservoir)];
        }

        if (copy.Length == 0)
        {
            return 0;
        }

        Array.Sort(copy);
        return copy[(int)Math.Clamp(Math.Ceiling(q * copy.Length) - 1, 0, copy.Length - 1)];
    }

    internal void Scored(long latencyMicros)
    {
        Interlocked.Increment(ref _scored);
        _latency.Record(latencyMicros / 1000.0, _instance);
        lock (_lock)
        {
            _latencies[_recorded++ % Reservoir] = latencyMicros;
        }
    }

    internal void Duplicate() => Interlocked.Increment(ref _duplicates);

    internal void Rerouted() => Interlocked.Increment(ref _rerouted);

    internal void Rejected() => Interlocked.Increment(ref _rejected);

    internal void Alert() => Interlocked.Increment(ref _alerts);

    internal void Batch() => Interlocked.Increment(ref _batches);

    /// <summary>A batch of <paramref name="size"/> queries went to the readout (the batch-size histogram).</summary>
    internal void BatchScored(int size) => _batchSize.Record(size, _instance);

    /// <summary>Where the consumer lag gauge reads from (the Scorer's consume loop: <c>EventConsumerWorker.PartitionLag</c>).</summary>
    internal void ObserveLag(Func<IReadOnlyDictionary<Transport.TopicPartition, long>> lag) => _lag = lag;

    /// <summary>Where the checkpoints gauge reads from (the index's live scorer).</summary>
    internal void ObserveCheckpoints(Func<int> checkpoints) => _checkpoints = checkpoints;

    /// <summary>Checkpoints whose probe sets the live scores average (0 before the first set).</summary>
    public int CheckpointsServed => _checkpoints();

    /// <summary>The consumer lag per queries partition, as the gauge reports it.</summary>
    public IReadOnlyDictionary<Transport.TopicPartition, long> ConsumerLag => _lag();

    internal void Computed(TimeSpan elapsed) => Interlocked.Add(ref _computeTicks, elapsed.Ticks);

    internal void QueueWait(TimeSpan elapsed) => Interlocked.Add(ref _queueWaitTicks, elapsed.Ticks);

    internal void ReadOut(TimeSpan elapsed) => Interlocked.Add(ref _readoutTicks, elapsed.Ticks);

    internal void Published(TimeSpan elapsed) => Interlocked.Add(ref _publishTicks, elapsed.Ticks);

    internal void BatchCpu(long nanoseconds) => Interlocked.Add(ref _batchCpuNanoseconds, nanoseconds);
}
