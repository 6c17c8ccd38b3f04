using Apache.Arrow;
using Apache.Arrow.Types;

namespace Attribution.Downstream.Flight;

/// <summary>
/// The record batches the Flight endpoint streams: the attribution event's columns (query_id, model_version, method,
/// example_ids, scores, source_ids, source_scores, latency_us) plus where it was in the log (partition, offset, log_time)
/// and its trace id.
/// </summary>
public static class FlightBatches
{
    private static readonly TimestampType UtcMicros = new(TimeUnit.Microsecond, "UTC");

    /// <summary>The schema of every batch.</summary>
    public static Schema Schema { get; } = new Schema.Builder()
        .Field(f => f.Name("query_id").DataType(StringType.Default).Nullable(false))
        .Field(f => f.Name("model_version").DataType(StringType.Default).Nullable(false))
        .Field(f => f.Name("method").DataType(StringType.Default).Nullable(false))
        .Field(f => f.Name("example_ids").DataType(new ListType(Int64Type.Default)).Nullable(false))
        .Field(f => f.Name("scores").DataType(new ListType(FloatType.Default)).Nullable(false))
        .Field(f => f.Name("source_ids").DataType(new ListType(Int64Type.Default)).Nullable(false))
        .Field(f => f.Name("source_scores").DataType(new ListType(FloatType.Default)).Nullable(false))
        .Field(f => f.Name("latency_us").DataType(Int64Type.Default).Nullable(false))
        .Field(f => f.Name("partition").DataType(Int32Type.Default).Nullable(false))
        .Field(f => f.Name("offset").DataType(Int64Type.Default).Nullable(false))
        .Field(f => f.Name("log_time").DataType(UtcMicros).Nullable(false))
        .Field(f => f.Name("trace_id").DataType(StringType.Default).Nullable(true))
        .Metadata("event-type", "attribution-feed")
        .Build();

    /// <summary>One batch holding <paramref name="events"/> in order.</summary>
    public static RecordBatch Build(IReadOnlyList<AttributionEnvelope> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var query = new StringArray.Builder();
        var model = new StringArray.Builder();
        var method = new StringArray.Builder();
        var examples = new ListArray.Builder(Int64Type.Default);
        var scores = new ListArray.Builder(FloatType.Default);
        var sources = new ListArray.Builder(Int64Type.Default);
        var sourceScores = new ListArray.Builder(FloatType.Default);
        var latency = new Int64Array.Builder();
        var partition = new Int32Array.Builder();
        var offset = new Int64Array.Builder();
        var time = new TimestampArray.Builder(UtcMicros);
        var trace = new StringArray.Builder();
        foreach (var e in events)
        {
            var r = e.Result;
            query.Append(r.QueryId);
            model.Append(r.ModelVersion);
            method.Append(r.Method);
            AppendList(examples, r.ExampleIds);
            AppendList(scores, r.Scores);
            AppendList(sources, r.SourceIds);
            AppendList(sourceScores, r.SourceScores);
            latency.Append(r.LatencyMicros);
            partition.Append(e.Partition);
            offset.Append(e.Offset);
            time.Append(e.Timestamp);
            if (e.TraceParent?.Split('-') is { Length: 4 } tp)
            {
                trace.Append(tp[1]);
            }
            else
            {
                trace.AppendNull();
            }
        }

        return new RecordBatch(Schema,
        [
            query.Build(), model.Build(), method.Build(), examples.Build(), scores.Build(), sources.Build(), sourceScores.Build(),
            latency.Build(), partition.Build(), offset.Build(), time.Build(), trace.Build(),
        ], events.Count);
    }

    private static void AppendList(ListArray.Builder builder, IReadOnlyList<long> values)
    {
        builder.Append();
        var inner = (Int64Array.Builder)builder.ValueBuilder;
        foreach (var v in values)
        {
            inner.Append(v);
        }
    }

    private static void AppendList(ListArray.Builder builder, IReadOnlyList<float> values)
    {
        builder.Append();
        var inner = (FloatArray.Builder)builder.ValueBuilder;
        foreach (var v in values)
        {
            inner.Append(v);
        }
    }
}
