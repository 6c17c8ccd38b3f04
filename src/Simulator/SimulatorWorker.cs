using System.Diagnostics;
using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Attribution.Probes;
using Attribution.Contracts;
using Attribution.Engine.IO;
using Attribution.Engine.Models;
using Attribution.Transport;
using Attribution.Transport.Messages;
using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Attribution.Simulator;

/// <summary>A checkpoint event cannot be simulated (bad checksum, missing recipe, unknown data); dead-lettered with this message.</summary>
public sealed class CheckpointRejectedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A finished probe set.</summary>
/// <param name="RunId">Run id.</param>
/// <param name="Step">Checkpoint step.</param>
/// <param name="ExampleProbes">Example probes in the set.</param>
/// <param name="SourceProbes">Source probes in the set (0 for forward-only: a source's score is the sum of its examples').</param>
/// <param name="PublishedNow">Probes this instance published for it (the rest were there from an earlier run, or another instance's share).</param>
/// <param name="SetComplete">
/// Whether the whole set is on the probes topic: always with one instance; with several, true when this instance's
/// re-read of the topic after publishing its share found every unit (the last instance to finish sees it).
/// </param>
public sealed record ProbeSetCompleted(string RunId, long Step, int ExampleProbes, int SourceProbes, long PublishedNow, bool SetComplete = true);

/// <summary>Progress of a probe set: a block of probes was published and acknowledged.</summary>
/// <param name="RunId">Run id.</param>
/// <param name="Step">Checkpoint step.</param>
/// <param name="Subject">The subject of the units published.</param>
/// <param name="Done">Units of this subject published so far in this pass.</param>
/// <param name="Total">Units of this subject to publish in this pass (those not already on the topic).</param>
public sealed record ProbeProgress(string RunId, long Step, ProbeSubject Subject, int Done, int Total);

/// <summary>
/// Consumes checkpoints (group <see cref="SimulatorOptions.GroupId"/>) and publishes the probe set of each: one
/// <see cref="InfluenceProbe"/> per training example, then one per source (the source simulated directly as one unit),
/// each block as soon as it is simulated; units already on the probes topic for the same (run, step, format) are
/// skipped, so a restart does not redo finished work. With <see cref="SimulatorOptions.Instances"/> &gt; 1 each instance
/// simulates only the units <see cref="UnitPartition"/> gives it (each instance in its own consumer group, so each sees
/// every checkpoint). Then the set is announced (<see cref="ProbeSetCompleteMessage"/>
/// on the alert bus, <see cref="Completed"/>) and the checkpoint event's offset is committed.
/// </summary>
public sealed class SimulatorWorker : EventConsumerWorker
{
    private readonly IEventLog _log;
    private readonly IEventProducer _producer;
    private readonly SimulatorOptions _options;
    private readonly IBus? _bus;
    private readonly UnitPartition _share;
    private readonly Lock _lock = new();
    private readonly Dictionary<(string, long), TaskCompletionSource<ProbeSetCompleted>> _waiters = [];
    private long _published;
    private long _skipped;
    private long _sets;

    /// <summary>Creates the worker.</summary>
    public SimulatorWorker(IEventLog log, IEventProducer producer, IOptions<SimulatorOptions> options, ILogger<SimulatorWorker> logger, IBus? bus = null)
        : base(log, new EventWorkerOptions
        {
            Topics = [Topics.Checkpoints],
            GroupId = options.Value.EffectiveGroupId,
            DeadLetterTopic = Topics.DeadLetter,
            MaxInFlight = 1,
            MaxRetries = 3,
            CommitEvery = 1,
        }, logger, producer)
    {
        _log = log;
        _producer = producer;
        _options = options.Value;
        _bus = bus;
        _share = new UnitPartition(_options.Instance, _options.Instances);
        Spans = new SpanIndexPublisher(log, producer, _options.Spans, _options.EffectiveGroupId, logger);
    }

    /// <summary>Builds and publishes a language-model checkpoint's exact-span index (instance 0 of a shared set).</summary>
    public SpanIndexPublisher Spans { get; }

    /// <summary>Raised (on the worker thread) after each published block, for progress displays.</summary>
    public event Action<ProbeProgress>? Progress;

    /// <summary>Raised (on the worker thread) when a probe set is complete.</summary>
    public event Action<ProbeSetCompleted>? Completed;

    /// <summary>Probes published by this instance.</summary>
    public long ProbesPublished => Interlocked.Read(ref _published);

    /// <summary>Units skipped because their probe was already on the topic.</summary>
    public long ProbesSkipped => Interlocked.Read(ref _skipped);

    /// <summary>Probe sets completed by this instance.</summary>
    public long ProbeSetsCompleted => Interlocked.Read(ref _sets);

    /// <summary>Completes when this instance finishes the probe set of (<paramref name="runId"/>, <paramref name="step"/>).</summary>
    public Task<ProbeSetCompleted> WhenProbeSetCompleteAsync(string runId, long step)
    {
        lock (_lock)
        {
            if (!_waiters.TryGetValue((runId, step), out var tcs))
            {
                _waiters[(runId, step)] = tcs = new TaskCompletionSource<ProbeSetCompleted>(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            return tcs.Task;
        }
    }

    /// <inheritdoc />
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await new TopicProvisioner(_log, Logger).EnsureAsync(_options.RequiredTopics(), cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    /// <inheritdoc />
    protected override async Task HandleAsync(EventRecord record, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var checkpoint = EventCodecs.Checkpoints.Decode(record.Value);
        if (_options.Instance == 0)
        {
            await Spans.PublishAsync(record, checkpoint, cancellationToken);
        }

        var (recipe, theta) = LoadCheckpoint(checkpoint);
        bool languageModel = recipe.Architecture.StartsWith("gpt:", StringComparison.Ordinal);
        var training = await ReadTrainingSetAsync(checkpoint, languageModel, cancellationToken);
        var exampleIds = training.ExampleIds;
        if (exampleIds.Length == 0)
        {
            throw new CheckpointRejectedException($"checkpoint {checkpoint.RunId} step {checkpoint.Step}: no TrainingBatch events with step <= {checkpoint.Step} for this run on '{Topics.Batches}'; Ingest publishes them before the checkpoint.");
        }

        var sourceIds = exampleIds.Select(e => training.SourceOf[e]).Distinct().Order().ToArray();
        var sourceIndex = sourceIds.Select((s, i) => (s, i)).ToDictionary(p => p.s, p => p.i);
        int[] exampleSources = [.. exampleIds.Select(e => sourceIndex[training.SourceOf[e]])];
        var plan = languageModel
            ? LanguageModelPlan(checkpoint, recipe, theta, training, exampleSources, sourceIds.Length)
            : MlpPlan(checkpoint, recipe, theta, training, exampleSources, sourceIds.Length);
        if (MethodFactory.CreateServed(_options.Method) is var served && served is not ForwardOnlyMethod)
        {
            await FinishAsync(await PublishStateAsync(served, record, checkpoint, plan.Problem, exampleIds, sourceIds, cancellationToken), watch, cancellationToken);
            return;
        }


        // The probe set carries its checkpoint reference on the compacted probes topic, so a Scorer rebuilding its index
        // finds θ even where the checkpoints topic no longer retains the event (the embedded log trims committed records).
        await _producer.ProduceAsync(Topics.Probes, EventMessage.Create(InfluenceProbe.CheckpointKey(checkpoint.RunId, checkpoint.Step), record.Value, ArrowEvents.Headers<CheckpointPublished>()), cancellationToken);
        // With several instances this one simulates only its share of the units (the others' shares are theirs).
        var ownExamples = Enumerable.Range(0, exampleIds.Length).Where(i => _share.Owns(ProbeSubject.Example, exampleIds[i])).ToArray();
        IUnitSimulation? simulation = null;
        var layout = plan.ExampleLayout;
        if (layout is null)
        {
            // The exact spectral form's layout (its Ritz coefficient count) is known after the operator: a set already
            // complete on the topic is not simulated again; otherwise the operator is fitted, then finished units are skipped.
            if (await HasStateSetAsync(checkpoint, exampleIds.Length, 0, cancellationToken))
            {
                Interlocked.Add(ref _skipped, ownExamples.Length);
                await FinishAsync(new ProbeSetCompleted(checkpoint.RunId, checkpoint.Step, exampleIds.Length, 0, 0), watch, cancellationToken);
                return;
            }

            simulation = plan.Start(cancellationToken);
            layout = simulation.Layout;
        }

        // Shared tensors (the exact spectral form's Ritz vectors) travel once per checkpoint, in chunks, from instance 0:
        // every instance fits the same operator (same problem, seed and code), but only one copy is served.
        var chunks = simulation is null ? [] : SharedChunks.Split(simulation.Shared, _options.SharedChunkFloats);
        var done = await ReadDoneAsync(checkpoint, layout, exampleIds.Length, chunks.Count, cancellationToken);
        Logger.SimulationPlanned(checkpoint.RunId, checkpoint.Step, exampleIds.Length, sourceIds.Length, done.Examples.Count, _share.ToString());
        var exampleUnits = ownExamples.Where(i => !done.Examples.Contains(exampleIds[i])).ToArray();
        Interlocked.Add(ref _skipped, ownExamples.Length - exampleUnits.Length);
        long publishedBefore = ProbesPublished;
        if (exampleUnits.Length > 0)
        {
            simulation ??= plan.Start(cancellationToken);
            Logger.SimulatorReady(checkpoint.RunId, checkpoint.Step, simulation.StepSize, layout.ToString(), EventCodecs.Probes.Encode(ProbeCodec.ToProbe(layout, checkpoint.RunId, checkpoint.Step, ProbeSubject.Example, 0, 0, 0, new float[layout.FloatsPerUnit])).Length);
            // Examples only: a source's score is the sum of its examples' scores (the Scorer sums them, as
            // ForwardOnlyMethod does offline), so no source is simulated or published.
            await SimulateAsync(simulation, checkpoint, layout, exampleUnits, u => exampleIds[u], exampleIds.Length, chunks.Count, cancellationToken);
        }

        if (_share.Instance == 0 && chunks.Count > done.Shared.Count)
        {
            var acks = new List<Task<EventPosition>>();
            for (int c = 0; c < chunks.Count; c++)
            {
                if (!done.Shared.Contains(c))
                {
                    var probe = ProbeCodec.ToProbe(new UnitLayout(layout.Architecture, 0, chunks[c].Tensors, ProbePrecision.Float32), checkpoint.RunId, checkpoint.Step,
                        ProbeSubject.Shared, c, exampleIds.Length, 0, chunks[c].Values) with { SetShared = chunks.Count };
                    acks.Add(_producer.ProduceAsync(Topics.Probes, EventMessage.Create(probe.Key, EventCodecs.Probes.Encode(probe), ArrowEvents.Headers<InfluenceProbe>()), cancellationToken));
                }
            }

            await Task.WhenAll(acks);
            Interlocked.Add(ref _published, acks.Count);
        }

        bool whole = true;
        if (_share.Instances > 1)
        {
            // Only this instance's share is known to be there: the set is complete when the topic holds every unit.
            var now = await ReadDoneAsync(checkpoint, layout, exampleIds.Length, chunks.Count, cancellationToken);
            whole = now.Examples.Count == exampleIds.Length && now.Shared.Count == chunks.Count;
        }

        await FinishAsync(new ProbeSetCompleted(checkpoint.RunId, checkpoint.Step, exampleIds.Length, 0, ProbesPublished - publishedBefore, whole), watch, cancellationToken);
    }

    /// <summary>Announces a finished probe set (log, bus when whole, <see cref="Completed"/>, waiters).</summary>
    private async Task FinishAsync(ProbeSetCompleted done, Stopwatch watch, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _sets);
        Logger.ProbeSetComplete(done.RunId, done.Step, done.ExampleProbes + done.SourceProbes, done.PublishedNow, watch.Elapsed.TotalSeconds);
        if (_bus is not null && done.SetComplete)
        {
            try
            {
                await _bus.Publish(new ProbeSetCompleteMessage { RunId = done.RunId, Step = done.Step, ProbeCount = done.ExampleProbes + done.SourceProbes }, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The probes are durable on the log (readers detect completeness from it); the bus message is a hint.
                Logger.ControlPublishFailed(e, done.RunId, done.Step);
            }
        }

        Completed?.Invoke(done);
        TaskCompletionSource<ProbeSetCompleted>? waiter;
        lock (_lock)
        {
            if (!_waiters.TryGetValue((done.RunId, done.Step), out waiter))
            {
                _waiters[(done.RunId, done.Step)] = waiter = new TaskCompletionSource<ProbeSetCompleted>(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        waiter.TrySetResult(done);
    }

    /// <summary>
    /// A method whose state is computed for the whole checkpoint at once (STRIDE): precomputed on the checkpoint's
    /// problem (what <c>attribute</c> and <c>eval</c> run), exported (<see cref="IProbeSetMethod.ExportState"/>) and
    /// published as one probe per example and per source plus the shared tensors in chunks
    /// (<see cref="SharedChunks"/>), every probe carrying the chunk count (<see cref="InfluenceProbe.SetShared"/>).
    /// Skipped when the topic already holds the complete set (a restart after publishing).
    /// </summary>
    private async Task<ProbeSetCompleted> PublishStateAsync(IProbeSetMethod method, EventRecord record, CheckpointPublished checkpoint, AttributionProblem problem,
        long[] exampleIds, long[] sourceIds, CancellationToken ct)
    {
        await _producer.ProduceAsync(Topics.Probes, EventMessage.Create(InfluenceProbe.CheckpointKey(checkpoint.RunId, checkpoint.Step), record.Value, ArrowEvents.Headers<CheckpointPublished>()), ct);
        if (await HasStateSetAsync(checkpoint, exampleIds.Length, sourceIds.Length, ct))
        {
            Interlocked.Add(ref _skipped, exampleIds.Length + sourceIds.Length);
            return new ProbeSetCompleted(checkpoint.RunId, checkpoint.Step, exampleIds.Length, sourceIds.Length, 0);
        }

        method.Precompute(problem, ct);
        var state = method.ExportState();
        var chunks = SharedChunks.Split(state.Shared, _options.SharedChunkFloats);
        var acks = new List<Task<EventPosition>>();
        long before = ProbesPublished;
        async Task Publish(UnitLayout layout, ProbeSubject subject, long id, float[] floats)
        {
            var probe = ProbeCodec.ToProbe(layout, checkpoint.RunId, checkpoint.Step, subject, id, exampleIds.Length, sourceIds.Length, floats) with { SetShared = chunks.Count };
            acks.Add(_producer.ProduceAsync(Topics.Probes, EventMessage.Create(probe.Key, EventCodecs.Probes.Encode(probe), ArrowEvents.Headers<InfluenceProbe>()), ct));
            if (acks.Count >= _options.UnitsPerBlock)
            {
                await Task.WhenAll(acks);
                Interlocked.Add(ref _published, acks.Count);
                acks.Clear();
                Progress?.Invoke(new ProbeProgress(checkpoint.RunId, checkpoint.Step, subject, (int)(ProbesPublished - before), exampleIds.Length + sourceIds.Length + chunks.Count));
            }
        }

        // Subset ids are exact in f32 (not in f16 beyond 2,048); shared tensors travel in f32 so the Scorer scores as offline.
        var exampleLayout = new UnitLayout(state.Architecture, 0, state.ExampleTensors, ProbePrecision.Float32);
        var sourceLayout = new UnitLayout(state.Architecture, 0, state.SourceTensors, ProbePrecision.Float32);
        for (int i = 0; i < exampleIds.Length; i++)
        {
            await Publish(exampleLayout, ProbeSubject.Example, exampleIds[i], state.Examples[i]);
        }

        for (int s = 0; s < sourceIds.Length; s++)
        {
            await Publish(sourceLayout, ProbeSubject.Source, sourceIds[s], state.Sources[s]);
        }

        for (int c = 0; c < chunks.Count; c++)
        {
            await Publish(new UnitLayout(state.Architecture, 0, chunks[c].Tensors, ProbePrecision.Float32), ProbeSubject.Shared, c, chunks[c].Values);
        }

        await Task.WhenAll(acks);
        Interlocked.Add(ref _published, acks.Count);
        Logger.BlockPublished(checkpoint.RunId, checkpoint.Step, (int)(ProbesPublished - before), method.Name, (int)(ProbesPublished - before), exampleIds.Length + sourceIds.Length + chunks.Count);
        return new ProbeSetCompleted(checkpoint.RunId, checkpoint.Step, exampleIds.Length, sourceIds.Length, ProbesPublished - before);
    }

    /// <summary>Whether the probes topic holds a complete shared-state set (every example, source and chunk) for this checkpoint.</summary>
    private async Task<bool> HasStateSetAsync(CheckpointPublished checkpoint, long setExamples, long setSources, CancellationToken ct)
    {
        var seen = new Dictionary<ProbeSubject, HashSet<long>> { [ProbeSubject.Example] = [], [ProbeSubject.Source] = [], [ProbeSubject.Shared] = [] };
        long chunks = -1;
        var prefix = $"{checkpoint.RunId}/{checkpoint.Step}/";
        foreach (var r in await TopicReader.ReadToEndAsync(_log, Topics.Probes, ct))
        {
            if (r.Value.Length == 0 || !r.KeyString.StartsWith(prefix, StringComparison.Ordinal) || r.GetHeaderString(EventHeaders.EventType) != EventTypes.InfluenceProbe)
            {
                continue;
            }

            try
            {
                var probe = EventCodecs.Probes.Decode(r.Value);
                if (probe.SetShared > 0 && probe.SetExamples == setExamples && probe.SetSources == setSources && (chunks < 0 || chunks == probe.SetShared))
                {
                    chunks = probe.SetShared;
                    seen[probe.Subject].Add(probe.SubjectId);
                }
            }
            catch (EventContractException)
            {
                // A malformed probe: the set is published again.
            }
        }

        return chunks > 0 && seen[ProbeSubject.Example].Count == setExamples && seen[ProbeSubject.Source].Count == setSources && seen[ProbeSubject.Shared].Count == chunks;
    }

    private async Task SimulateAsync(IUnitSimulation simulation, CheckpointPublished checkpoint, UnitLayout layout,
        int[] units, Func<int, long> subjectId, int setExamples, int setShared, CancellationToken ct)
    {
        for (int start = 0; start < units.Length; start += _options.UnitsPerBlock)
        {
            var block = units[start..Math.Min(units.Length, start + _options.UnitsPerBlock)];
            var acks = new List<Task<EventPosition>>(block.Length);
            simulation.Simulate(block, (u, floats) =>
            {
                var probe = ProbeCodec.ToProbe(layout, checkpoint.RunId, checkpoint.Step, ProbeSubject.Example, subjectId(block[u]), setExamples, 0, floats) with { SetShared = setShared };
                acks.Add(_producer.ProduceAsync(Topics.Probes, EventMessage.Create(probe.Key,
                    EventCodecs.Probes.Encode(probe), ArrowEvents.Headers<InfluenceProbe>()), ct));
            }, ct);
            await Task.WhenAll(acks);
            Interlocked.Add(ref _published, acks.Count);
            Logger.BlockPublished(checkpoint.RunId, checkpoint.Step, acks.Count, nameof(ProbeSubject.Example), start + block.Length, units.Length);
            Progress?.Invoke(new ProbeProgress(checkpoint.RunId, checkpoint.Step, ProbeSubject.Example, start + block.Length, units.Length));
        }
    }

    /// <summary>An MLP checkpoint: the stacked simulation (<see cref="ForwardOnlySimulator"/>), examples compressed to <see cref="ProbeFormat"/>.</summary>
    private SimulationPlan MlpPlan(CheckpointPublished checkpoint, CheckpointRecipe recipe, float[] theta, TrainingSet training, int[] exampleSources, int sourceCount)
    {
        int[] widths;
        try
        {
            widths = ProbeCodec.ParseMlp(recipe.Architecture);
        }
        catch (ProbeFormatException e)
        {
            throw new CheckpointRejectedException($"checkpoint {checkpoint.RunId} step {checkpoint.Step}: {e.Message}", e);
        }

        var layout = new MlpLayout(widths);
        var (inputs, labels) = Inputs(checkpoint, training.ExampleIds, training.Payload, layout);
        var problem = new AttributionProblem(layout, theta, inputs, labels, exampleSources, sourceCount, (float)recipe.WeightDecay)
        {
            TrainingLearningRate = (float)recipe.LearningRate,
        };
        var exampleFormat = new ProbeFormat(layout.Widths, _options.Rank, ProbeFormat.ParsePrecision(_options.Precision)!.Value);
        var options = _options.ToForwardOnly();
        // Spectral propagation (the MLP default) stores responses exactly, in a layout known after the operator (null here).
        bool exact = options.PropagationFor(true) == ForwardPropagation.Spectral;
        return new SimulationPlan(problem, exact ? null : exampleFormat.Unit, ct => new MlpSimulation(new ForwardOnlySimulator(problem, options, ct), problem, exampleFormat, options));
    }

    /// <summary>
    /// A language model's checkpoint: one unit per training document (its token ids from the batches),
    /// simulated through <see cref="ForwardOnlySimulator"/> and laid out as <see cref="ForwardOnlyMethod"/> stores
    /// them (<see cref="ModelProbeSimulator"/>). The step size is 1 / (h_max + λ): the recipe's learning rate is the
    /// optimiser's (AdamW), not a plain gradient step, so it does not cap it (as offline).
    /// </summary>
    private SimulationPlan LanguageModelPlan(CheckpointPublished checkpoint, CheckpointRecipe recipe, float[] theta, TrainingSet training, int[] exampleSources, int sourceCount)
    {
        var where = $"checkpoint {checkpoint.RunId} step {checkpoint.Step}";
        var config = CheckpointStore.ParseGpt(recipe.Architecture);
        var documents = new int[training.ExampleIds.Length][];
        for (int i = 0; i < documents.Length; i++)
        {
            long id = training.ExampleIds[i];
            if (!training.Documents.TryGetValue(id, out var tokens))
            {
                throw new CheckpointRejectedException($"{where}: document {id} has no token ids in a TrainingBatch on '{Topics.Batches}' ({training.Documents.Count} of {documents.Length} documents have); Ingest attaches them (corpus '{recipe.Dataset}'); a trainer publishing its own batches must set TrainingBatch.Documents.");
            }

            if (tokens.Length < 2 || tokens.Any(t => (uint)t >= (uint)config.VocabSize))
            {
                throw new CheckpointRejectedException($"{where}: document {id} has {tokens.Length} tokens{(tokens.Length < 2 ? "; a training document needs the document start and at least one token" : $" with an id outside the model's vocabulary of {config.VocabSize} (first: {tokens.First(t => (uint)t >= (uint)config.VocabSize)})")}; re-publish the run with the tokenizer it was trained with ('{recipe.Tokenizer}').");
            }

            documents[i] = tokens;
        }

        var problem = AttributionProblem.ForGpt(config, theta, documents, exampleSources, sourceCount, (float)recipe.WeightDecay);
        var precision = ProbeFormat.ParsePrecision(_options.Precision)!.Value;
        var options = _options.ToForwardOnly();
        // The layout is known before simulating (finished probes are recognised by it).
        var layout = ModelProbeSimulator.LayoutOf(problem, options.Rank, precision);
        return new SimulationPlan(problem, layout, ct => new LanguageModelSimulation(new ModelProbeSimulator(problem, options, precision, ct)));
    }

    /// <summary>
    /// The recipe and θ of a checkpoint, from the event alone: its architecture and recipe columns and the checkpoint
    /// store (URI + sha256). Anything missing or unusable rejects the checkpoint (dead letter) saying what.
    /// </summary>
    private static (CheckpointRecipe Recipe, float[] Theta) LoadCheckpoint(CheckpointPublished checkpoint)
    {
        var where = $"checkpoint {checkpoint.RunId} step {checkpoint.Step}";
        var recipe = checkpoint.Recipe ?? throw new CheckpointRejectedException(
            $"{where}: the event carries no architecture and recipe (columns architecture, learning_rate, weight_decay, batch_size, seed, dataset; schema version 1 had none); re-publish the run with the current Ingest, which reads them from run.json.");
        try
        {
            return (recipe, CheckpointStore.LoadFlat(checkpoint.Uri, checkpoint.Checksum, recipe.Architecture));
        }
        catch (CheckpointException e)
        {
            throw new CheckpointRejectedException($"{where}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The run's training units up to the checkpoint: an MLP's examples by id; a language model's documents in training
    /// order (as the batches list them, i.e. run.json's order), the order the offline method indexes its rows in, so the
    /// simulation draws the same mini-batches here as in <c>attribute</c> and <c>eval</c>.
    /// </summary>
    private async Task<TrainingSet> ReadTrainingSetAsync(CheckpointPublished checkpoint, bool trainingOrder, CancellationToken ct)
    {
        var order = new List<long>();
        var sourceOf = new Dictionary<long, long>();
        var payload = new Dictionary<long, (float[], int)>();
        var documents = new Dictionary<long, int[]>();
        foreach (var r in await TopicReader.ReadToEndAsync(_log, Topics.Batches, ct))
        {
            if (r.KeyString != checkpoint.RunId)
            {
                continue;
            }

            var batch = EventCodecs.TrainingBatches.Decode(r.Value);
            if (batch.RunId != checkpoint.RunId || batch.Step > checkpoint.Step)
            {
                continue;
            }

            for (int i = 0; i < batch.ExampleIds.Count; i++)
            {
                // An example trained more than once keeps its first source (re-published batches are harmless).
                if (sourceOf.TryAdd(batch.ExampleIds[i], batch.SourceIds[i]))
                {
                    order.Add(batch.ExampleIds[i]);
                }
            }

            if (batch.Payload is { } bytes)
            {
                var (x, y, d) = BatchPayload.Decode(bytes, batch.ExampleIds.Count);
                for (int i = 0; i < batch.ExampleIds.Count; i++)
                {
                    payload.TryAdd(batch.ExampleIds[i], (x[(i * d)..((i + 1) * d)], y[i]));
                }
            }

            if (batch.Documents is { } docs)
            {
                for (int i = 0; i < batch.ExampleIds.Count; i++)
                {
                    documents.TryAdd(batch.ExampleIds[i], docs[i]);
                }
            }
        }

        var ids = trainingOrder ? [.. order] : sourceOf.Keys.Order().ToArray();
        if (_options.MaxExamples > 0 && ids.Length > _options.MaxExamples)
        {
            ids = ids[.._options.MaxExamples];
        }

        return new TrainingSet(ids, sourceOf, payload, documents);
    }

    /// <summary>The inputs and labels of <paramref name="ids"/>, all from the batches' payloads (the service reads no data set of its own).</summary>
    private static (float[] Inputs, int[] Labels) Inputs(CheckpointPublished checkpoint, long[] ids, Dictionary<long, (float[] X, int Y)> payload, MlpLayout layout)
    {
        int d = layout.Widths[0];
        var missing = ids.Where(id => !payload.ContainsKey(id)).ToArray();
        if (missing.Length > 0)
        {
            throw new CheckpointRejectedException($"checkpoint {checkpoint.RunId} step {checkpoint.Step}: {missing.Length} of {ids.Length} examples (first: {missing[0]}) have no inputs in a TrainingBatch payload on '{Topics.Batches}'; Ingest attaches them (data set '{checkpoint.Recipe!.Dataset}'); a trainer publishing its own batches must set TrainingBatch.Payload.");
        }

        var x = new float[(long)ids.Length * d];
        var y = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            var p = payload[ids[i]];
            if (p.X.Length != d)
            {
                throw new CheckpointRejectedException($"checkpoint {checkpoint.RunId} step {checkpoint.Step}: example {ids[i]}'s payload has {p.X.Length} features; the model ({checkpoint.Recipe!.Architecture}) takes {d}.");
            }

            p.X.CopyTo(x, (long)i * d);
            y[i] = p.Y;
        }

        return (x, y);
    }

    private async Task<(HashSet<long> Examples, HashSet<long> Shared)> ReadDoneAsync(CheckpointPublished checkpoint, UnitLayout exampleLayout, long setExamples, int setShared, CancellationToken ct)
    {
        var examples = new HashSet<long>();
        var shared = new HashSet<long>();
        var prefix = $"{checkpoint.RunId}/{checkpoint.Step}/";
        foreach (var r in await TopicReader.ReadToEndAsync(_log, Topics.Probes, ct))
        {
            if (r.Value.Length == 0 || !r.KeyString.StartsWith(prefix, StringComparison.Ordinal) || r.GetHeaderString(EventHeaders.EventType) == EventTypes.CheckpointPublished)
            {
                continue;
            }

            try
            {
                var probe = EventCodecs.Probes.Decode(r.Value);
                // Only a probe of the same format and set is finished work; anything else is redone (and overwritten).
                if (probe.SetExamples != setExamples || probe.SetSources != 0 || probe.SetShared != setShared)
                {
                    continue;
                }

                if (probe.Subject == ProbeSubject.Example && ProbeCodec.IsIn(probe, exampleLayout))
                {
                    examples.Add(probe.SubjectId);
                }
                else if (probe.Subject == ProbeSubject.Shared && probe.Architecture == exampleLayout.Architecture)
                {
                    shared.Add(probe.SubjectId);
                }
            }
            catch (EventContractException)
            {
                // A malformed probe counts as not done: it is simulated again and replaced.
            }
        }

        return (examples, shared);
    }

    private sealed record TrainingSet(long[] ExampleIds, Dictionary<long, long> SourceOf, Dictionary<long, (float[] X, int Y)> Payload, Dictionary<long, int[]> Documents);

    /// <summary>
    /// A checkpoint's problem, its probes' layout (null when known only once simulating: the exact spectral form's Ritz
    /// coefficient count) and how to start simulating (deferred: the step size costs a power iteration).
    /// </summary>
    private sealed record SimulationPlan(AttributionProblem Problem, UnitLayout? ExampleLayout, Func<CancellationToken, IUnitSimulation> Start);

    /// <summary>Simulates training examples (row indices) and hands each one's probe floats to a sink.</summary>
    private interface IUnitSimulation
    {
        float StepSize { get; }

        /// <summary>Every unit's probe layout.</summary>
        UnitLayout Layout { get; }

        /// <summary>Tensors every unit shares (published once per checkpoint, in chunks); empty when none.</summary>
        IReadOnlyList<StateTensor> Shared { get; }

        void Simulate(IReadOnlyList<int> examples, Action<int, float[]> sink, CancellationToken ct);
    }

    /// <summary>
    /// An MLP's units. Spectral propagation: each example exactly as <see cref="ForwardOnlyMethod.Precompute"/> stores it
    /// (<see cref="ForwardOnlySimulator.SimulateResponses"/>: gradient factors scaled by φ(c) plus coefficients on the
    /// operator's Ritz vectors, which are <see cref="Shared"/>). Any other propagation: the dense response compressed to
    /// <see cref="ProbeFormat"/> (rank-r factors, or full at rank 0).
    /// </summary>
    private sealed class MlpSimulation : IUnitSimulation
    {
        private readonly ForwardOnlySimulator _simulator;
        private readonly ProbeFormat _format;
        private readonly ForwardOnlyOptions _options;
        private readonly IReadOnlyList<LinearFactors>? _layers; // the exact form's layers (null: ProbeFormat)
        private readonly float[] _sketch = [];
        private readonly float[] _compressed = [];

        public MlpSimulation(ForwardOnlySimulator simulator, AttributionProblem problem, ProbeFormat format, ForwardOnlyOptions options)
        {
            _simulator = simulator;
            _format = format;
            _options = options;
            if (simulator.Operator is not null)
            {
                _layers = ForwardOnlyMethod.LinearLayers(problem);
                var empty = simulator.SimulateResponses([], _layers, options.Rank, options.Seed, []);
                var tensors = problem.CreateModel().Tensors;
                var unit = empty.Tensors(tensors);
                Layout = new UnitLayout(problem.Architecture, unit.Max(t => t.Rank), unit, format.Element);
                Shared = empty.DirectionTensors(tensors);
            }
            else
            {
                Layout = format.Unit;
                Shared = [];
                _sketch = format.CreateSketch(options.Seed);
                _compressed = new float[format.FloatsPerUnit];
            }
        }

        public float StepSize => _simulator.StepSize;

        public UnitLayout Layout { get; }

        public IReadOnlyList<StateTensor> Shared { get; }

        public void Simulate(IReadOnlyList<int> examples, Action<int, float[]> sink, CancellationToken ct)
        {
            if (_layers is not null)
            {
                var set = _simulator.SimulateResponses(examples, _layers, _options.Rank, _options.Seed, new float[examples.Count], ct);
                var floats = new float[set.FloatsPerUnit];
                for (int u = 0; u < examples.Count; u++)
                {
                    set.GetFactors(u, floats);
                    sink(u, floats);
                }

                return;
            }

            // Examples travel compressed (rank-r factors) unless the rank is 0 (full).
            _simulator.Simulate(examples, (u, response) =>
            {
                if (_format.Rank > 0)
                {
                    _format.Compress(response, _sketch, _compressed);
                    sink(u, _compressed);
                }
                else
                {
                    sink(u, response);
                }
            }, ct);
        }
    }

    private sealed class LanguageModelSimulation(ModelProbeSimulator simulator) : IUnitSimulation
    {
        public float StepSize => simulator.StepSize;

        public UnitLayout Layout => simulator.Layout;

        public IReadOnlyList<StateTensor> Shared => [];

        public void Simulate(IReadOnlyList<int> examples, Action<int, float[]> sink, CancellationToken ct) => simulator.Simulate(examples, sink, ct);
    }
}
