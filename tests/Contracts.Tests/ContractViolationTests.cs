using Apache.Arrow;
using Apache.Arrow.Types;
using Attribution.Contracts.Arrow;

namespace Attribution.Contracts.Tests;

public class ContractViolationTests
{
    private static string Reject<T>(IEventCodec<T> codec, byte[] bytes) =>
        Assert.Throws<EventContractException>(() => codec.Decode(bytes)).Message;

    private static byte[] Stream(Schema schema, params IArrowArray[] columns) =>
        ArrowIpc.ToBytes(new RecordBatch(schema, columns, columns[0].Length));

    private static Schema WithMetadata(string eventType, string version, params Field[] fields) =>
        new(fields, new Dictionary<string, string> { ["event-type"] = eventType, ["schema-version"] = version });

    [Fact]
    public void NotAnArrowStream_IsAContractErrorNamingTheEventType()
    {
        var message = Reject(EventCodecs.Queries, [1, 2, 3]);
        Assert.StartsWith("model-query event: not a valid Arrow IPC stream: Malformed Arrow input at byte 0", message, StringComparison.Ordinal);
    }

    [Fact]
    public void QueryMissingItsRequiredColumn_IsRejectedWithTheColumnName()
    {
        var schema = WithMetadata("model-query", "1", new Field("model_version", StringType.Default, true), new Field("features", new ListType(FloatType.Default), true));
        var bytes = Stream(schema, ArrowArrays.Utf8(["m"]), ArrowArrays.List<float>(new ListType(FloatType.Default), [new float[] { 1 }]));
        Assert.Equal("model-query event, column 'query_id': required column is missing", Reject(EventCodecs.Queries, bytes));
    }

    [Fact]
    public void QueryWithBothOrNeitherInput_IsRejectedWithTheRow()
    {
        var both = ModelQuery.ToArrow([new ModelQuery("a", "m", [1f], null, default), new ModelQuery("b", "m", [1f], [2], default)]);
        var bytes = ArrowIpc.ToBytes(both);
        Assert.Equal("model-query event row 1, column 'features': both features and a language-model input (token_ids, prompt, completion or completion_token_ids) are set; a query has exactly one input",
            Assert.Throws<EventContractException>(() => EventCodecs.Queries.DecodeBatch(bytes)).Message);
        var neither = ArrowIpc.ToBytes(ModelQuery.ToArrow([new ModelQuery("a", "m", null, null, default)]));
        Assert.Contains("no input is set; a query needs features, or a completion", Reject(EventCodecs.Queries, neither), StringComparison.Ordinal);
        var textAndFeatures = new ModelQuery("a", "m", [1f], null, default) { Completion = "x" };
        Assert.Contains("both features and a language-model input", Reject(EventCodecs.Queries, EventCodecs.Queries.Encode(textAndFeatures)), StringComparison.Ordinal);
    }

    [Fact]
    public void LanguageModelQueryMixingTextAndIds_IsRejectedWithTheColumn()
    {
        // A completion given twice, or a prompt in one form and the completion in the other, is ambiguous: which wins?
        var twice = ModelQuery.FromText("a", "m", "bytes", "p", "c", default) with { CompletionTokenIds = [99] };
        Assert.Equal("model-query event row 0, column 'completion_token_ids': both completion text and completion_token_ids are set; give the completion once",
            Reject(EventCodecs.Queries, EventCodecs.Queries.Encode(twice)));
        var textPrompt = ModelQuery.FromTokens("a", "m", "bytes", [], [99], default) with { Prompt = "p" };
        Assert.StartsWith("model-query event row 0, column 'prompt': text and token ids are mixed;", Reject(EventCodecs.Queries, EventCodecs.Queries.Encode(textPrompt)), StringComparison.Ordinal);
        var idPrompt = ModelQuery.FromText("a", "m", "bytes", "p", "c", default) with { Prompt = null, TokenIds = [1] };
        Assert.StartsWith("model-query event row 0, column 'token_ids': text and token ids are mixed;", Reject(EventCodecs.Queries, EventCodecs.Queries.Encode(idPrompt)), StringComparison.Ordinal);
    }

    [Fact]
    public void AttributionWithMisalignedSourceNamesOrExampleSources_IsRejected()
    {
        var names = EventRoundTripTests.Attribution(2) with { SourceNames = ["only one"] };
        Assert.Equal("attribution event row 0, column 'source_names': 1 source names for 3 source ids; give one name per source",
            Reject(EventCodecs.Attributions, EventCodecs.Attributions.Encode(names)));
        var sources = EventRoundTripTests.Attribution(2) with { ExampleSourceIds = [1, 2, 3] };
        Assert.Equal("attribution event row 0, column 'example_source_ids': 3 example source ids for 2 example ids; give one source per example",
            Reject(EventCodecs.Attributions, EventCodecs.Attributions.Encode(sources)));
    }

    [Fact]
    public void AttributionWithMismatchedIdsAndScores_IsRejected()
    {
        var bad = new AttributionResult("q", "m", "x", [1, 2, 3], [0.1f], [], [], 5);
        var e = Assert.Throws<EventContractException>(() => EventCodecs.Attributions.Decode(EventCodecs.Attributions.Encode(bad)));
        Assert.Equal(("scores", 0), (e.Column, e.Row));
        Assert.Contains("3 example ids but 1 scores", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongColumnType_IsRejected()
    {
        var schema = WithMetadata("checkpoint-published", "1",
            new Field("run_id", StringType.Default, true), new Field("step", Int32Type.Default, true), new Field("uri", StringType.Default, true),
            new Field("checksum", StringType.Default, true), new Field("parameter_count", Int64Type.Default, true));
        var bytes = Stream(schema, ArrowArrays.Utf8(["r"]), ArrowArrays.Int32([1]), ArrowArrays.Utf8(["u"]), ArrowArrays.Utf8(["c"]), ArrowArrays.Int64([1]));
        Assert.Equal("checkpoint-published event, column 'step': column is int32, expected int64", Reject(EventCodecs.Checkpoints, bytes));
    }

    [Fact]
    public void NullInARequiredColumn_IsRejectedWithTheRow()
    {
        var schema = WithMetadata("checkpoint-published", "1",
            new Field("run_id", StringType.Default, true), new Field("step", Int64Type.Default, true), new Field("uri", StringType.Default, true),
            new Field("checksum", StringType.Default, true), new Field("parameter_count", Int64Type.Default, true));
        var bytes = Stream(schema, ArrowArrays.Utf8(["r", "r"]), ArrowArrays.Int64([1, 2]), ArrowArrays.Utf8(["u", null]), ArrowArrays.Utf8(["c", "c"]), ArrowArrays.Int64([1, 2]));
        var e = Assert.Throws<EventContractException>(() => EventCodecs.Checkpoints.DecodeBatch(bytes));
        Assert.Equal("checkpoint-published event row 1, column 'uri': value is null but the field is required", e.Message);
    }

    [Fact]
    public void WrongEventTypeOrNewerSchemaVersion_IsRejected()
    {
        var alert = EventCodecs.Alerts.Encode(new ContaminationAlert("q", [1], [2], 1, 0.5));
        Assert.Equal("attribution event: the stream holds 'contamination-alert' events, not 'attribution'", Reject(EventCodecs.Attributions, alert));
        var schema = WithMetadata("contamination-alert", "2", ContaminationAlert.Schema.FieldsList.ToArray());
        var newer = ArrowIpc.ToBytes(new RecordBatch(schema, ContaminationAlert.ToArrow([new ContaminationAlert("q", [], [], 1, 1)]).Arrays, 1));
        Assert.Contains("schema version 2 is newer than this build supports (1)", Reject(EventCodecs.Alerts, newer), StringComparison.Ordinal);
    }

    [Fact]
    public void ProbeWhoseFactorsDoNotMatchItsTensors_IsRejected()
    {
        var probe = EventRoundTripTests.Probe(ProbePrecision.Float32);
        Assert.Equal("influence-probe event row 0, column 'factors_f32': 7 factor values, but the 2 tensors' shapes and ranks need 8",
            Reject(EventCodecs.Probes, EventCodecs.Probes.Encode(probe with { Factors = probe.Factors[..7] })));
        Assert.Equal("influence-probe event row 0, column 'factors_f16': 7 factor values, but the 2 tensors' shapes and ranks need 8",
            Reject(EventCodecs.Probes, EventCodecs.Probes.Encode(probe with { Precision = ProbePrecision.Float16, Factors = probe.Factors[..7] })));
        Assert.Equal("influence-probe event row 0, column 'tensor_ranks': tensor 0 (3 x 2) has rank 3; must be 0 (full) .. 2",
            Reject(EventCodecs.Probes, EventCodecs.Probes.Encode(probe with { Tensors = [new("layers.0.weight", 3, 2, 3), probe.Tensors[1]] })));
        // Hostile shapes: the product overflows 32 bits and is refused from the lengths alone, before anything is allocated.
        Assert.Equal("influence-probe event row 0, column 'tensor_rows': tensor 0 is 16777217 x 1; dimensions must be 1..16777216",
            Reject(EventCodecs.Probes, EventCodecs.Probes.Encode(probe with { Tensors = [new("w", (1 << 24) + 1, 1, 0)] })));
        Assert.Equal("influence-probe event row 0, column 'factors_f32': 8 factor values, but the 1 tensors' shapes and ranks need 281474976710656",
            Reject(EventCodecs.Probes, EventCodecs.Probes.Encode(probe with { Tensors = [new("w", 1 << 24, 1 << 24, 0)] })));
        Assert.Equal("influence-probe event row 0, column 'factors_f32': factor value 2 is NaN; probes must be finite",
            Reject(EventCodecs.Probes, EventCodecs.Probes.Encode(probe with { Factors = [0, 0, float.NaN, 0, 0, 0, 0, 0] })));
        Assert.Equal("influence-probe event row 0, column 'architecture': architecture is empty; it names the model the probe belongs to (e.g. mlp:784-128-64-10)",
            Reject(EventCodecs.Probes, EventCodecs.Probes.Encode(probe with { Architecture = "" })));
    }

    [Fact]
    public void ProbeWithMismatchedTensorListsOrBothFactorColumns_IsRejected()
    {
        var probe = EventRoundTripTests.Probe(ProbePrecision.Float32);
        var columns = InfluenceProbe.ToArrow([probe]).Arrays.ToArray();
        var f16 = InfluenceProbe.ToArrow([probe with { Precision = ProbePrecision.Float16 }]).Arrays.ToArray();
        var both = columns.ToArray();
        both[13] = f16[13];
        Assert.Equal("influence-probe event row 0, column 'factors_f32': both factors_f32 and factors_f16 are set; a probe has exactly one",
            Reject(EventCodecs.Probes, Stream(InfluenceProbe.Schema, both)));
        var shortRows = columns.ToArray();
        shortRows[9] = InfluenceProbe.ToArrow([probe with { Tensors = [probe.Tensors[0]], Factors = probe.Factors[..5] }]).Arrays.ElementAt(9);
        Assert.Equal("influence-probe event row 0, column 'tensor_rows': 2 tensor names but 1 rows, 2 cols and 2 ranks; each tensor needs one of each",
            Reject(EventCodecs.Probes, Stream(InfluenceProbe.Schema, shortRows)));
    }

    [Fact]
    public void BatchWhoseDocumentTokensDoNotMatchTheirCounts_IsRejected()
    {
        var batch = new TrainingBatch("lm", 1, [1, 2], [0, 0], Documents: [[256, 1], [256]]);
        var columns = TrainingBatch.ToArrow([batch]).Arrays.ToArray();
        columns[6] = TrainingBatch.ToArrow([batch with { Documents = [[256], [256]] }]).Arrays.ElementAt(6);
        Assert.Equal("training-batch event row 0, column 'token_ids': 2 token ids, but the token counts add up to 3",
            Reject(EventCodecs.TrainingBatches, Stream(TrainingBatch.Schema, columns)));
        var counts = columns.ToArray();
        counts[6] = TrainingBatch.ToArrow([batch with { Documents = null }]).Arrays.ElementAt(6);
        Assert.Equal("training-batch event row 0, column 'token_ids': token_counts and token_ids go together: documents need both",
            Reject(EventCodecs.TrainingBatches, Stream(TrainingBatch.Schema, counts)));
        Assert.Equal("training-batch event row 0, column 'token_counts': 1 token counts but 2 example ids; each document needs its count",
            Reject(EventCodecs.TrainingBatches, EventCodecs.TrainingBatches.Encode(batch with { Documents = [[256]] })));
    }

    [Fact]
    public void CheckpointWithAPartialRecipe_IsRejectedNamingWhatIsMissing()
    {
        var full = new CheckpointPublished("r", 1, "u", "c", 2, EventRoundTripTests.Recipe);
        var columns = CheckpointPublished.ToArrow([full]).Arrays.ToArray();
        columns[6] = CheckpointPublished.ToArrow([full with { Recipe = null }]).Arrays.ElementAt(6);
        Assert.Equal("checkpoint-published event row 0, column 'learning_rate': the recipe is partial: learning_rate missing; a checkpoint carries all of architecture, learning_rate, weight_decay, batch_size, seed, dataset or none",
            Reject(EventCodecs.Checkpoints, Stream(CheckpointPublished.Schema, columns)));
        Assert.Equal("checkpoint-published event row 0, column 'batch_size': batch size 0 must be >= 1",
            Reject(EventCodecs.Checkpoints, EventCodecs.Checkpoints.Encode(full with { Recipe = EventRoundTripTests.Recipe with { BatchSize = 0 } })));
    }

    [Fact]
    public void TwoEventsWhereOneIsExpected_IsRejected()
    {
        var bytes = EventCodecs.Alerts.EncodeBatch([new ContaminationAlert("a", [], [], 1, 1), new ContaminationAlert("b", [], [], 1, 1)]);
        Assert.Equal("contamination-alert event: expected exactly one event in the stream, found 2", Reject(EventCodecs.Alerts, bytes));
    }

    [Fact]
    public void ExtraUnknownColumns_AreIgnoredForForwardCompatibility()
    {
        var fields = CheckpointPublished.Schema.FieldsList.Append(new Field("added_in_v1_1", BooleanType.Default, true)).ToArray();
        var schema = WithMetadata("checkpoint-published", "2", fields);
        var columns = CheckpointPublished.ToArrow([new CheckpointPublished("r", 1, "u", "c", 2)]).Arrays.Append(new BooleanArray.Builder().Append(true).Build()).ToArray();
        var decoded = EventCodecs.Checkpoints.Decode(Stream(schema, columns));
        Assert.Equal(new CheckpointPublished("r", 1, "u", "c", 2), decoded);
    }
}
