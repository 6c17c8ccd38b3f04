using Apache.Arrow;
using Apache.Arrow.Types;
using Attribution.Contracts.Arrow;

namespace Attribution.Contracts.Tests;

/// <summary>
/// Valid Arrow that maps onto a contract is read whatever variant a foreign writer chose: dictionary-encoded or large
/// strings, large lists, several batches, lz4/zstd bodies, the file format, extra (even nested) columns.
/// </summary>
public class ArrowVariantTests
{
    private static readonly DateTimeOffset T0 = EventRoundTripTests.T0;

    internal static Schema QuerySchema(params Field[] fields) =>
        new(fields, new Dictionary<string, string> { ["event-type"] = "model-query", ["schema-version"] = "1" });

    internal static DictionaryArray DictionaryStrings(string[] entries, int[] indices)
    {
        var type = new DictionaryType(Int32Type.Default, StringType.Default, false);
        return new DictionaryArray(type, ArrowArrays.Int32(indices), ArrowArrays.Utf8(entries));
    }

    /// <summary>Two queries with dictionary-encoded ids and model version, as apache-arrow's tableFromArrays writes them.</summary>
    internal static byte[] DictionaryQueries()
    {
        var schema = QuerySchema(
            new Field("query_id", new DictionaryType(Int32Type.Default, StringType.Default, false), false),
            new Field("model_version", new DictionaryType(Int32Type.Default, StringType.Default, false), false),
            new Field("features", Columns.Float32List, true),
            new Field("timestamp", Columns.UtcMicros, false));
        var batch = new RecordBatch(schema,
        [
            DictionaryStrings(["q-a", "q-b"], [0, 1]),
            DictionaryStrings(["run-1@300"], [0, 0]),
            ArrowArrays.List<float>(Columns.Float32List, [new float[] { 1, 2 }, new float[] { 3 }]),
            ArrowArrays.Timestamp(Columns.UtcMicros, [Columns.ToMicros(T0), Columns.ToMicros(T0) + 1]),
        ], 2);
        return ArrowIpc.ToBytes(schema, [batch]);
    }

    [Fact]
    public void DictionaryEncodedStrings_AreDecoded()
    {
        var queries = EventCodecs.Queries.DecodeBatch(DictionaryQueries());
        Assert.Equal(["q-a", "q-b"], queries.Select(q => q.QueryId));
        Assert.Equal(["run-1@300", "run-1@300"], queries.Select(q => q.ModelVersion));
        Assert.Same(queries[0].ModelVersion, queries[1].ModelVersion); // one dictionary entry, one string
        Assert.Equal([3f], queries[1].Features!);
        Assert.Equal(T0.AddTicks(10), queries[1].Timestamp);
    }

    [Fact]
    public void DictionaryIndexOutOfRange_IsAContractErrorNamingTheColumn()
    {
        var schema = QuerySchema(new Field("query_id", new DictionaryType(Int32Type.Default, StringType.Default, false), false),
            new Field("model_version", StringType.Default, false), new Field("token_ids", Columns.Int64List, true), new Field("timestamp", Columns.UtcMicros, false));
        var batch = new RecordBatch(schema,
        [
            DictionaryStrings(["q"], [5]),
            ArrowArrays.Utf8(["m"]),
            ArrowArrays.List<long>(Columns.Int64List, [new long[] { 1 }]),
            ArrowArrays.Timestamp(Columns.UtcMicros, [0]),
        ], 1);
        var e = Assert.Throws<EventContractException>(() => EventCodecs.Queries.Decode(ArrowIpc.ToBytes(schema, [batch])));
        Assert.Equal("query_id", e.Column);
        Assert.Contains("slot 0 refers to dictionary entry 5 of 1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LargeStringsLargeListsAndOtherTimestampUnits_AreDecoded()
    {
        var largeString = new LargeStringArray.Builder().Append("q-large").Build();
        var model = new LargeStringArray.Builder().Append("m").Build();
        var itemField = new Field("item", Int64Type.Default, false);
        var tokens = new LargeListArray(new ArrayData(new LargeListType(itemField), 1, 0, 0,
            [ArrowBuffer.Empty, new ArrowBuffer(BitConverter.GetBytes(0L).Concat(BitConverter.GetBytes(3L)).ToArray())],
            [ArrowArrays.Int64([7, 8, 9]).Data]));
        var millis = new TimestampType(TimeUnit.Millisecond, "Europe/Paris");
        var schema = QuerySchema(new Field("query_id", LargeStringType.Default, false), new Field("model_version", LargeStringType.Default, false),
            new Field("token_ids", new LargeListType(itemField), true), new Field("timestamp", millis, false));
        var batch = new RecordBatch(schema, [largeString, model, tokens, ArrowArrays.Timestamp(millis, [1_700_000_000_123])], 1);
        var query = EventCodecs.Queries.Decode(ArrowIpc.ToBytes(schema, [batch]));
        Assert.Equal(("q-large", "m", null), (query.QueryId, query.ModelVersion, query.Features));
        Assert.Equal([7L, 8, 9], query.TokenIds!);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_123), query.Timestamp);
    }

    [Fact]
    public void TimestampWithoutTimeZone_IsRejected_BecauseItIsNotAnInstant()
    {
        var naive = new TimestampType(TimeUnit.Microsecond, (string?)null);
        var schema = QuerySchema(new Field("query_id", StringType.Default, false), new Field("model_version", StringType.Default, false),
            new Field("token_ids", Columns.Int64List, true), new Field("timestamp", naive, false));
        var batch = new RecordBatch(schema, [ArrowArrays.Utf8(["q"]), ArrowArrays.Utf8(["m"]), ArrowArrays.List<long>(Columns.Int64List, [new long[] { 1 }]), ArrowArrays.Timestamp(naive, [0])], 1);
        var e = Assert.Throws<EventContractException>(() => EventCodecs.Queries.Decode(ArrowIpc.ToBytes(schema, [batch])));
        Assert.Equal("model-query event, column 'timestamp': column is timestamp[us], expected timestamp with a time zone (e.g. timestamp[us, UTC])", e.Message);
    }

    [Theory]
    [InlineData(ArrowCompression.Lz4Frame)]
    [InlineData(ArrowCompression.Zstd)]
    public void CompressedBodies_RoundTrip(ArrowCompression compression)
    {
        var events = Enumerable.Range(0, 20).Select(i => EventRoundTripTests.Attribution(100, seed: i)).ToArray();
        var codec = EventCodec<AttributionResult>.Instance.WithCompression(compression);
        var bytes = codec.EncodeBatch(events);
        Assert.True(bytes.Length < EventCodecs.Attributions.EncodeBatch(events).Length, "compressed stream is not smaller");
        var decoded = EventCodecs.Attributions.DecodeBatch(bytes); // any codec reads any compression
        for (var i = 0; i < events.Length; i++)
        {
            EventRoundTripTests.AssertSame(events[i], decoded[i]);
        }
        using var contents = ArrowIpc.Read(bytes);
        Assert.Equal(compression == ArrowCompression.Zstd ? "zstd" : "lz4_frame", contents.Compression);
    }

    [Fact]
    public void SeveralBatchesAndTheFileFormat_AreDecoded()
    {
        var a = EventRoundTripTests.Attribution(3, seed: 1);
        var b = EventRoundTripTests.Attribution(0, seed: 2);
        var c = EventRoundTripTests.Attribution(5, seed: 3);
        var batches = new[] { AttributionResult.ToArrow([a]), AttributionResult.ToArrow([]), AttributionResult.ToArrow([b, c]) };
        foreach (var bytes in new[] { ArrowIpc.ToBytes(AttributionResult.Schema, batches), ArrowIpc.ToFileBytes(AttributionResult.Schema, batches) })
        {
            var decoded = EventCodecs.Attributions.DecodeBatch(bytes);
            Assert.Equal(3, decoded.Count);
            EventRoundTripTests.AssertSame(c, decoded[2]);
        }
        using var file = ArrowIpc.Read(ArrowIpc.ToFileBytes(AttributionResult.Schema, batches, ArrowCompression.Zstd));
        Assert.Equal((ArrowIpcFormat.File, 3, "zstd"), (file.Format, file.Batches.Count, file.Compression));
    }

    [Fact]
    public void ExtraNestedColumns_AreIgnored()
    {
        // A client adds list<struct<name: utf8, weight: float64>> next to the contract's columns.
        var structType = new StructType([new Field("name", StringType.Default, true), new Field("weight", DoubleType.Default, true)]);
        var tags = new ListType(new Field("item", structType, true));
        var structs = new StructArray(structType, 2, [ArrowArrays.Utf8(["a", "b"]), ArrowArrays.Float64([0.5, 1.5])], ArrowBuffer.Empty, 0);
        var tagColumn = new ListArray(tags, 1, new ArrowBuffer(new byte[] { 0, 0, 0, 0, 2, 0, 0, 0 }), structs, ArrowBuffer.Empty, 0);
        var fields = ModelQuery.Schema.FieldsList.Append(new Field("tags", tags, true)).ToArray();
        var schema = QuerySchema(fields);
        var query = new ModelQuery("q-1", "m", [1f], null, T0);
        var columns = ModelQuery.ToArrow([query]).Arrays.Append(tagColumn).ToArray();
        var bytes = ArrowIpc.ToBytes(schema, [new RecordBatch(schema, columns, 1)]);
        EventRoundTripTests.AssertSame(query, EventCodecs.Queries.Decode(bytes));
        var text = new StringWriter();
        ArrowInspector.Describe(bytes, text);
        Assert.Contains("tags: list<item: struct<name: utf8, weight: float64>>", text.ToString(), StringComparison.Ordinal);
        Assert.Contains("tags=[{name=\"a\", weight=0.5}, {name=\"b\", weight=1.5}]", text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Inspector_PrintsFormatSchemaDictionariesAndFirstRows()
    {
        var output = new StringWriter();
        ArrowInspector.Describe(DictionaryQueries(), output, maxRows: 1, maxListItems: 1);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("format: Arrow IPC stream, ", lines[0], StringComparison.Ordinal);
        Assert.Equal("schema: 4 field(s)", lines[1]);
        Assert.Equal("  query_id: dictionary<values=utf8, indices=int32> not null", lines[2]);
        Assert.Equal("  schema metadata: {event-type: \"model-query\", schema-version: \"1\"}", lines[6]);
        Assert.Equal("batch 0: 2 row(s)", lines[7]);
        Assert.Equal("  dictionary 'query_id': 2 entries [\"q-a\", ...]", lines[8]);
        Assert.Equal("  [0] query_id=\"q-a\", model_version=\"run-1@300\", features=[1, ... 2 items], timestamp=2026-11-22T21:54:02.123456Z", lines[10]);
        Assert.Equal("total: 1 batch(es), 2 row(s) (first 1 rows shown)", lines[^1]);
    }

    [Fact]
    public void Inspector_OnMalformedBytes_ThrowsInvalidArrowExceptionSayingWhere()
    {
        var e = Assert.Throws<InvalidArrowException>(() => ArrowInspector.Describe(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x10 }, TextWriter.Null));
        Assert.Equal("Malformed Arrow input at byte 4: truncated: the metadata size after the continuation marker needs 4 bytes but 1 remain.", e.Message);
    }
}
