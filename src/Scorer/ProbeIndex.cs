using Attribution.Attribution;
using Attribution.Attribution.Kernels;
using Attribution.Attribution.Probes;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.IO;
using Attribution.Engine.Models;
using Attribution.Transport;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Attribution.Scorer;

/// <summary>
/// The Scorer's index: follows the compacted probes topic from the beginning with a standalone reader, groups probes
/// by (run, step), and when a set holds all the probes its headers announce (forward-only: examples only; a source's
/// score is the sum of its examples', each example's source read from the run's batches) and its checkpoint
/// reference (the CheckpointPublished copy the Simulator puts on the probes topic), loads θ (checksum verified) and
/// swaps the new scorer in atomically: an MLP set becomes an <see cref="AttributionModel"/>; a language model's set is
/// imported into the forward-only method object (<see cref="IProbeSetMethod.ImportState"/>, the one <c>attribute</c>
/// and <c>eval</c> score with) and served by a <see cref="LanguageModelScorer"/>. Scoring always uses
/// <see cref="Scorer"/>, one consistent set.
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
    private readonly Dictionary<string, SortedDictionary<long, (CheckpointPublished Checkpoint, long SetExamples)>> _complete = [];
    private readonly Dictionary<(string, long), AttributionModel> _held = [];
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private Task? _follower;
    private volatile AttributionModel? _current;
    private volatile IQueryScorer? _scorer;
    private volatile FlaggedItems? _flagged;

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

    /// <summary>The live image-classifier model, or null before the first complete MLP probe set (or while a language model is live).</summary>
    public AttributionModel? Current => _current;

    /// <summary>What queries are scored with: the live probe set's scorer (an MLP's or a language model's); null before the first.</summary>
    public IQueryScorer? Scorer => _scorer;

    /// <summary>
    /// The flagged training items of the live image model (<c>FlaggedExamples</c>, <c>FlaggedSources</c>: their inputs
    /// from the run's batches and their self-influence under its readout), measured before the model goes live; null for
    /// a language model or when nothing is flagged. Use it only when its <see cref="FlaggedItems.Version"/> is the scorer's.
    /// </summary>
    public FlaggedItems? Flagged => _flagged;

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

    /// <summary>Starts following the probes topic (idempotent).</summary>
    public void Start()
    {
        lock (_pending)
        {
            _follower ??= Task.Factory.StartNew(Follow, TaskCreationOptions.LongRunning);
        }
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
            if (!IsLanguageModel(probe.Architecture) && probe.SetShared == 0)
            {
                _ = ProbeCodec.FormatOf(probe);
            }
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
        if (!_pending.TryGetValue(key, out var set) || set.SetExamples != probe.SetExamples || set.SetSources != probe.SetSources || set.SetShared != probe.SetShared)
        {
            _pending[key] = set = new PendingSet(probe.SetExamples, probe.SetSources, probe.SetShared);
        }

        var units = probe.Subject switch { ProbeSubject.Example => set.Examples, ProbeSubject.Source => set.Sources, _ => set.Shared };
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
            || set.Examples.Count != set.SetExamples || set.Sources.Count != set.SetSources || set.Shared.Count != set.SetShared)
        {
            return;
        }

        _pending.Remove(key);
        _built.Add(key);
        Build(key.RunId, key.Step, checkpoint, set, token);
    }

    private static bool IsLanguageModel(string architecture) => architecture.StartsWith("gpt:", StringComparison.Ordinal);

    private void Build(string runId, long step, CheckpointPublished checkpoint, PendingSet set, CancellationToken token)
    {
        var version = $"{runId}@{step}";
        var watch = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var examples = set.Examples.OrderBy(p => p.Key).Select(p => p.Value).ToArray();
            var sources = set.Sources.OrderBy(p => p.Key).Select(p => p.Value).ToArray();
            var shared = SharedChunks.Join([.. set.Shared.OrderBy(p => p.Key).Select(p => (p.Value.Tensors, p.Value.Factors))]);
            if (IsLanguageModel(examples[0].Architecture))
            {
                if (_options.Checkpoints > 1)
                {
                    throw new ArgumentException($"Scorer:Checkpoints = {_options.Checkpoints} averages an MLP's exact spectral sets; this is a language model's set ({examples[0].Architecture}): set Scorer:Checkpoints to 1.");
                }

                var lm = BuildLanguageModel(version, checkpoint, examples, sources, shared, token);
                GoLive(lm, null, null, version, lm.ExampleIds.Count, lm.SourceIds.Count, $"{lm.MethodDescription} over {examples[0].Architecture}, {examples[0].Tensors.Count} tensors at rank {examples[0].Rank}", watch);
                return;
            }

            if (set.SetShared > 0 && _options.Method == "forward-only" && ResponseSet.DirectionCountOf(examples[0].Tensors) > 0)
            {
                // Spectral forward-only on an MLP in its exact form: every example's gradient factors and Ritz
                // coefficients, the Ritz vectors once (shared chunks), loaded as eval and attribute hold them.
                var exact = BuildExact(runId, step, checkpoint, examples, shared, token);
                if (_options.Checkpoints > 1)
                {
                    var ensemble = BuildEnsemble(exact, checkpoint, set.SetExamples, token);
                    GoLive(ensemble, exact, MeasureFlagged(ensemble, runId, step, token), version, exact.ExampleIds.Length, exact.SourceIds.Length,
                        $"exact spectral responses over {examples[0].Architecture} averaged over {ensemble.Members.Count} of Scorer:Checkpoints = {_options.Checkpoints} checkpoints (steps {string.Join(", ", ensemble.Members.Select(m => m.Step))}; {ensemble.StateBytes / 1e6:F1} MB of responses held, {exact.StateBytes / 1e6:F1} MB per set)",
                        watch);
                    return;
                }

                var exactScorer = new AttributionModelScorer(exact);
                GoLive(exactScorer, exact, MeasureFlagged(exactScorer, runId, step, token), version, exact.ExampleIds.Length, exact.SourceIds.Length,
                    $"exact spectral responses over {examples[0].Architecture} ({exact.Examples.DirectionCount} shared directions in {set.SetShared} chunks)", watch);
                return;
            }

            if (_options.Checkpoints > 1)
            {
                throw new ArgumentException($"Scorer:Checkpoints = {_options.Checkpoints} averages an MLP's exact spectral sets (forward-only with shared directions, the Simulator's default); this set is in another form (dense rank-r probes or another method's state): set Scorer:Checkpoints to 1, or Simulator:Propagation to spectral.");
            }

            if (set.SetShared > 0 || _options.Method != "forward-only")
            {
                var served = BuildImageMethod(version, checkpoint, examples, sources, shared, token);
                GoLive(served, null, MeasureFlagged(served, runId, step, token), version, served.ExampleIds.Count, served.SourceIds.Count, $"{served.Method} over {examples[0].Architecture}, {shared.Count} shared tensors", watch);
                return;
            }

            var exampleFormat = ProbeCodec.FormatOf(examples[0]);
            if (examples.Any(p => !ProbeCodec.FormatOf(p).SameAs(exampleFormat)))
            {
                throw new ProbeFormatException("the set mixes probe formats; re-run the Simulator for this checkpoint with one configuration.");
            }

            var theta = CheckpointStore.LoadFlat(checkpoint.Uri, checkpoint.Checksum, exampleFormat.Architecture);
            var (sourceIds, exampleSources) = ExampleSources(checkpoint, examples, sources, token);
            var model = new AttributionModel(runId, step, theta, exampleFormat, [.. examples.Select(p => p.SubjectId)], [.. examples.Select(p => p.Factors)],
                sourceIds, exampleSources, _options.InputBasisEnergy);
            var scorer = new AttributionModelScorer(model);
            GoLive(scorer, model, MeasureFlagged(scorer, runId, step, token), version, model.ExampleIds.Length, model.SourceIds.Length, exampleFormat.ToString(), watch);
        }
        catch (Exception e) when (e is ProbeFormatException or CheckpointException or ArgumentException or EventContractException)
        {
            LastError = $"probe set {version}: {e.Message}";
            _logger.ModelRejected(version, e.Message);
        }
    }

    /// <summary>
    /// The checkpoint ensemble (<see cref="ScorerOptions.Checkpoints"/> &gt; 1) ending at <paramref name="newest"/>: the
    /// run's complete sets over the same training set (as eval's checkpoints all are), up to its step, oldest first; the
    /// members chosen by <see cref="CheckpointEnsembleScorer.Select"/>. Sets chosen are held built; one no longer chosen
    /// is dropped (J × one set in memory) and, when the spread names it again, re-read from the compacted probes topic.
    /// </summary>
    private CheckpointEnsembleScorer BuildEnsemble(AttributionModel newest, CheckpointPublished checkpoint, long setExamples, CancellationToken token)
    {
        if (!_complete.TryGetValue(newest.RunId, out var complete))
        {
            _complete[newest.RunId] = complete = [];
        }

        complete[newest.Step] = (checkpoint, setExamples);
        var saved = complete.Where(c => c.Key <= newest.Step && c.Value.SetExamples == setExamples).Select(c => c.Key).ToArray();
        var chosen = CheckpointEnsembleScorer.Select(_options.Checkpoints, saved.Length).Select(i => saved[i]).ToArray();
        var members = new List<AttributionModel>(chosen.Length);
        foreach (var step in chosen)
        {
            members.Add(step == newest.Step ? newest
                : _held.TryGetValue((newest.RunId, step), out var held) ? held
                : Reread(newest.RunId, step, complete[step].Checkpoint, token));
        }

        _held.Clear();
        foreach (var m in members)
        {
            _held[(m.RunId, m.Step)] = m;
        }

        return new CheckpointEnsembleScorer(members, _options.Checkpoints);
    }

    /// <summary>A set built earlier and dropped, read again from the probes topic (compacted: its probes are kept).</summary>
    private AttributionModel Reread(string runId, long step, CheckpointPublished checkpoint, CancellationToken token)
    {
        var prefix = $"{runId}/{step}/";
        var examples = new Dictionary<long, InfluenceProbe>();
        var shared = new Dictionary<long, InfluenceProbe>();
        static bool IsProbe(EventRecord r) => r.GetHeaderString(EventHeaders.EventType) is not (EventTypes.CheckpointPublished or EventTypes.SpanIndexPublished);
        foreach (var r in TopicReader.ReadToEndAsync(_log, Topics.Probes, r => r.Value.Length > 0 && r.KeyString.StartsWith(prefix, StringComparison.Ordinal) && IsProbe(r), token).GetAwaiter().GetResult())
        {
            var probe = EventCodecs.Probes.Decode(r.Value);
            (probe.Subject == ProbeSubject.Shared ? shared : examples)[probe.SubjectId] = probe;
        }

        var exampleProbes = examples.OrderBy(p => p.Key).Select(p => p.Value).ToArray();
        if (exampleProbes.Length == 0 || exampleProbes.Length != exampleProbes[0].SetExamples || shared.Count != exampleProbes[0].SetShared)
        {
            throw new ArgumentException($"probe set {runId}@{step}, averaged with Scorer:Checkpoints = {_options.Checkpoints}, is no longer complete on '{Topics.Probes}' ({exampleProbes.Length} example probes, {shared.Count} shared chunks); re-run the Simulator for it.");
        }

        var joined = SharedChunks.Join([.. shared.OrderBy(p => p.Key).Select(p => (p.Value.Tensors, p.Value.Factors))]);
        return BuildExact(runId, step, checkpoint, exampleProbes, joined, token);
    }

    /// <summary>The flagged items of an image model about to go live (<see cref="Flagged"/>); one that cannot be read is logged and left out.</summary>
    // The one place a built set goes live: its flagged items first, then the model and the scorer queries read.
    private void GoLive(IQueryScorer scorer, AttributionModel? current, FlaggedItems? flagged, string version, int examples, int sources, string description, System.Diagnostics.Stopwatch watch)
    {
        _flagged = flagged;
        _current = current;
        _scorer = scorer;
        Swaps++;
        LastError = null;
        _logger.ModelSwapped(version, examples, sources, description, watch.Elapsed.TotalSeconds);
        _ready.TrySetResult();
    }

    private FlaggedItems? MeasureFlagged(IQueryScorer scorer, string runId, long step, CancellationToken token)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var inputs = FlaggedItems.ReadInputsAsync(_log, runId, step, _options.FlaggedExamples.ToHashSet(), _options.FlaggedSources.ToHashSet(),
                _options.Contamination.MaxFlaggedInputs, token).GetAwaiter().GetResult();
            var flagged = inputs is null ? null : FlaggedItems.Measure(scorer, inputs);
            if (flagged is not null)
            {
                _logger.FlaggedItemsLoaded(scorer.Version, flagged.Inputs.Count, flagged.Measured, watch.Elapsed.TotalSeconds);
            }

            return flagged;
        }
        catch (Exception e) when (e is ArgumentException or EventContractException)
        {
            _logger.FlaggedItemsRejected(scorer.Version, e.Message);
            return null;
        }
    }

    /// <summary>
    /// A language model's probe set as a served method: θ from the checkpoint store, the units' factors imported into
    /// forward-only (<see cref="IProbeSetMethod.ImportState"/>), each document's source from the run's training
    /// batches (a probe names its unit, not the unit's source), the tokenizer the recipe names, and the sources' names
    /// from the corpus the recipe names when it is installed here (their ids otherwise).
    /// </summary>
    private LanguageModelScorer BuildLanguageModel(string version, CheckpointPublished checkpoint, InfluenceProbe[] examples, InfluenceProbe[] sources, IReadOnlyList<StateTensor> shared, CancellationToken token)
    {
        var first = examples[0];
        var recipe = checkpoint.Recipe ?? throw new ArgumentException("its checkpoint event carries no recipe (tokenizer, corpus); re-publish the run with the current Ingest.");
        if (recipe.Architecture != first.Architecture)
        {
            throw new ArgumentException($"the probes are of {first.Architecture} but the checkpoint is {recipe.Architecture}.");
        }

        var tokenizer = recipe.Tokenizer is { Length: > 0 } name && Tokenizers.Names.Contains(name) ? Tokenizers.Create(name)
            : throw new ArgumentException($"the checkpoint's recipe names tokenizer '{recipe.Tokenizer}'; known: {string.Join(", ", Tokenizers.Names)}.");
        var config = CheckpointStore.ParseGpt(first.Architecture);
        var theta = CheckpointStore.LoadFlat(checkpoint.Uri, checkpoint.Checksum, first.Architecture);
        var (sourceIds, exampleSources) = ExampleSources(checkpoint, examples, sources, token);
        var method = Import(first.Architecture, theta, examples, sources, shared, sourceIds.Length, exampleSources);
        return new LanguageModelScorer(version, method, config, tokenizer, [.. examples.Select(p => p.SubjectId)], exampleSources, sourceIds, SourceNames(recipe.Dataset, sourceIds));
    }

    /// <summary>An MLP's forward-only set in the exact spectral form: θ from the checkpoint store, each example's source from the run's batches (<see cref="AttributionModel.FromExact"/>).</summary>
    private AttributionModel BuildExact(string runId, long step, CheckpointPublished checkpoint, InfluenceProbe[] examples, IReadOnlyList<StateTensor> shared, CancellationToken token)
    {
        var theta = CheckpointStore.LoadFlat(checkpoint.Uri, checkpoint.Checksum, examples[0].Architecture);
        var (sourceIds, exampleSources) = ExampleSources(checkpoint, examples, [], token);
        return AttributionModel.FromExact(runId, step, theta, examples, shared, sourceIds, exampleSources, _options.InputBasisEnergy);
    }

    /// <summary>
    /// An image classifier's probe set of a method other than the forward-only readout (<c>Scorer:Method</c>, e.g.
    /// STRIDE) as a served method: θ from the checkpoint store, the state imported into the method object
    /// (<see cref="IProbeSetMethod.ImportState"/>), each example's source from the run's training batches.
    /// </summary>
    private ImageMethodScorer BuildImageMethod(string version, CheckpointPublished checkpoint, InfluenceProbe[] examples, InfluenceProbe[] sources, IReadOnlyList<StateTensor> shared, CancellationToken token)
    {
        var first = examples[0];
        var theta = CheckpointStore.LoadFlat(checkpoint.Uri, checkpoint.Checksum, first.Architecture);
        var (sourceIds, exampleSources) = ExampleSources(checkpoint, examples, sources, token);
        var method = Import(first.Architecture, theta, examples, sources, shared, sourceIds.Length, exampleSources);
        var model = CheckpointStore.Create(first.Architecture) as Mlp ?? throw new ArgumentException($"{first.Architecture} is not an image classifier (mlp:<widths>).");
        model.LoadFrom(theta);
        return new ImageMethodScorer(version, method, model, [.. examples.Select(p => p.SubjectId)], exampleSources, sourceIds);
    }

    /// <summary>
    /// The served method (<c>Scorer:Method</c>) rebuilt from a set's probes: every example (and source) probe in one
    /// layout, shared tensors joined from their chunks. A set of another method is refused saying which to serve.
    /// </summary>
    private IProbeSetMethod Import(string architecture, float[] theta, InfluenceProbe[] examples, InfluenceProbe[] sources, IReadOnlyList<StateTensor> shared, int sourceCount, int[] exampleSources)
    {
        var first = examples[0];
        var exampleLayout = new UnitLayout(first.Architecture, first.Rank, first.Tensors, first.Precision);
        var sourceLayout = sources.Length > 0 ? new UnitLayout(sources[0].Architecture, sources[0].Rank, sources[0].Tensors, sources[0].Precision) : exampleLayout;
        if (examples.Any(p => !ProbeCodec.IsIn(p, exampleLayout)) || sources.Any(p => !ProbeCodec.IsIn(p, sourceLayout)) || sourceLayout.Architecture != exampleLayout.Architecture)
        {
            throw new ProbeFormatException("the set mixes probe layouts; re-run the Simulator for this checkpoint with one configuration.");
        }

        var method = MethodFactory.CreateServed(_options.Method);
        if ((shared.Count > 0) == (method.Name == "forward-only"))
        {
            throw new ArgumentException($"the set {(shared.Count > 0 ? "carries a method's shared state (e.g. STRIDE operators)" : "holds forward-only probes")} but Scorer:Method is '{_options.Method}'; serve the method the Simulator publishes (Simulator:Method).");
        }

        if (method.Name == "forward-only")
        {
            // Forward-only as configured for serving (Scorer:Normalize: raw or relative influence; Scorer:Compress: the
            // readout over a basis fitted here from the set). A source's score is the sum of its examples': source
            // probes of older Simulators (simulated source units) are not read.
            var readout = new Dictionary<string, string> { ["normalize"] = _options.Normalize };
            if (_options.Compress > 0)
            {
                readout["compress"] = _options.Compress.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            method = (IProbeSetMethod)MethodFactory.Create("forward-only", readout);
            sources = [];
        }
        else if (_options.Normalize != "none")
        {
            throw new ArgumentException($"Scorer:Normalize = {_options.Normalize} applies to forward-only; Scorer:Method is '{_options.Method}': set Normalize to none.");
        }

        method.ImportState(new ServedModel(() => CheckpointStore.Create(architecture), theta, exampleSources, sourceCount), new ProbeSetState
        {
            Architecture = architecture,
            ExampleTensors = exampleLayout.Tensors,
            Examples = [.. examples.Select(p => p.Factors)],
            SourceTensors = sourceLayout.Tensors,
            Sources = [.. sources.Select(p => p.Factors)],
            Shared = shared,
        });
        return method;
    }

    /// <summary>
    /// The sources a set scores and each example's index into them, the source of each example from the run's training
    /// batches (a probe names its unit, not the unit's source). The sources are the set's source probes where a method
    /// publishes them (STRIDE, older forward-only sets), else the examples' sources ascending (forward-only: a source's
    /// score is the sum of its examples', no source is simulated).
    /// </summary>
    private (long[] SourceIds, int[] ExampleSources) ExampleSources(CheckpointPublished checkpoint, InfluenceProbe[] examples, InfluenceProbe[] sources, CancellationToken token)
    {
        var sourceOf = ReadSourcesAsync(checkpoint.RunId, checkpoint.Step, token).GetAwaiter().GetResult();
        long[] sourceIds = sources.Length > 0
            ? [.. sources.Select(p => p.SubjectId)]
            : [.. examples.Where(p => sourceOf.ContainsKey(p.SubjectId)).Select(p => sourceOf[p.SubjectId]).Distinct().Order()];
        var sourceIndex = sourceIds.Select((id, i) => (id, i)).ToDictionary(p => p.id, p => p.i);
        var exampleSources = new int[examples.Length];
        for (int i = 0; i < examples.Length; i++)
        {
            long id = examples[i].SubjectId;
            if (!sourceOf.TryGetValue(id, out var source) || !sourceIndex.TryGetValue(source, out exampleSources[i]))
            {
                throw new ArgumentException($"example {id} has {(sourceOf.ContainsKey(id) ? $"source {sourceOf[id]}, which has no source probe in the set" : $"no TrainingBatch on '{Topics.Batches}' for run {checkpoint.RunId} up to step {checkpoint.Step}")}; re-publish the run (Ingest) and its probes (Simulator).");
            }
        }

        return (sourceIds, exampleSources);
    }

    /// <summary>The source of every document the run trained on up to <paramref name="step"/>, from its training batches.</summary>
    private async Task<Dictionary<long, long>> ReadSourcesAsync(string runId, long step, CancellationToken token)
    {
        var sourceOf = new Dictionary<long, long>();
        foreach (var r in await TopicReader.ReadToEndAsync(_log, Topics.Batches, token))
        {
            if (r.KeyString != runId || r.Value.Length == 0)
            {
                continue;
            }

            var batch = EventCodecs.TrainingBatches.Decode(r.Value);
            if (batch.RunId == runId && batch.Step <= step)
            {
                for (int i = 0; i < batch.ExampleIds.Count; i++)
                {
                    sourceOf.TryAdd(batch.ExampleIds[i], batch.SourceIds[i]);
                }
            }
        }

        return sourceOf;
    }

    /// <summary>The corpus's source names when it is installed here (names are display data: their ids stand in otherwise).</summary>
    private IReadOnlyList<string> SourceNames(string corpus, long[] sourceIds)
    {
        try
        {
            var all = TextCorpus.Load(corpus).Sources;
            return [.. sourceIds.Select(id => id >= 0 && id < all.Count ? all[(int)id].Name : $"source {id}")];
        }
        catch (Exception e) when (e is ArgumentException or IOException or DataFormatException or UnauthorizedAccessException)
        {
            _logger.SourceNamesUnknown(corpus, e.Message);
            return [.. sourceIds.Select(id => $"source {id}")];
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

    private sealed class PendingSet(long setExamples, long setSources, long setShared)
    {
        public long SetExamples { get; } = setExamples;

        public long SetSources { get; } = setSources;

        public long SetShared { get; } = setShared;

        public Dictionary<long, InfluenceProbe> Shared { get; } = [];

        public Dictionary<long, InfluenceProbe> Examples { get; } = [];

        public Dictionary<long, InfluenceProbe> Sources { get; } = [];
    }
}
