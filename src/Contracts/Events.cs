using Apache.Arrow;
using Apache.Arrow.Types;
using Attribution.Contracts.Arrow;
using static Attribution.Contracts.Columns;

namespace Attribution.Contracts;

/// <summary>The examples (and their data sources) of one optimiser step of a training run.</summary>
/// <param name="RunId">Training run id (topic key).</param>
/// <param name="Step">Optimiser step, 0-based.</param>
/// <param name="ExampleIds">Training example ids in the batch (a language model's: 63-bit document ids).</param>
/// <param name="SourceIds">Data source id of each example, same length as <paramref name="ExampleIds"/>.</param>
/// <param name="Payload">A classifier's inputs and labels (<see cref="BatchPayload"/>), or null.</param>
/// <param name="Documents">A language model's documents: each example's token ids as the model trained on them (framed by the
/// run's tokenizer), or null. On the wire <c>token_counts</c> list&lt;int32&gt; (one per example) and <c>token_ids</c>
/// list&lt;int32&gt; (all documents' ids concatenated).</param>
public sealed record TrainingBatch(string RunId, long Step, IReadOnlyList<long> ExampleIds, IReadOnlyList<long> SourceIds, byte[]? Payload = null,
    IReadOnlyList<int[]>? Documents = null)
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
        Optional("payload", BinaryType.Default),
        Optional("token_counts", Int32List),
        Optional("token_ids", Int32List));

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
            ArrowArrays.List(Int32List, Map(events, e => e.Documents is { } d ? (IReadOnlyList<int>?)d.Select(x => x.Length).ToArray() : null)),
            ArrowArrays.List(Int32List, Map(events, e => e.Documents is { } d ? (IReadOnlyList<int>?)d.SelectMany(x => x).ToArray() : null)),
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
        var counts = b.OptionalList<int>("token_counts", Int32Type.Default);
        var tokens = b.OptionalList<int>("token_ids", Int32Type.Default);
        var result = new TrainingBatch[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var e = examples.Get(i);
            var s = sources.Get(i);
            Check(e.Length == s.Length, EventType, "source_ids", i, $"{e.Length} example ids but {s.Length} source ids; each example needs its source");
            var hasCounts = counts is not null && !counts.IsNull(i);
            var hasTokens = tokens is not null && !tokens.IsNull(i);
            Check(hasCounts == hasTokens, EventType, hasCounts ? "token_ids" : "token_counts", i, "token_counts and token_ids go together: documents need both");
            int[][]? documents = null;
            if (hasCounts)
            {
                var c = counts!.Get(i);
                var t = tokens!.Get(i);
                Check(c.Length == e.Length, EventType, "token_counts", i, $"{c.Length} token counts but {e.Length} example ids; each document needs its count");
                long total = 0;
                foreach (var n in c)
                {
                    Check(n >= 0, EventType, "token_counts", i, $"token count {n} is negative");
                    total += n;
                }
                Check(total == t.Length, EventType, "token_ids", i, $"{t.Length} token ids, but the token counts add up to {total}");
                documents = new int[c.Length][];
                for (int d = 0, at = 0; d < c.Length; at += c[d], d++)
                {
                    documents[d] = t.Slice(at, c[d]).ToArray();
                }
            }
            result[i] = new TrainingBatch(runId.Required(i), step[i], e.ToArray(), s.ToArray(),
                payload is null || payload.IsNull(i) ? null : payload.Get(i).ToArray(), documents);
        }
        return result;
    }
}

/// <summary>
/// What a service needs to know about a checkpoint besides its bytes: the model's architecture and the training recipe
/// a simulation of training continues with.
/// </summary>
/// <param name="Architecture">The model's architecture string (<c>IModel.Architecture</c>): <c>mlp:784-128-64-10</c> or a GPT config (<c>gpt:...</c>).</param>
/// <param name="LearningRate">The training learning rate (peak).</param>
/// <param name="WeightDecay">The training weight decay.</param>
/// <param name="BatchSize">Examples (or documents) per training step.</param>
/// <param name="Seed">The training seed.</param>
/// <param name="Dataset">The data the run trained on: a data set name (e.g. <c>fashion-mnist</c>) or a corpus spec (e.g. <c>fortunes,foldoc</c>).</param>
/// <param name="Tokenizer">The tokenizer of a language model (null for other models).</param>
public sealed record CheckpointRecipe(string Architecture, double LearningRate, double WeightDecay, int BatchSize, ulong Seed, string Dataset, string? Tokenizer = null);

/// <summary>A checkpoint is available by reference (large tensors never ride in messages), with its model and recipe.</summary>
/// <param name="RunId">Training run id (topic key).</param>
/// <param name="Step">Optimiser step the checkpoint was taken after.</param>
/// <param name="Uri">Where to fetch it (e.g. file:///.../step-100.safetensors).</param>
/// <param name="Checksum">Content checksum, "sha256:&lt;hex&gt;".</param>
/// <param name="ParameterCount">Number of scalar parameters.</param>
/// <param name="Recipe">Architecture and training recipe; null only in events of schema version 1 (which had no such columns).</param>
public sealed record CheckpointPublished(string RunId, long Step, string Uri, string Checksum, long ParameterCount, CheckpointRecipe? Recipe = null)
    : IArrowEvent<CheckpointPublished>
{
    private static readonly string[] RecipeColumns = ["architecture", "learning_rate", "weight_decay", "batch_size", "seed", "dataset"];

    /// <inheritdoc/>
    public static string EventType => EventTypes.CheckpointPublished;

    /// <inheritdoc/>
    public static int SchemaVersion => 2;

    /// <inheritdoc/>
    public static Schema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("run_id", StringType.Default),
        Required("step", Int64Type.Default),
        Required("uri", StringType.Default),
        Required("checksum", StringType.Default),
        Required("parameter_count", Int64Type.Default),
        Optional("architecture", StringType.Default),
        Optional("learning_rate", DoubleType.Default),
        Optional("weight_decay", DoubleType.Default),
        Optional("batch_size", Int32Type.Default),
        Optional("seed", Int64Type.Default),
        Optional("dataset", StringType.Default),
        Optional("tokenizer", StringType.Default));

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
            ArrowArrays.Utf8(Map(events, e => e.Recipe?.Architecture)),
            ArrowArrays.NullableFloat64(Map(events, e => e.Recipe?.LearningRate)),
            ArrowArrays.NullableFloat64(Map(events, e => e.Recipe?.WeightDecay)),
            ArrowArrays.NullableInt32(Map(events, e => e.Recipe?.BatchSize)),
            ArrowArrays.NullableInt64(Map(events, e => e.Recipe is { } r ? unchecked((long)r.Seed) : (long?)null)),
            ArrowArrays.Utf8(Map(events, e => e.Recipe?.Dataset)),
            ArrowArrays.Utf8(Map(events, e => e.Recipe?.Tokenizer)),
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
        var architecture = b.OptionalUtf8("architecture");
        var learningRate = b.OptionalPrimitive<double>("learning_rate", DoubleType.Default);
        var weightDecay = b.OptionalPrimitive<double>("weight_decay", DoubleType.Default);
        var batchSize = b.OptionalPrimitive<int>("batch_size", Int32Type.Default);
        var seed = b.OptionalPrimitive<long>("seed", Int64Type.Default);
        var dataset = b.OptionalUtf8("dataset");
        var tokenizer = b.OptionalUtf8("tokenizer");
        var result = new CheckpointPublished[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            Check(count[i] >= 0, EventType, "parameter_count", i, $"parameter count {count[i]} is negative");
            Check(uri.Required(i).Length > 0, EventType, "uri", i, "uri is empty");
            bool[] present = [architecture?.IsNull(i) == false, learningRate?.IsNull(i) == false, weightDecay?.IsNull(i) == false,
                batchSize?.IsNull(i) == false, seed?.IsNull(i) == false, dataset?.IsNull(i) == false];
            CheckpointRecipe? recipe = null;
            if (present.Any(p => p))
            {
                var missing = RecipeColumns.Where((_, c) => !present[c]).ToArray();
                Check(missing.Length == 0, EventType, missing.FirstOrDefault(), i, $"the recipe is partial: {string.Join(", ", missing)} missing; a checkpoint carries all of {string.Join(", ", RecipeColumns)} or none");
                var arch = architecture!.Required(i);
                Check(arch.Length > 0, EventType, "architecture", i, "architecture is empty (e.g. mlp:784-128-64-10)");
                var lr = learningRate!.Value(i);
                var wd = weightDecay!.Value(i);
                Check(double.IsFinite(lr) && lr > 0, EventType, "learning_rate", i, $"learning rate {lr} must be positive");
                Check(double.IsFinite(wd) && wd >= 0, EventType, "weight_decay", i, $"weight decay {wd} must be >= 0");
                Check(batchSize!.Value(i) >= 1, EventType, "batch_size", i, $"batch size {batchSize.Value(i)} must be >= 1");
                recipe = new CheckpointRecipe(arch, lr, wd, batchSize.Value(i), unchecked((ulong)seed!.Value(i)), dataset!.Required(i), tokenizer?.Get(i));
            }
            result[i] = new CheckpointPublished(runId.Required(i), step[i], uri.Required(i), checksum.Required(i), count[i], recipe);
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
    /// <summary>
    /// A chunk of the method's state shared by every unit (e.g. STRIDE's operator tensors); the subject id is the chunk
    /// index 0..<see cref="InfluenceProbe.SetShared"/>−1. Consecutive tensor pieces with the same name, in chunk order,
    /// concatenate row-wise into one shared tensor (large tensors are split so each record stays under a broker's
    /// message limit).
    /// </summary>
    Shared = 3,
}

/// <summary>Element type of a probe's factors: which of the two factor columns carries them. Wire values are frozen.</summary>
public enum ProbePrecision
{
    /// <summary>IEEE float32 (column <c>factors_f32</c>).</summary>
    Float32 = 1,

    /// <summary>IEEE float16 (column <c>factors_f16</c>): half the bytes, relative error ≤ 2⁻¹¹ per value.</summary>
    Float16 = 2,
}

/// <summary>One model tensor a probe covers, and how its response is stored in <see cref="InfluenceProbe.Factors"/>.</summary>
/// <param name="Name">The model's tensor name (<c>IModel.Tensors</c>, e.g. <c>layers.0.weight</c>).</param>
/// <param name="Rows">Rows of the tensor (its length for a 1-D tensor).</param>
/// <param name="Cols">Columns of the tensor (1 for a 1-D tensor).</param>
/// <param name="Rank">0: the response in full, Rows × Cols row-major; r &gt; 0: U [Rows, r] then Vt [r, Cols], row-major (U·Vt ≈ the response).</param>
public sealed record ProbeTensor(string Name, int Rows, int Cols, int Rank)
{
    /// <summary>Factor values this tensor takes: Rows × Cols in full, r × (Rows + Cols) at rank r.</summary>
    public long FactorCount => Rank == 0 ? (long)Rows * Cols : (long)Rank * (Rows + Cols);
}

/// <summary>
/// The simulated, short-horizon parameter response to one training example or source, as typed factor tensors.
/// Compacted topic: the latest probe per <see cref="Key"/> wins.
/// </summary>
/// <param name="RunId">Training run id.</param>
/// <param name="Step">Checkpoint step the simulation started from.</param>
/// <param name="Subject">Example or source.</param>
/// <param name="SubjectId">The example or source id.</param>
/// <param name="Architecture">The model's architecture string (<c>IModel.Architecture</c>, e.g. <c>mlp:784-128-64-10</c>).</param>
/// <param name="Rank">The requested per-tensor rank (0 = every tensor in full); a tensor is low rank only where that is smaller.</param>
/// <param name="SetExamples">Example probes in this (run, step) probe set, so a reader knows when the set is complete.</param>
/// <param name="SetSources">Source probes in this (run, step) probe set.</param>
/// <param name="Tensors">The tensors covered, in the model's tensor order.</param>
/// <param name="Precision">Element type on the wire.</param>
/// <param name="Factors">Every tensor's factors concatenated in <paramref name="Tensors"/> order (Σ <see cref="ProbeTensor.FactorCount"/> values).</param>
public sealed record InfluenceProbe(string RunId, long Step, ProbeSubject Subject, long SubjectId, string Architecture, int Rank, long SetExamples, long SetSources,
    IReadOnlyList<ProbeTensor> Tensors, ProbePrecision Precision, float[] Factors)
    : IArrowEvent<InfluenceProbe>
{
    /// <summary>Most tensors one probe may describe.</summary>
    public const int MaxTensors = 4096;

    /// <summary>Largest tensor dimension (rows or columns) accepted.</summary>
    public const int MaxDimension = 1 << 24;

    /// <summary>
    /// Shared-state chunks in this (run, step) probe set (<see cref="ProbeSubject.Shared"/> probes; 0 = none, as for
    /// forward-only). Optional column <c>set_shared</c> (null = 0), so sets written before it read as having none.
    /// </summary>
    public long SetShared { get; init; }

    /// <summary>Topic key: "&lt;run&gt;/&lt;step&gt;/example/&lt;id&gt;", ".../source/&lt;id&gt;" or ".../shared/&lt;chunk&gt;" (sets of different checkpoints never overwrite each other).</summary>
    public string Key => KeyOf(RunId, Step, Subject, SubjectId);

    /// <summary>The probe key of a unit: "&lt;run&gt;/&lt;step&gt;/example/&lt;id&gt;" or "&lt;run&gt;/&lt;step&gt;/source/&lt;id&gt;".</summary>
    public static string KeyOf(string runId, long step, ProbeSubject subject, long id) =>
        $"{runId}/{step}/{subject switch { ProbeSubject.Example => "example", ProbeSubject.Source => "source", _ => "shared" }}/{id}";

    /// <summary>Key of the probe set's checkpoint reference (a <see cref="CheckpointPublished"/> copy) on the probes topic: "&lt;run&gt;/&lt;step&gt;/checkpoint".</summary>
    public static string CheckpointKey(string runId, long step) => $"{runId}/{step}/checkpoint";

    /// <inheritdoc/>
    public static string EventType => EventTypes.InfluenceProbe;

    /// <inheritdoc/>
    public static int SchemaVersion => 2;

    /// <inheritdoc/>
    public static Schema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("run_id", StringType.Default),
        Required("step", Int64Type.Default),
        Required("subject", Int32Type.Default),
        Required("subject_id", Int64Type.Default),
        Required("architecture", StringType.Default),
        Required("rank", Int32Type.Default),
        Required("set_examples", Int64Type.Default),
        Required("set_sources", Int64Type.Default),
        Required("tensor_names", Utf8List),
        Required("tensor_rows", Int32List),
        Required("tensor_cols", Int32List),
        Required("tensor_ranks", Int32List),
        Optional("factors_f32", Float32List),
        Optional("factors_f16", Float16List),
        Optional("set_shared", Int64Type.Default));

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
            ArrowArrays.Utf8(Map(events, e => e.Architecture)),
            ArrowArrays.Int32(Map(events, e => e.Rank)),
            ArrowArrays.Int64(Map(events, e => e.SetExamples)),
            ArrowArrays.Int64(Map(events, e => e.SetSources)),
            ArrowArrays.Utf8List(Utf8List, Map(events, e => (IReadOnlyList<string>?)e.Tensors.Select(t => t.Name).ToArray())),
            ArrowArrays.List(Int32List, Map(events, e => (IReadOnlyList<int>?)e.Tensors.Select(t => t.Rows).ToArray())),
            ArrowArrays.List(Int32List, Map(events, e => (IReadOnlyList<int>?)e.Tensors.Select(t => t.Cols).ToArray())),
            ArrowArrays.List(Int32List, Map(events, e => (IReadOnlyList<int>?)e.Tensors.Select(t => t.Rank).ToArray())),
            ArrowArrays.List(Float32List, Map(events, e => e.Precision == ProbePrecision.Float32 ? (IReadOnlyList<float>?)e.Factors : null)),
            ArrowArrays.List(Float16List, Map(events, e => e.Precision == ProbePrecision.Float16 ? (IReadOnlyList<Half>?)ToHalf(e.Factors) : null)),
            ArrowArrays.NullableInt64(Map(events, e => e.SetShared == 0 ? (long?)null : e.SetShared)),
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
        var architecture = b.Utf8("architecture");
        var rank = b.Primitive<int>("rank", Int32Type.Default);
        var setExamples = b.Primitive<long>("set_examples", Int64Type.Default);
        var setSources = b.Primitive<long>("set_sources", Int64Type.Default);
        var names = b.StringList("tensor_names");
        var rows = b.List<int>("tensor_rows", Int32Type.Default);
        var cols = b.List<int>("tensor_cols", Int32Type.Default);
        var ranks = b.List<int>("tensor_ranks", Int32Type.Default);
        var f32 = b.OptionalList<float>("factors_f32", FloatType.Default);
        var f16 = b.OptionalList<Half>("factors_f16", HalfFloatType.Default);
        var setShared = b.OptionalPrimitive<long>("set_shared", Int64Type.Default);
        var result = new InfluenceProbe[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var s = subject[i];
            Check(s is (int)ProbeSubject.Example or (int)ProbeSubject.Source or (int)ProbeSubject.Shared, EventType, "subject", i, $"subject {s} is not 1 (example), 2 (source) or 3 (shared)");
            var shared = setShared is null || setShared.IsNull(i) ? 0 : setShared.Value(i);
            Check(shared >= 0, EventType, "set_shared", i, $"set_shared {shared} must be >= 0");
            Check(s != (int)ProbeSubject.Shared || (subjectId[i] >= 0 && subjectId[i] < shared), EventType, "subject_id", i, $"shared chunk {subjectId[i]} is outside 0..set_shared-1 (set_shared {shared})");
            Check(rank[i] >= 0, EventType, "rank", i, $"rank {rank[i]} is negative");
            Check(setExamples[i] >= 0 && setSources[i] >= 0, EventType, "set_examples", i, $"set sizes {setExamples[i]}/{setSources[i]} must be >= 0");
            var arch = architecture.Required(i);
            Check(arch.Length > 0, EventType, "architecture", i, "architecture is empty; it names the model the probe belongs to (e.g. mlp:784-128-64-10)");
            var count = names.Count(i);
            var r = rows.Get(i);
            var c = cols.Get(i);
            var k = ranks.Get(i);
            Check(count <= MaxTensors, EventType, "tensor_names", i, $"{count} tensors; at most {MaxTensors}");
            Check(r.Length == count && c.Length == count && k.Length == count, EventType, "tensor_rows", i,
                $"{count} tensor names but {r.Length} rows, {c.Length} cols and {k.Length} ranks; each tensor needs one of each");
            // Every length is checked (in 64-bit) against the factors present before anything is allocated.
            long expected = 0;
            for (var t = 0; t < count; t++)
            {
                Check(r[t] is >= 1 and <= MaxDimension && c[t] is >= 1 and <= MaxDimension, EventType, "tensor_rows", i, $"tensor {t} is {r[t]} x {c[t]}; dimensions must be 1..{MaxDimension}");
                Check(k[t] >= 0 && k[t] <= Math.Min(r[t], c[t]), EventType, "tensor_ranks", i, $"tensor {t} ({r[t]} x {c[t]}) has rank {k[t]}; must be 0 (full) .. {Math.Min(r[t], c[t])}");
                expected += k[t] == 0 ? (long)r[t] * c[t] : (long)k[t] * (r[t] + c[t]);
            }
            var has32 = f32 is not null && !f32.IsNull(i);
            var has16 = f16 is not null && !f16.IsNull(i);
            Check(has32 != has16, EventType, "factors_f32", i, has32 ? "both factors_f32 and factors_f16 are set; a probe has exactly one" : "neither factors_f32 nor factors_f16 is set; a probe needs its factors");
            var length = has32 ? f32!.Get(i).Length : f16!.Get(i).Length;
            var column = has32 ? "factors_f32" : "factors_f16";
            Check(length == expected, EventType, column, i, $"{length} factor values, but the {count} tensors' shapes and ranks need {expected}");
            var factors = new float[length];
            if (has32)
            {
                f32!.Get(i).CopyTo(factors);
            }
            else
            {
                var half = f16!.Get(i);
                for (var j = 0; j < factors.Length; j++)
                {
                    factors[j] = (float)half[j];
                }
            }
            var bad = System.Array.FindIndex(factors, v => !float.IsFinite(v));
            Check(bad < 0, EventType, column, i, $"factor value {bad} is {(bad >= 0 ? factors[bad] : 0)}; probes must be finite");
            var tensorNames = names.Get(i);
            var tensors = new ProbeTensor[count];
            for (var t = 0; t < count; t++)
            {
                tensors[t] = new ProbeTensor(tensorNames[t], r[t], c[t], k[t]);
            }
            result[i] = new InfluenceProbe(runId.Required(i), step[i], (ProbeSubject)s, subjectId[i], arch, rank[i], setExamples[i], setSources[i], tensors,
                has32 ? ProbePrecision.Float32 : ProbePrecision.Float16, factors) { SetShared = shared };
        }
        return result;
    }

    private static Half[] ToHalf(float[] values)
    {
        var half = new Half[values.Length];
        for (var j = 0; j < half.Length; j++)
        {
            half[j] = (Half)values[j];
        }
        return half;
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
/// <param name="SourceScores">Score per source, same length as <paramref name="SourceIds"/>, as <paramref name="Method"/> defines it: the method's
/// source scores (forward-only: each source simulated as one unit; others: the sum of its examples' scores), or, when the
/// Scorer serves <c>Scorer:Normalize=relative</c>, the source's share of the positive relative influence of its
/// documents (Σ max(0, score ÷ ‖response‖) over its documents ÷ the same over all; in [0, 1], summing to 1, or all 0).</param>
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

/// <summary>
/// The exact-span index of a checkpoint's training documents is available by reference (like the checkpoint itself: an
/// index is megabytes, more than an event should carry). Put on the compacted probes topic under
/// <see cref="KeyFor"/> by the Simulator; the Scorer loads it (checksum verified) for the checkpoint's text queries.
/// </summary>
/// <param name="RunId">Training run id.</param>
/// <param name="Step">The checkpoint step whose training set (documents trained at steps &lt;= Step) is indexed.</param>
/// <param name="Uri">Where the index file is (e.g. file:///.../spans/run-400.spans), in the span index format.</param>
/// <param name="Checksum">Content checksum, "sha256:&lt;hex&gt;".</param>
/// <param name="Documents">Documents indexed.</param>
/// <param name="Tokens">Tokens indexed.</param>
/// <param name="Bytes">Size of the index file.</param>
/// <param name="Tokenizer">The tokenizer the documents' token ids come from: a query's ids are matched only under the same one.</param>
public sealed record SpanIndexPublished(string RunId, long Step, string Uri, string Checksum, int Documents, long Tokens, long Bytes, string Tokenizer)
    : IArrowEvent<SpanIndexPublished>
{
    /// <inheritdoc/>
    public static string EventType => EventTypes.SpanIndexPublished;

    /// <inheritdoc/>
    public static int SchemaVersion => 1;

    /// <summary>The probes-topic key of a run's span index at a step: "&lt;run&gt;/&lt;step&gt;/spans".</summary>
    public static string KeyFor(string runId, long step) => $"{runId}/{step}/spans";

    /// <inheritdoc/>
    public static Schema Schema { get; } = Columns.Schema(EventType, SchemaVersion,
        Required("run_id", StringType.Default),
        Required("step", Int64Type.Default),
        Required("uri", StringType.Default),
        Required("checksum", StringType.Default),
        Required("documents", Int32Type.Default),
        Required("tokens", Int64Type.Default),
        Required("bytes", Int64Type.Default),
        Required("tokenizer", StringType.Default));

    /// <inheritdoc/>
    public static RecordBatch ToArrow(IReadOnlyList<SpanIndexPublished> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        return new RecordBatch(Schema,
        [
            ArrowArrays.Utf8(Map(events, e => e.RunId)),
            ArrowArrays.Int64(Map(events, e => e.Step)),
            ArrowArrays.Utf8(Map(events, e => e.Uri)),
            ArrowArrays.Utf8(Map(events, e => e.Checksum)),
            ArrowArrays.Int32(Map(events, e => e.Documents)),
            ArrowArrays.Int64(Map(events, e => e.Tokens)),
            ArrowArrays.Int64(Map(events, e => e.Bytes)),
            ArrowArrays.Utf8(Map(events, e => e.Tokenizer)),
        ], events.Count);
    }

    /// <inheritdoc/>
    public static IReadOnlyList<SpanIndexPublished> FromArrow(RecordBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var b = new EventBatch(batch, EventType);
        var runId = b.Utf8("run_id");
        var step = b.Primitive<long>("step", Int64Type.Default);
        var uri = b.Utf8("uri");
        var checksum = b.Utf8("checksum");
        var documents = b.Primitive<int>("documents", Int32Type.Default);
        var tokens = b.Primitive<long>("tokens", Int64Type.Default);
        var bytes = b.Primitive<long>("bytes", Int64Type.Default);
        var tokenizer = b.Utf8("tokenizer");
        var result = new SpanIndexPublished[b.Length];
        for (var i = 0; i < result.Length; i++)
        {
            Check(uri.Required(i).Length > 0, EventType, "uri", i, "uri is empty");
            Check(checksum.Required(i).StartsWith("sha256:", StringComparison.Ordinal), EventType, "checksum", i, $"checksum '{checksum.Required(i)}' is not 'sha256:<hex>'");
            Check(documents[i] >= 0 && tokens[i] >= 0 && bytes[i] > 0, EventType, "documents", i, $"counts must be non-negative and the size positive (documents {documents[i]}, tokens {tokens[i]}, bytes {bytes[i]})");
            Check(tokenizer.Required(i).Length > 0, EventType, "tokenizer", i, "tokenizer is empty");
            result[i] = new SpanIndexPublished(runId.Required(i), step[i], uri.Required(i), checksum.Required(i), documents[i], tokens[i], bytes[i], tokenizer.Required(i));
        }
        return result;
    }
}
