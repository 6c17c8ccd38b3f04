using Attribution.Arrow;
using Attribution.Contracts;

namespace Attribution.Benchmarks;

/// <summary>
/// TEMPORARY, for the before/after measurement only: the attribution mapping as it was on the hand-written
/// codec (src/Arrow), copied from the former src/Contracts/Events.cs. Deleted together with src/Arrow.
/// </summary>
internal static class OldArrowCodec
{
    private static readonly ArrowType Int64List = ArrowType.List(ArrowType.Int64, itemNullable: false);
    private static readonly ArrowType Float32List = ArrowType.List(ArrowType.Float32, itemNullable: false);

    private static readonly ArrowSchema Schema = new(
    [
        new ArrowField("query_id", ArrowType.Utf8, Nullable: false),
        new ArrowField("model_version", ArrowType.Utf8, Nullable: false),
        new ArrowField("method", ArrowType.Utf8, Nullable: false),
        new ArrowField("example_ids", Int64List, Nullable: false),
        new ArrowField("scores", Float32List, Nullable: false),
        new ArrowField("source_ids", Int64List, Nullable: false),
        new ArrowField("source_scores", Float32List, Nullable: false),
        new ArrowField("latency_us", ArrowType.Int64, Nullable: false),
    ], new Dictionary<string, string> { ["event-type"] = "attribution", ["schema-version"] = "1" });

    private static ReadOnlyMemory<long>? Longs(IReadOnlyList<long> values) => values is long[] a ? a : values.ToArray();

    private static ReadOnlyMemory<float>? Floats(IReadOnlyList<float> values) => values is float[] a ? a : values.ToArray();

    public static void Encode(IReadOnlyList<AttributionResult> events, System.Buffers.IBufferWriter<byte> output)
    {
        var batch = new RecordBatch(Schema,
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
        ArrowStreamWriter.WriteStream(output, Schema, [batch]);
    }

    public static List<AttributionResult> Decode(ReadOnlyMemory<byte> bytes)
    {
        var reader = new ArrowStreamReader(bytes);
        var result = new List<AttributionResult>();
        while (reader.ReadNext() is { } batch)
        {
            var queryId = batch.Column("query_id")!;
            var model = batch.Column("model_version")!;
            var method = batch.Column("method")!;
            var examples = batch.Column("example_ids")!;
            var scores = batch.Column("scores")!;
            var sources = batch.Column("source_ids")!;
            var sourceScores = batch.Column("source_scores")!;
            var latency = batch.Column("latency_us")!;
            for (var i = 0; i < batch.Length; i++)
            {
                result.Add(new AttributionResult(queryId.GetString(i) ?? "", model.GetString(i) ?? "", method.GetString(i) ?? "",
                    examples.GetInt64List(i).ToArray(), scores.GetFloat32List(i).ToArray(), sources.GetInt64List(i).ToArray(),
                    sourceScores.GetFloat32List(i).ToArray(), latency.Int64Values[i]));
            }
        }
        return result;
    }
}
