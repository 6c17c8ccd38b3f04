using Attribution.Arrow;
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
    public static ArrowSchema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("run_id", ArrowType.Utf8),
        Required("step", ArrowType.Int64),
        Required("example_ids", Int64List),
        Required("source_ids", Int64List),
        Optional("payload", ArrowType.Binary));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<TrainingBatch> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(events.Select(e => e.RunId).ToArray()),
            ArrowArrays.Int64(events.Select(e => e.Step).ToArray()),
            ArrowArrays.ListOfInt64(events.Select(e => Longs(e.ExampleIds)).ToArray()),
            ArrowArrays.ListOfInt64(events.Select(e => Longs(e.SourceIds)).ToArray()),
            ArrowArrays.Binary(events.Select(e => e.Payload is null ? (ReadOnlyMemory<byte>?)null : e.Payload).ToArray()),
        ]);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<TrainingBatch> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var runId = Get(batch, EventType, "run_id", ArrowType.Utf8);
        var step = Get(batch, EventType, "step", ArrowType.Int64);
        var examples = Get(batch, EventType, "example_ids", Int64List);
        var sources = Get(batch, EventType, "source_ids", Int64List);
        var payload = GetOptional(batch, EventType, "payload", ArrowType.Binary);
        var result = new TrainingBatch[batch.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var e = examples.GetInt64List(i);
            var s = sources.GetInt64List(i);
            Check(e.Length == s.Length, EventType, "source_ids", i, $"{e.Length} example ids but {s.Length} source ids; each example needs its source");
            result[i] = new TrainingBatch(String(runId, i), step.Int64Values[i], e.ToArray(), s.ToArray(),
                payload is null || payload.IsNull(i) ? null : payload.GetBytes(i).ToArray());
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
    public static ArrowSchema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("run_id", ArrowType.Utf8),
        Required("step", ArrowType.Int64),
        Required("uri", ArrowType.Utf8),
        Required("checksum", ArrowType.Utf8),
        Required("parameter_count", ArrowType.Int64));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<CheckpointPublished> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(events.Select(e => e.RunId).ToArray()),
            ArrowArrays.Int64(events.Select(e => e.Step).ToArray()),
            ArrowArrays.Utf8(events.Select(e => e.Uri).ToArray()),
            ArrowArrays.Utf8(events.Select(e => e.Checksum).ToArray()),
            ArrowArrays.Int64(events.Select(e => e.ParameterCount).ToArray()),
        ]);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<CheckpointPublished> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var runId = Get(batch, EventType, "run_id", ArrowType.Utf8);
        var step = Get(batch, EventType, "step", ArrowType.Int64);
        var uri = Get(batch, EventType, "uri", ArrowType.Utf8);
        var checksum = Get(batch, EventType, "checksum", ArrowType.Utf8);
        var count = Get(batch, EventType, "parameter_count", ArrowType.Int64);
        var result = new CheckpointPublished[batch.Length];
        for (var i = 0; i < result.Length; i++)
        {
            Check(count.Int64Values[i] >= 0, EventType, "parameter_count", i, $"parameter count {count.Int64Values[i]} is negative");
            Check(String(uri, i).Length > 0, EventType, "uri", i, "uri is empty");
            result[i] = new CheckpointPublished(String(runId, i), step.Int64Values[i], String(uri, i), String(checksum, i), count.Int64Values[i]);
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
    public static ArrowSchema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("run_id", ArrowType.Utf8),
        Required("step", ArrowType.Int64),
        Required("subject", ArrowType.Int32),
        Required("subject_id", ArrowType.Int64),
        Required("encoding", ArrowType.Utf8),
        Required("length", ArrowType.Int32),
        Required("shift", ArrowType.Binary));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<InfluenceProbe> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(events.Select(e => e.RunId).ToArray()),
            ArrowArrays.Int64(events.Select(e => e.Step).ToArray()),
            ArrowArrays.Int32(events.Select(e => (int)e.Subject).ToArray()),
            ArrowArrays.Int64(events.Select(e => e.SubjectId).ToArray()),
            ArrowArrays.Utf8(events.Select(e => e.Encoding).ToArray()),
            ArrowArrays.Int32(events.Select(e => e.Length).ToArray()),
            ArrowArrays.Binary(events.Select(e => (ReadOnlyMemory<byte>?)e.Shift).ToArray()),
        ]);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<InfluenceProbe> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var runId = Get(batch, EventType, "run_id", ArrowType.Utf8);
        var step = Get(batch, EventType, "step", ArrowType.Int64);
        var subject = Get(batch, EventType, "subject", ArrowType.Int32);
        var subjectId = Get(batch, EventType, "subject_id", ArrowType.Int64);
        var encoding = Get(batch, EventType, "encoding", ArrowType.Utf8);
        var length = Get(batch, EventType, "length", ArrowType.Int32);
        var shift = Get(batch, EventType, "shift", ArrowType.Binary);
        var result = new InfluenceProbe[batch.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var s = subject.Int32Values[i];
            Check(s is (int)ProbeSubject.Example or (int)ProbeSubject.Source, EventType, "subject", i, $"subject {s} is not 1 (example) or 2 (source)");
            var enc = String(encoding, i);
            var width = ShiftEncodings.BytesPerElement(enc);
            Check(width > 0, EventType, "encoding", i, $"unknown shift encoding '{enc}' (known: {ShiftEncodings.Float32}, {ShiftEncodings.Float16})");
            var n = length.Int32Values[i];
            var bytes = shift.GetBytes(i);
            Check(n >= 0 && (long)n * width == bytes.Length, EventType, "shift", i, $"{bytes.Length} bytes do not hold {n} {enc} elements ({width} bytes each)");
            result[i] = new InfluenceProbe(String(runId, i), step.Int64Values[i], (ProbeSubject)s, subjectId.Int64Values[i], enc, n, bytes.ToArray());
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
    public static ArrowSchema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("query_id", ArrowType.Utf8),
        Required("model_version", ArrowType.Utf8),
        Optional("features", Float32List),
        Optional("token_ids", Int64List),
        Required("timestamp", UtcMicros));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<ModelQuery> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(events.Select(e => e.QueryId).ToArray()),
            ArrowArrays.Utf8(events.Select(e => e.ModelVersion).ToArray()),
            ArrowArrays.ListOfFloat32(events.Select(e => Floats(e.Features)).ToArray()),
            ArrowArrays.ListOfInt64(events.Select(e => Longs(e.TokenIds)).ToArray()),
            ArrowArrays.Timestamp(UtcMicros, events.Select(e => ToMicros(e.Timestamp)).ToArray()),
        ]);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<ModelQuery> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var queryId = Get(batch, EventType, "query_id", ArrowType.Utf8);
        var model = Get(batch, EventType, "model_version", ArrowType.Utf8);
        var features = GetOptional(batch, EventType, "features", Float32List);
        var tokens = GetOptional(batch, EventType, "token_ids", Int64List);
        var time = Get(batch, EventType, "timestamp", UtcMicros);
        var result = new ModelQuery[batch.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var hasFeatures = features is not null && !features.IsNull(i);
            var hasTokens = tokens is not null && !tokens.IsNull(i);
            Check(hasFeatures != hasTokens, EventType, "features", i, hasFeatures ? "both features and token_ids are set; a query has exactly one input" : "neither features nor token_ids is set; a query needs one input");
            result[i] = new ModelQuery(String(queryId, i), String(model, i),
                hasFeatures ? features!.GetFloat32List(i).ToArray() : null,
                hasTokens ? tokens!.GetInt64List(i).ToArray() : null,
                FromMicros(EventType, "timestamp", i, time.Int64Values[i]));
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
    public static ArrowSchema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("query_id", ArrowType.Utf8),
        Required("model_version", ArrowType.Utf8),
        Required("method", ArrowType.Utf8),
        Required("example_ids", Int64List),
        Required("scores", Float32List),
        Required("source_ids", Int64List),
        Required("source_scores", Float32List),
        Required("latency_us", ArrowType.Int64));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<AttributionResult> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(events.Select(e => e.QueryId).ToArray()),
            ArrowArrays.Utf8(events.Select(e => e.ModelVersion).ToArray()),
            ArrowArrays.Utf8(events.Select(e => e.Method).ToArray()),
            ArrowArrays.ListOfInt64(events.Select(e => Longs(e.ExampleIds)).ToArray()),
            ArrowArrays.ListOfFloat32(events.Select(e => Floats(e.Scores)).ToArray()),
            ArrowArrays.ListOfInt64(events.Select(e => Longs(e.SourceIds)).ToArray()),
            ArrowArrays.ListOfFloat32(events.Select(e => Floats(e.SourceScores)).ToArray()),
            ArrowArrays.Int64(events.Select(e => e.LatencyMicros).ToArray()),
        ]);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<AttributionResult> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var queryId = Get(batch, EventType, "query_id", ArrowType.Utf8);
        var model = Get(batch, EventType, "model_version", ArrowType.Utf8);
        var method = Get(batch, EventType, "method", ArrowType.Utf8);
        var examples = Get(batch, EventType, "example_ids", Int64List);
        var scores = Get(batch, EventType, "scores", Float32List);
        var sources = Get(batch, EventType, "source_ids", Int64List);
        var sourceScores = Get(batch, EventType, "source_scores", Float32List);
        var latency = Get(batch, EventType, "latency_us", ArrowType.Int64);
        var result = new AttributionResult[batch.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var e = examples.GetInt64List(i);
            var s = scores.GetFloat32List(i);
            var src = sources.GetInt64List(i);
            var ss = sourceScores.GetFloat32List(i);
            Check(e.Length == s.Length, EventType, "scores", i, $"{e.Length} example ids but {s.Length} scores");
            Check(src.Length == ss.Length, EventType, "source_scores", i, $"{src.Length} source ids but {ss.Length} source scores");
            Check(latency.Int64Values[i] >= 0, EventType, "latency_us", i, $"latency {latency.Int64Values[i]} us is negative");
            result[i] = new AttributionResult(String(queryId, i), String(model, i), String(method, i), e.ToArray(), s.ToArray(), src.ToArray(), ss.ToArray(), latency.Int64Values[i]);
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
    public static ArrowSchema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("query_id", ArrowType.Utf8),
        Required("source_ids", Int64List),
        Required("example_ids", Int64List),
        Required("score", ArrowType.Float64),
        Required("threshold", ArrowType.Float64));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<ContaminationAlert> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(events.Select(e => e.QueryId).ToArray()),
            ArrowArrays.ListOfInt64(events.Select(e => Longs(e.SourceIds)).ToArray()),
            ArrowArrays.ListOfInt64(events.Select(e => Longs(e.ExampleIds)).ToArray()),
            ArrowArrays.Float64(events.Select(e => e.Score).ToArray()),
            ArrowArrays.Float64(events.Select(e => e.Threshold).ToArray()),
        ]);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<ContaminationAlert> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var queryId = Get(batch, EventType, "query_id", ArrowType.Utf8);
        var sources = Get(batch, EventType, "source_ids", Int64List);
        var examples = Get(batch, EventType, "example_ids", Int64List);
        var score = Get(batch, EventType, "score", ArrowType.Float64);
        var threshold = Get(batch, EventType, "threshold", ArrowType.Float64);
        var result = new ContaminationAlert[batch.Length];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = new ContaminationAlert(String(queryId, i), sources.GetInt64List(i).ToArray(), examples.GetInt64List(i).ToArray(), score.Float64Values[i], threshold.Float64Values[i]);
        }
        return result;
    }
}
