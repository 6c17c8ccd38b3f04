using Attribution.Attribution.Probes;
using Attribution.Contracts;
using Attribution.Engine.IO;
using Attribution.Transport;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Attribution.Scorer;

/// <summary>
/// The Scorer's index: follows the compacted probes topic from the beginning with a standalone reader, groups probes
/// by (run, step), and when a set holds all the example and source probes its headers announce and its checkpoint
/// reference (the CheckpointPublished copy the Simulator puts on the probes topic), loads θ (checksum verified) and swaps the new <see cref="AttributionModel"/> in
/// atomically. Scoring always uses <see cref="Current"/>, one consistent set.
/// </summary>
public sealed class ProbeIndex : IAsyncDisposable, IDisposable
{
    private readonly IEventLog _log;
    private readonly ScorerOptions _options;
    private readonly ILogger _logger;
    private readonly DeadLetterPublisher? _deadLetters;
    private readonly Dictionary<(string, long), PendingSet> _pending = [];
    private readonly HashSet<(string, long)> _built = [];
    private readonly Dictionary<(string, long), CheckpointPublished> _checkpoints = [];
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private Task? _follower;
    private volatile AttributionModel? _current;
    private volatile IQueryScorer? _scorer;

    /// <summary>Creates the index (call <see cref="Start"/>); a span index it cannot use is dead-lettered through <paramref name="producer"/>.</summary>
    public ProbeIndex(IEventLog log, IOptions<ScorerOptions> options, ILogger<ProbeIndex> logger, IEventProducer? producer = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _log = log;
        _options = options.Value;
        _logger = logger;
        _deadLetters = producer is null ? null : new DeadLetterPublisher(producer, Topics.DeadLetter);
    }

    /// <summary>The exact-span indexes published on the probes topic (<see cref="SpanIndexPublished"/>), by model version.</summary>
    public SpanIndexCatalog Spans { get; } = new();

    /// <summary>Span index references dead-lettered (unreadable, changed, oversized, malformed).</summary>
    public int SpanIndexesRejected { get; private set; }

    /// <summary>The live model, or null before the first complete probe set.</summary>
    public AttributionModel? Current => _current;

    /// <summary>
    /// What queries are scored with: the live probe set's readout, or the scorer given to <see cref="Serve"/> (the last
    /// one to go live wins); null before either.
    /// </summary>
    public IQueryScorer? Scorer => _scorer;

    /// <summary>
    /// Serves <paramref name="scorer"/>: a model whose attribution state was built outside the probes topic (a language
    /// model's method precomputed from its run). Queries are scored with it until
    /// the next probe set goes live.
    /// </summary>
    public void Serve(IQueryScorer scorer)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        _scorer = scorer;
        _logger.ScorerServed(scorer.Version, scorer.ExampleIds.Count, scorer.SourceIds.Count, scorer.Method);
        _ready.TrySetResult();
    }

    /// <summary>Waits for a live scorer (<see cref="Scorer"/>).</summary>
    public async Task<IQueryScorer> WaitScorerAsync(CancellationToken cancellationToken)
    {
        Start();
        await _ready.Task.WaitAsync(cancellationToken);
        return _scorer!;
    }

    /// <summary>Completes when a model is live.</summary>
    public Task Ready => _ready.Task;

    /// <summary>Probe sets swapped in so far.</summary>
    public int Swaps { get; private set; }

    /// <summary>The last problem with a probe set (null when none).</summary>
    public string? LastError { get; private set; }

    /// <summary>Raised (on the follower thread) when a model goes live.</summary>
    public event Action<AttributionModel>? Swapped;

    /// <summary>Starts following the probes topic (idempotent).</summary>
    public void Start()
    {
        lock (_pending)
        {
            _follower ??= Task.Factory.StartNew(Follow, TaskCreationOptions.LongRunning);
        }
    }

    /// <summary>Waits for a live model.</summary>
    public async Task<AttributionModel> WaitAsync(CancellationToken cancellationToken)
    {
        Start();
        await _ready.Task.WaitAsync(cancellationToken);
        return _current!;
    }

    private void Follow()
    {
        var token = _stop.Token;
        try
        {
            using var reader = _log.CreateConsumer(new ConsumerSettings { Topics = [Topics.Probes], Start = StartPosition.Beginning });
            while (!token.IsCancellationRequested)
            {
                if (reader.Consume(TimeSpan.FromMilliseconds(200), token) is { } record)
                {
                    Add(record, token);
                }
            }
        }
        catch (OperationCanceledException e) when (e.CancellationToken == token)
        {
        }
        catch (Exception e)
        {
            LastError = e.Message;
            _logger.IndexFailed(e);
            _ready.TrySetException(e);
        }
    }

    private void Add(EventRecord record, CancellationToken token)
    {
        if (record.Value.Length == 0)
        {
            return;
        }

        if (record.GetHeaderString(EventHeaders.EventType) == EventTypes.SpanIndexPublished)
        {
            AddSpanIndex(record, token);
            return;
        }

        if (record.GetHeaderString(EventHeaders.EventType) == EventTypes.CheckpointPublished)
        {
            try
            {
                var c = EventCodecs.Checkpoints.Decode(record.Value);
                _checkpoints[(c.RunId, c.Step)] = c;
                TryBuild((c.RunId, c.Step), token);
            }
            catch (EventContractException e)
            {
                _logger.ProbeSkipped(record.ToString(), e.Message);
            }

            return;
        }

        InfluenceProbe probe;
        try
        {
            probe = EventCodecs.Probes.Decode(record.Value);
            _ = ProbeCodec.FormatOf(probe);
        }
        catch (Exception e) when (e is EventContractException or ProbeFormatException)
        {
            _logger.ProbeSkipped(record.ToString(), e.Message);
            return;
        }

        if ((_options.RunId is { } run && probe.RunId != run) || _built.Contains((probe.RunId, probe.Step)))
        {
            return;
        }

        var key = (probe.RunId, probe.Step);
        if (!_pending.TryGetValue(key, out var set) || set.SetExamples != probe.SetExamples || set.SetSources != probe.SetSources)
        {
            _pending[key] = set = new PendingSet(probe.SetExamples, probe.SetSources);
        }

        var units = probe.Subject == ProbeSubject.Example ? set.Examples : set.Sources;
        units[probe.SubjectId] = probe;
        TryBuild(key, token);
    }

    /// <summary>Loads a published span index; one that cannot be used is dead-lettered (the Scorer serves on without spans).</summary>
    private void AddSpanIndex(EventRecord record, CancellationToken token)
    {
        SpanIndexPublished reference;
        try
        {
            reference = EventCodecs.SpanIndexes.Decode(record.Value);
            if (_options.RunId is { } run && reference.RunId != run)
            {
                return;
            }

            var watch = System.Diagnostics.Stopwatch.StartNew();
            var loaded = SpanIndexCatalog.Load(reference, _options.Contamination.MaxSpanIndexBytes);
            Spans.Add(loaded);
            _logger.SpanIndexLoaded(loaded.Version, loaded.Index.DocumentCount, loaded.Index.TokenCount, watch.Elapsed.TotalSeconds);
        }
        catch (Exception e) when (e is EventContractException or SpanIndexLoadException)
        {
            SpanIndexesRejected++;
            LastError = e.Message;
            _logger.SpanIndexRejected(record.ToString(), e.Message);
            _deadLetters?.PublishAsync(record, e, "scorer-index", token).GetAwaiter().GetResult();
        }
    }

    /// <summary>Builds a set once all its probes and its checkpoint reference (any order: different partitions) are in.</summary>
    private void TryBuild((string RunId, long Step) key, CancellationToken token)
    {
        if (_built.Contains(key) || !_pending.TryGetValue(key, out var set) || !_checkpoints.TryGetValue(key, out var checkpoint)
            || set.Examples.Count != set.SetExamples || set.Sources.Count != set.SetSources)
        {
            return;
        }

        _pending.Remove(key);
        _built.Add(key);
        Build(key.RunId, key.Step, checkpoint, set);
    }

    private void Build(string runId, long step, CheckpointPublished checkpoint, PendingSet set)
    {
        var version = $"{runId}@{step}";
        var watch = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var examples = set.Examples.OrderBy(p => p.Key).Select(p => p.Value).ToArray();
            var sources = set.Sources.OrderBy(p => p.Key).Select(p => p.Value).ToArray();
            var exampleFormat = ProbeCodec.FormatOf(examples[0]);
            var sourceFormat = sources.Length > 0 ? ProbeCodec.FormatOf(sources[0]) : new ProbeFormat(exampleFormat.Widths, 0, ProbePrecision.Float32);
            if (examples.Any(p => !ProbeCodec.FormatOf(p).SameAs(exampleFormat)) || sources.Any(p => !ProbeCodec.FormatOf(p).SameAs(sourceFormat))
                || sourceFormat.Architecture != exampleFormat.Architecture)
            {
                throw new ProbeFormatException("the set mixes probe formats; re-run the Simulator for this checkpoint with one configuration.");
            }

            var theta = CheckpointStore.LoadFlat(checkpoint.Uri, checkpoint.Checksum, exampleFormat.Architecture);
            var model = new AttributionModel(runId, step, theta, exampleFormat, [.. examples.Select(p => p.SubjectId)], [.. examples.Select(p => p.Factors)],
                sourceFormat, [.. sources.Select(p => p.SubjectId)], [.. sources.Select(p => p.Factors)], _options.InputBasisEnergy);
            _current = model;
            _scorer = new AttributionModelScorer(model);
            Swaps++;
            LastError = null;
            _logger.ModelSwapped(version, model.ExampleIds.Length, model.SourceIds.Length, exampleFormat.ToString(), watch.Elapsed.TotalSeconds);
            _ready.TrySetResult();
            Swapped?.Invoke(model);
        }
        catch (Exception e) when (e is ProbeFormatException or CheckpointException or ArgumentException)
        {
            LastError = $"probe set {version}: {e.Message}";
            _logger.ModelRejected(version, e.Message);
        }
    }

    /// <inheritdoc />
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_follower is { } f)
        {
            await f;
        }

    }

    private sealed class PendingSet(long setExamples, long setSources)
    {
        public long SetExamples { get; } = setExamples;

        public long SetSources { get; } = setSources;

        public Dictionary<long, InfluenceProbe> Examples { get; } = [];

        public Dictionary<long, InfluenceProbe> Sources { get; } = [];
    }
}
