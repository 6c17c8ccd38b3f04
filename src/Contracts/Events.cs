using Apache.Arrow;
using Apache.Arrow.Types;
using Attribution.Contracts.Arrow;
using static Attribution.Contracts.Columns;

namespace Attribution.Contracts;

/// <summary>The examples (and their data sources) of one optimiser step of a training run.</summary>
/// <param name="RunId">Training run id (topic key).</param>
/// <param name="Step">Optimiser step, 0-based.</param>
/// <param name="ExampleIds">Training example ids in the batch.</param>
/// <param name="SourceIds">Data source id of each example, same length as <paramref name="ExampleIds"/>.</param>
/// <param name="Payload">Optional opaque payload (e.g. the inputs, when the simulator cannot fetch them).</param>
public sealed record TrainingBatch(string RunId, long Step, IReadOnlyList<long> ExampleIds, IReadOnlyList<long> SourceIds, byte[]? Payload = null)
    : IArrowEvent<TrainingBatch>
{
    /// <inheritdoc/>
    public static string EventType => EventTypes.TrainingBatch;

    /// <inheritdoc/>
    public static int SchemaVersion => 1;

    /// <inheritdoc/>
    public static Schema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("run_id", StringType.Default),
        Required("step", Int64Type.Default),
        Required("example_ids", Int64List),
        Required("source_ids", Int64List),
        Optional("payload", BinaryType.Default));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<TrainingBatch> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(Map(events, e => e.RunId)),
            ArrowArrays.Int64(Map(events, e => e.Step)),
            ArrowArrays.List(Int64List, Map(events, e => e.ExampleIds)),
            ArrowArrays.List(Int64List, Map(events, e => e.SourceIds)),
            ArrowArrays.Binary(Map(events, e => e.Payload)),
        ], events.Count);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<TrainingBatch> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var b = new EventBatch(batch, EventType);
        var runId = b.Utf8("run_id");
        var step = b.Primitive<long>("step", Int64Type.Default);
        var examples = b.List<long>("example_ids", Int64Type.Default);
        var sources = b.List<long>("source_ids", Int64Type.Default);
        var payload = b.OptionalBinary("payload");
        var result = new TrainingBatch[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var e = examples.Get(i);
            var s = sources.Get(i);
            Check(e.Length == s.Length, EventType, "source_ids", i, $"{e.Length} example ids but {s.Length} source ids; each example needs its source");
            result[i] = new TrainingBatch(runId.Required(i), step[i], e.ToArray(), s.ToArray(),
                payload is null || payload.IsNull(i) ? null : payload.Get(i).ToArray());
        }
        return result;
    }
}

/// <summary>A checkpoint is available by reference (large tensors never ride in messages).</summary>
/// <param name="RunId">Training run id (topic key).</param>
/// <param name="Step">Optimiser step the checkpoint was taken after.</param>
/// <param name="Uri">Where to fetch it (e.g. file:///.../step-100.safetensors).</param>
/// <param name="Checksum">Content checksum, "sha256:&lt;hex&gt;".</param>
/// <param name="ParameterCount">Number of scalar parameters.</param>
public sealed record CheckpointPublished(string RunId, long Step, string Uri, string Checksum, long ParameterCount)
    : IArrowEvent<CheckpointPublished>
{
    /// <inheritdoc/>
    public static string EventType => EventTypes.CheckpointPublished;

    /// <inheritdoc/>
    public static int SchemaVersion => 1;

    /// <inheritdoc/>
    public static Schema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("run_id", StringType.Default),
        Required("step", Int64Type.Default),
        Required("uri", StringType.Default),
        Required("checksum", StringType.Default),
        Required("parameter_count", Int64Type.Default));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<CheckpointPublished> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(Map(events, e => e.RunId)),
            ArrowArrays.Int64(Map(events, e => e.Step)),
            ArrowArrays.Utf8(Map(events, e => e.Uri)),
            ArrowArrays.Utf8(Map(events, e => e.Checksum)),
            ArrowArrays.Int64(Map(events, e => e.ParameterCount)),
        ], events.Count);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<CheckpointPublished> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var b = new EventBatch(batch, EventType);
        var runId = b.Utf8("run_id");
        var step = b.Primitive<long>("step", Int64Type.Default);
        var uri = b.Utf8("uri");
        var checksum = b.Utf8("checksum");
        var count = b.Primitive<long>("parameter_count", Int64Type.Default);
        var result = new CheckpointPublished[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            Check(count[i] >= 0, EventType, "parameter_count", i, $"parameter count {count[i]} is negative");
            Check(uri.Required(i).Length > 0, EventType, "uri", i, "uri is empty");
            result[i] = new CheckpointPublished(runId.Required(i), step[i], uri.Required(i), checksum.Required(i), count[i]);
        }
        return result;
    }
}

/// <summary>What an influence probe describes. Wire values (int32) are frozen.</summary>
public enum ProbeSubject
{
    /// <summary>One training example.</summary>
    Example = 1,
    /// <summary>A whole data source (all its examples).</summary>
    Source = 2,
}

/// <summary>Encodings of <see cref="InfluenceProbe.Shift"/>. Names are frozen wire values.</summary>
public static class ShiftEncodings
{
    /// <summary>IEEE float32, little-endian, 4 bytes per element.</summary>
    public const string Float32 = "f32le";

    /// <summary>IEEE float16, little-endian, 2 bytes per element.</summary>
    public const string Float16 = "f16le";

    /// <summary>Bytes per element of an encoding, or 0 when the encoding is unknown.</summary>
    public static int BytesPerElement(string encoding) => encoding switch
    {
        Float32 => 4,
        Float16 => 2,
        _ => 0,
    };
}

/// <summary>
/// The simulated, short-horizon parameter shift caused by one training example or source, in a
/// compact encoding. Compacted topic: the latest probe per <see cref="Key"/> wins.
/// </summary>
/// <param name="RunId">Training run id.</param>
/// <param name="Step">Checkpoint step the simulation started from.</param>
/// <param name="Subject">Example or source.</param>
/// <param name="SubjectId">The example or source id.</param>
/// <param name="Encoding">One of <see cref="ShiftEncodings"/>.</param>
/// <param name="Length">Number of encoded elements.</param>
/// <param name="Shift">Encoded bytes: Length × bytes per element.</param>
public sealed record InfluenceProbe(string RunId, long Step, ProbeSubject Subject, long SubjectId, string Encoding, int Length, byte[] Shift)
    : IArrowEvent<InfluenceProbe>
{
    /// <summary>Topic key: "example:&lt;id&gt;" or "source:&lt;id&gt;".</summary>
    public string Key => $"{(Subject == ProbeSubject.Example ? "example" : "source")}:{SubjectId}";

    /// <inheritdoc/>
    public static string EventType => EventTypes.InfluenceProbe;

    /// <inheritdoc/>
    public static int SchemaVersion => 1;

    /// <inheritdoc/>
    public static Schema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("run_id", StringType.Default),
        Required("step", Int64Type.Default),
        Required("subject", Int32Type.Default),
        Required("subject_id", Int64Type.Default),
        Required("encoding", StringType.Default),
        Required("length", Int32Type.Default),
        Required("shift", BinaryType.Default));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<InfluenceProbe> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(Map(events, e => e.RunId)),
            ArrowArrays.Int64(Map(events, e => e.Step)),
            ArrowArrays.Int32(Map(events, e => (int)e.Subject)),
            ArrowArrays.Int64(Map(events, e => e.SubjectId)),
            ArrowArrays.Utf8(Map(events, e => e.Encoding)),
            ArrowArrays.Int32(Map(events, e => e.Length)),
            ArrowArrays.Binary(Map(events, e => (byte[]?)e.Shift)),
        ], events.Count);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<InfluenceProbe> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var b = new EventBatch(batch, EventType);
        var runId = b.Utf8("run_id");
        var step = b.Primitive<long>("step", Int64Type.Default);
        var subject = b.Primitive<int>("subject", Int32Type.Default);
        var subjectId = b.Primitive<long>("subject_id", Int64Type.Default);
        var encoding = b.Utf8("encoding");
        var length = b.Primitive<int>("length", Int32Type.Default);
        var shift = b.Binary("shift");
        var result = new InfluenceProbe[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var s = subject[i];
            Check(s is (int)ProbeSubject.Example or (int)ProbeSubject.Source, EventType, "subject", i, $"subject {s} is not 1 (example) or 2 (source)");
            var enc = encoding.Required(i);
            var width = ShiftEncodings.BytesPerElement(enc);
            Check(width > 0, EventType, "encoding", i, $"unknown shift encoding '{enc}' (known: {ShiftEncodings.Float32}, {ShiftEncodings.Float16})");
            var n = length[i];
            var bytes = shift.Get(i);
            Check(n >= 0 && (long)n * width == bytes.Length, EventType, "shift", i, $"{bytes.Length} bytes do not hold {n} {enc} elements ({width} bytes each)");
            result[i] = new InfluenceProbe(runId.Required(i), step[i], (ProbeSubject)s, subjectId[i], enc, n, bytes.ToArray());
        }
        return result;
    }
}

/// <summary>
/// A live model query. Exactly one input kind: image <see cref="Features"/> (float32), or a language-model query (a
/// prompt and a completion, with the <see cref="Tokenizer"/> they are meant for) given as text (<see cref="Prompt"/>,
/// <see cref="Completion"/>) or as token ids (<see cref="TokenIds"/> = the prompt's ids, <see cref="CompletionTokenIds"/>),
/// never text and ids mixed. Ids are the tokenizer's encoding without framing: the Scorer puts the tokenizer's document
/// start before the prompt, as every training document has it. A missing prompt is the empty prompt. What a text query's
/// attribution explains is the completion's log-likelihood (<see cref="AttributionResult.OutputFunction"/>).
/// </summary>
/// <param name="QueryId">Query id (topic key).</param>
/// <param name="ModelVersion">Model version that served it (e.g. run id + step).</param>
/// <param name="Features">Input features (e.g. pixels), or null for a language-model query.</param>
/// <param name="TokenIds">The prompt's token ids (a language-model query given as ids), or null.</param>
/// <param name="Timestamp">When the query was served (UTC, microsecond precision on the wire).</param>
public sealed record ModelQuery(string QueryId, string ModelVersion, IReadOnlyList<float>? Features, IReadOnlyList<long>? TokenIds, DateTimeOffset Timestamp)
    : IArrowEvent<ModelQuery>
{
    /// <summary>Name of the tokenizer the text or ids are for (e.g. <c>bytes</c>, <c>gpt2</c>); required by a language-model query.</summary>
    public string? Tokenizer { get; init; }

    /// <summary>Prompt text (a language-model query given as text), or null.</summary>
    public string? Prompt { get; init; }

    /// <summary>Completion text whose log-likelihood is attributed (a language-model query given as text), or null.</summary>
    public string? Completion { get; init; }

    /// <summary>Completion token ids (a language-model query given as ids), or null.</summary>
    public IReadOnlyList<long>? CompletionTokenIds { get; init; }

    /// <summary>True for a language-model query (text or ids), false for a feature query.</summary>
    public bool IsText => Features is null;

    /// <summary>A language-model query given as text.</summary>
    public static ModelQuery FromText(string queryId, string modelVersion, string tokenizer, string prompt, string completion, DateTimeOffset timestamp) =>
        new(queryId, modelVersion, null, null, timestamp) { Tokenizer = tokenizer, Prompt = prompt, Completion = completion };

    /// <summary>A language-model query given as token ids (no framing).</summary>
    public static ModelQuery FromTokens(string queryId, string modelVersion, string tokenizer, IReadOnlyList<long> prompt, IReadOnlyList<long> completion, DateTimeOffset timestamp) =>
        new(queryId, modelVersion, null, prompt, timestamp) { Tokenizer = tokenizer, CompletionTokenIds = completion };

    /// <inheritdoc/>
    public static string EventType => EventTypes.ModelQuery;

    /// <inheritdoc/>
    public static int SchemaVersion => 1;

    /// <inheritdoc/>
    public static Schema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("query_id", StringType.Default),
        Required("model_version", StringType.Default),
        Optional("features", Float32List),
        Optional("token_ids", Int64List),
        Required("timestamp", UtcMicros),
        Optional("tokenizer", StringType.Default),
        Optional("prompt", StringType.Default),
        Optional("completion", StringType.Default),
        Optional("completion_token_ids", Int64List));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<ModelQuery> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(Map(events, e => e.QueryId)),
            ArrowArrays.Utf8(Map(events, e => e.ModelVersion)),
            ArrowArrays.List(Float32List, Map(events, e => e.Features)),
            ArrowArrays.List(Int64List, Map(events, e => e.TokenIds)),
            ArrowArrays.Timestamp(UtcMicros, Map(events, e => ToMicros(e.Timestamp))),
            ArrowArrays.Utf8(Map(events, e => e.Tokenizer)),
            ArrowArrays.Utf8(Map(events, e => e.Prompt)),
            ArrowArrays.Utf8(Map(events, e => e.Completion)),
            ArrowArrays.List(Int64List, Map(events, e => e.CompletionTokenIds)),
        ], events.Count);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<ModelQuery> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var b = new EventBatch(batch, EventType);
        var queryId = b.Utf8("query_id");
        var model = b.Utf8("model_version");
        var features = b.OptionalList<float>("features", FloatType.Default);
        var tokens = b.OptionalList<long>("token_ids", Int64Type.Default);
        var time = b.Instants("timestamp");
        var tokenizer = b.OptionalUtf8("tokenizer");
        var prompt = b.OptionalUtf8("prompt");
        var completion = b.OptionalUtf8("completion");
        var completionTokens = b.OptionalList<long>("completion_token_ids", Int64Type.Default);
        var result = new ModelQuery[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var hasFeatures = features is not null && !features.IsNull(i);
            var hasTokens = tokens is not null && !tokens.IsNull(i);
            var hasPrompt = prompt is not null && !prompt.IsNull(i);
            var hasCompletion = completion is not null && !completion.IsNull(i);
            var hasCompletionTokens = completionTokens is not null && !completionTokens.IsNull(i);
            var language = hasTokens || hasPrompt || hasCompletion || hasCompletionTokens;
            Check(hasFeatures != language, EventType, "features", i, hasFeatures
                ? "both features and a language-model input (token_ids, prompt, completion or completion_token_ids) are set; a query has exactly one input"
                : "no input is set; a query needs features, or a completion (text in 'completion' or ids in 'completion_token_ids') with its prompt");
            Check(!(hasCompletion && hasCompletionTokens), EventType, "completion_token_ids", i, "both completion text and completion_token_ids are set; give the completion once");
            Check(!(hasPrompt && (hasTokens || hasCompletionTokens)) && !(hasTokens && hasCompletion), EventType, hasPrompt ? "prompt" : "token_ids", i,
                "text and token ids are mixed; give prompt and completion both as text ('prompt', 'completion') or both as ids ('token_ids', 'completion_token_ids')");
            result[i] = new ModelQuery(queryId.Required(i), model.Required(i),
                hasFeatures ? features!.Get(i).ToArray() : null,
                hasTokens ? tokens!.Get(i).ToArray() : null,
                time[i])
            {
                Tokenizer = tokenizer?.Get(i),
                Prompt = hasPrompt ? prompt!.Get(i) : null,
                Completion = hasCompletion ? completion!.Get(i) : null,
                CompletionTokenIds = hasCompletionTokens ? completionTokens!.Get(i).ToArray() : null,
            };
        }
        return result;
    }
}

/// <summary>
/// The training data a query's prediction is attributed to. <see cref="OutputFunction"/> says which scalar of the model
/// the scores explain (a classifier's predicted-class margin, a language model's completion log-likelihood);
/// <see cref="ExampleSourceIds"/> gives each top example's source and <see cref="SourceNames"/> each source's name, so a
/// reader needs no catalogue to show "document, source, score".
/// </summary>
/// <param name="QueryId">Query id (topic key).</param>
/// <param name="ModelVersion">Model version that served the query.</param>
/// <param name="Method">Attribution method name.</param>
/// <param name="ExampleIds">Top-k training example (document) ids, best first.</param>
/// <param name="Scores">Score of each top-k example, same length as <paramref name="ExampleIds"/>.</param>
/// <param name="SourceIds">Data source ids.</param>
/// <param name="SourceScores">Summed score per source, same length as <paramref name="SourceIds"/>.</param>
/// <param name="LatencyMicros">Query arrival to result, in microseconds.</param>
public sealed record AttributionResult(string QueryId, string ModelVersion, string Method, IReadOnlyList<long> ExampleIds, IReadOnlyList<float> Scores,
    IReadOnlyList<long> SourceIds, IReadOnlyList<float> SourceScores, long LatencyMicros)
    : IArrowEvent<AttributionResult>
{
    /// <summary>The model output the scores explain, in words (null when the writer did not say).</summary>
    public string? OutputFunction { get; init; }

    /// <summary>Source id of each top example, aligned with <see cref="ExampleIds"/> (null when not given).</summary>
    public IReadOnlyList<long>? ExampleSourceIds { get; init; }

    /// <summary>Name of each source, aligned with <see cref="SourceIds"/> (null when not given).</summary>
    public IReadOnlyList<string>? SourceNames { get; init; }

    /// <inheritdoc/>
    public static string EventType => EventTypes.Attribution;

    /// <inheritdoc/>
    public static int SchemaVersion => 1;

    /// <inheritdoc/>
    public static Schema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("query_id", StringType.Default),
        Required("model_version", StringType.Default),
        Required("method", StringType.Default),
        Required("example_ids", Int64List),
        Required("scores", Float32List),
        Required("source_ids", Int64List),
        Required("source_scores", Float32List),
        Required("latency_us", Int64Type.Default),
        Optional("output_function", StringType.Default),
        Optional("example_source_ids", Int64List),
        Optional("source_names", Utf8List));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<AttributionResult> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(Map(events, e => e.QueryId)),
            ArrowArrays.Utf8(Map(events, e => e.ModelVersion)),
            ArrowArrays.Utf8(Map(events, e => e.Method)),
            ArrowArrays.List(Int64List, Map(events, e => e.ExampleIds)),
            ArrowArrays.List(Float32List, Map(events, e => e.Scores)),
            ArrowArrays.List(Int64List, Map(events, e => e.SourceIds)),
            ArrowArrays.List(Float32List, Map(events, e => e.SourceScores)),
            ArrowArrays.Int64(Map(events, e => e.LatencyMicros)),
            ArrowArrays.Utf8(Map(events, e => e.OutputFunction)),
            ArrowArrays.List(Int64List, Map(events, e => e.ExampleSourceIds)),
            ArrowArrays.Utf8List(Utf8List, Map(events, e => e.SourceNames)),
        ], events.Count);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<AttributionResult> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var b = new EventBatch(batch, EventType);
        var queryId = b.Utf8("query_id");
        var model = b.Utf8("model_version");
        var method = b.Utf8("method");
        var examples = b.List<long>("example_ids", Int64Type.Default);
        var scores = b.List<float>("scores", FloatType.Default);
        var sources = b.List<long>("source_ids", Int64Type.Default);
        var sourceScores = b.List<float>("source_scores", FloatType.Default);
        var latency = b.Primitive<long>("latency_us", Int64Type.Default);
        var output = b.OptionalUtf8("output_function");
        var exampleSources = b.OptionalList<long>("example_source_ids", Int64Type.Default);
        var sourceNames = b.OptionalUtf8List("source_names");
        var result = new AttributionResult[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var e = examples.Get(i);
            var s = scores.Get(i);
            var src = sources.Get(i);
            var ss = sourceScores.Get(i);
            Check(e.Length == s.Length, EventType, "scores", i, $"{e.Length} example ids but {s.Length} scores");
            Check(src.Length == ss.Length, EventType, "source_scores", i, $"{src.Length} source ids but {ss.Length} source scores");
            Check(latency[i] >= 0, EventType, "latency_us", i, $"latency {latency[i]} us is negative");
            long[]? es = exampleSources is null || exampleSources.IsNull(i) ? null : exampleSources.Get(i).ToArray();
            Check(es is null || es.Length == e.Length, EventType, "example_source_ids", i, $"{es?.Length} example source ids for {e.Length} example ids; give one source per example");
            string[]? names = sourceNames is null || sourceNames.IsNull(i) ? null : sourceNames.Get(i);
            Check(names is null || names.Length == src.Length, EventType, "source_names", i, $"{names?.Length} source names for {src.Length} source ids; give one name per source");
            result[i] = new AttributionResult(queryId.Required(i), model.Required(i), method.Required(i), e.ToArray(), s.ToArray(), src.ToArray(), ss.ToArray(), latency[i])
            {
                OutputFunction = output?.Get(i),
                ExampleSourceIds = es,
                SourceNames = names,
            };
        }
        return result;
    }
}

/// <summary>Attribution mass on flagged (e.g. test-set or licensed) data passed a threshold.</summary>
/// <param name="QueryId">The query whose attribution triggered the alert.</param>
/// <param name="SourceIds">Flagged sources that contributed.</param>
/// <param name="ExampleIds">Flagged examples that contributed.</param>
/// <param name="Score">Attribution mass on the flagged data.</param>
/// <param name="Threshold">The threshold it passed.</param>
public sealed record ContaminationAlert(string QueryId, IReadOnlyList<long> SourceIds, IReadOnlyList<long> ExampleIds, double Score, double Threshold)
    : IArrowEvent<ContaminationAlert>
{
    /// <inheritdoc/>
    public static string EventType => EventTypes.ContaminationAlert;

    /// <inheritdoc/>
    public static int SchemaVersion => 1;

    /// <inheritdoc/>
    public static Schema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("query_id", StringType.Default),
        Required("source_ids", Int64List),
        Required("example_ids", Int64List),
        Required("score", DoubleType.Default),
        Required("threshold", DoubleType.Default));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<ContaminationAlert> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(Map(events, e => e.QueryId)),
            ArrowArrays.List(Int64List, Map(events, e => e.SourceIds)),
            ArrowArrays.List(Int64List, Map(events, e => e.ExampleIds)),
            ArrowArrays.Float64(Map(events, e => e.Score)),
            ArrowArrays.Float64(Map(events, e => e.Threshold)),
        ], events.Count);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<ContaminationAlert> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var b = new EventBatch(batch, EventType);
        var queryId = b.Utf8("query_id");
        var sources = b.List<long>("source_ids", Int64Type.Default);
        var examples = b.List<long>("example_ids", Int64Type.Default);
        var score = b.Primitive<double>("score", DoubleType.Default);
        var threshold = b.Primitive<double>("threshold", DoubleType.Default);
        var result = new ContaminationAlert[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = new ContaminationAlert(queryId.Required(i), sources.Get(i).ToArray(), examples.Get(i).ToArray(), score[i], threshold[i]);
        }
        return result;
    }
}
