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
    public void ProbeWhoseBytesDoNotMatchEncodingAndLength_IsRejected()
    {
        var probe = new InfluenceProbe("r", 1, ProbeSubject.Example, 9, ShiftEncodings.Float32, 3, new byte[8]);
        Assert.Equal("influence-probe event row 0, column 'shift': 8 bytes do not hold 3 f32le elements (4 bytes each)",
            Reject(EventCodecs.Probes, EventCodecs.Probes.Encode(probe)));
        var unknown = probe with { Encoding = "bf16", Shift = new byte[6] };
        Assert.Contains("unknown shift encoding 'bf16'", Reject(EventCodecs.Probes, EventCodecs.Probes.Encode(unknown)), StringComparison.Ordinal);
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
        var schema = WithMetadata("checkpoint-published", "1", fields);
        var columns = CheckpointPublished.ToArrow([new CheckpointPublished("r", 1, "u", "c", 2)]).Arrays.Append(new BooleanArray.Builder().Append(true).Build()).ToArray();
        var decoded = EventCodecs.Checkpoints.Decode(Stream(schema, columns));
        Assert.Equal(new CheckpointPublished("r", 1, "u", "c", 2), decoded);
    }
}
