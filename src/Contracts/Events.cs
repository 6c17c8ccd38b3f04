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

/// <summary>A live model query: image features (float32) or token ids, never both.</summary>
/// <param name="QueryId">Query id (topic key).</param>
/// <param name="ModelVersion">Model version that served it (e.g. run id + step).</param>
/// <param name="Features">Input features (e.g. pixels), or null for token input.</param>
/// <param name="TokenIds">Input token ids, or null for feature input.</param>
/// <param name="Timestamp">When the query was served (UTC, microsecond precision on the wire).</param>
public sealed record ModelQuery(string QueryId, string ModelVersion, IReadOnlyList<float>? Features, IReadOnlyList<long>? TokenIds, DateTimeOffset Timestamp)
    : IArrowEvent<ModelQuery>
{
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
        Required("timestamp", UtcMicros));

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
        var result = new ModelQuery[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var hasFeatures = features is not null && !features.IsNull(i);
            var hasTokens = tokens is not null && !tokens.IsNull(i);
            Check(hasFeatures != hasTokens, EventType, "features", i, hasFeatures ? "both features and token_ids are set; a query has exactly one input" : "neither features nor token_ids is set; a query needs one input");
            result[i] = new ModelQuery(queryId.Required(i), model.Required(i),
                hasFeatures ? features!.Get(i).ToArray() : null,
                hasTokens ? tokens!.Get(i).ToArray() : null,
                time[i]);
        }
        return result;
    }
}

/// <summary>The training data a query's prediction is attributed to.</summary>
/// <param name="QueryId">Query id (topic key).</param>
/// <param name="ModelVersion">Model version that served the query.</param>
/// <param name="Method">Attribution method name.</param>
/// <param name="ExampleIds">Top-k training example ids, best first.</param>
/// <param name="Scores">Score of each top-k example, same length as <paramref name="ExampleIds"/>.</param>
/// <param name="SourceIds">Data source ids.</param>
/// <param name="SourceScores">Summed score per source, same length as <paramref name="SourceIds"/>.</param>
/// <param name="LatencyMicros">Query arrival to result, in microseconds.</param>
public sealed record AttributionResult(string QueryId, string ModelVersion, string Method, IReadOnlyList<long> ExampleIds, IReadOnlyList<float> Scores,
    IReadOnlyList<long> SourceIds, IReadOnlyList<float> SourceScores, long LatencyMicros)
    : IArrowEvent<AttributionResult>
{
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
        Required("latency_us", Int64Type.Default));

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
            result[i] = new AttributionResult(queryId.Required(i), model.Required(i), method.Required(i), e.ToArray(), s.ToArray(), src.ToArray(), ss.ToArray(), latency[i]);
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
