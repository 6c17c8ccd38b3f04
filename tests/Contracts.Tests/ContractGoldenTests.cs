using Apache.Arrow;
using Attribution.Contracts.Arrow;

namespace Attribution.Contracts.Tests;

/// <summary>
/// Freezes every wire name, enum value and schema. A failure here means a wire change: add a new
/// schema version (and keep reading the old one) instead of editing these expectations.
/// </summary>
public class ContractGoldenTests
{
    private static string Render(Schema schema) =>
        string.Join(" | ", schema.Metadata!.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"))
        + " :: " + string.Join(", ", schema.FieldsList.Select(ArrowText.Field));

    [Fact]
    public void EventSchemas_AreFrozen()
    {
        Assert.Equal("event-type=training-batch | schema-version=1 :: run_id: utf8 not null, step: int64 not null, example_ids: list<item: int64 not null> not null, source_ids: list<item: int64 not null> not null, payload: binary, token_counts: list<item: int32 not null>, token_ids: list<item: int32 not null>", Render(TrainingBatch.Schema));
        Assert.Equal("event-type=checkpoint-published | schema-version=2 :: run_id: utf8 not null, step: int64 not null, uri: utf8 not null, checksum: utf8 not null, parameter_count: int64 not null, architecture: utf8, learning_rate: float64, weight_decay: float64, batch_size: int32, seed: int64, dataset: utf8, tokenizer: utf8", Render(CheckpointPublished.Schema));
        Assert.Equal("event-type=influence-probe | schema-version=2 :: run_id: utf8 not null, step: int64 not null, subject: int32 not null, subject_id: int64 not null, architecture: utf8 not null, rank: int32 not null, set_examples: int64 not null, set_sources: int64 not null, tensor_names: list<item: utf8 not null> not null, tensor_rows: list<item: int32 not null> not null, tensor_cols: list<item: int32 not null> not null, tensor_ranks: list<item: int32 not null> not null, factors_f32: list<item: float32 not null>, factors_f16: list<item: float16 not null>, set_shared: int64", Render(InfluenceProbe.Schema));
        Assert.Equal("event-type=model-query | schema-version=1 :: query_id: utf8 not null, model_version: utf8 not null, features: list<item: float32 not null>, token_ids: list<item: int64 not null>, timestamp: timestamp[us, UTC] not null, tokenizer: utf8, prompt: utf8, completion: utf8, completion_token_ids: list<item: int64 not null>", Render(ModelQuery.Schema));
        Assert.Equal("event-type=attribution | schema-version=1 :: query_id: utf8 not null, model_version: utf8 not null, method: utf8 not null, example_ids: list<item: int64 not null> not null, scores: list<item: float32 not null> not null, source_ids: list<item: int64 not null> not null, source_scores: list<item: float32 not null> not null, latency_us: int64 not null, output_function: utf8, example_source_ids: list<item: int64 not null>, source_names: list<item: utf8 not null>", Render(AttributionResult.Schema));
        Assert.Equal("event-type=contamination-alert | schema-version=1 :: query_id: utf8 not null, source_ids: list<item: int64 not null> not null, example_ids: list<item: int64 not null> not null, score: float64 not null, threshold: float64 not null", Render(ContaminationAlert.Schema));
    }

    [Fact]
    public void SpanIndexPublished_SchemaTypeNameAndKey_AreFrozen()
    {
        Assert.Equal("event-type=span-index-published | schema-version=1 :: run_id: utf8 not null, step: int64 not null, uri: utf8 not null, checksum: utf8 not null, documents: int32 not null, tokens: int64 not null, bytes: int64 not null, tokenizer: utf8 not null", Render(SpanIndexPublished.Schema));
        Assert.Equal("span-index-published", EventTypes.SpanIndexPublished);
        Assert.Equal("run-1/300/spans", SpanIndexPublished.KeyFor("run-1", 300));
    }

    [Fact]
    public void SchemaMessageBytes_AreFrozen()
    {
        // The exact schema message bytes (length + FNV-1a hash) of each event; catches changes the text rendering cannot see.
        static string Fingerprint(Schema s)
        {
            var bytes = ArrowIpc.ToBytes(s, []);
            var hash = 2166136261u;
            foreach (var b in bytes)
            {
                hash = (hash ^ b) * 16777619u;
            }
            return $"{bytes.Length}:{hash:x8}";
        }
        var actual = string.Join(" ", new[] { TrainingBatch.Schema, CheckpointPublished.Schema, InfluenceProbe.Schema, ModelQuery.Schema, AttributionResult.Schema, ContaminationAlert.Schema }.Select(Fingerprint));
        Assert.True(FrozenFingerprints == actual, $"schema bytes changed: {actual}");
    }

    // Re-frozen when the codec moved to Apache.Arrow 23: its FlatBuffers builder shares identical vtables and lays
    // out tables differently, so the same schemas take fewer bytes (the text rendering above did not change, and
    // streams written by the former codec still decode: StreamsWrittenByTheFormerCodec_StillDecode).
    // Re-frozen for checkpoint-published v2 (architecture and recipe), influence-probe v2 (typed tensors and factors),
    // training-batch documents (optional token_counts/token_ids columns), and language-model queries and attributions
    // (optional columns; schema-version 1 kept: readers ignore columns they do not know, and every new column is nullable),
    // and influence-probe set_shared (optional: shared-state chunks, STRIDE; schema-version 2 kept).
    private const string FrozenFingerprints = "736:e2f64942 760:99affc71 1216:bc61e6bd 800:2c2bdc68 1024:fb411f5b 552:5c2f5551";

    [Fact]
    public void WireNamesAndEnumValues_AreFrozen()
    {
        Assert.Equal(new[] { "checkpoints", "batches", "probes", "queries", "attributions", "dead-letter" },
            new[] { Topics.Checkpoints, Topics.Batches, Topics.Probes, Topics.Queries, Topics.Attributions, Topics.DeadLetter });
        Assert.Equal(new[] { "content-type", "application/vnd.apache.arrow.stream", "schema-version", "event-type", "error", "source-topic" },
            new[] { EventHeaders.ContentType, EventHeaders.ArrowStreamContentType, EventHeaders.SchemaVersion, EventHeaders.EventType, EventHeaders.Error, EventHeaders.SourceTopic });
        Assert.Equal(new[] { "training-batch", "checkpoint-published", "influence-probe", "model-query", "attribution", "contamination-alert" },
            new[] { EventTypes.TrainingBatch, EventTypes.CheckpointPublished, EventTypes.InfluenceProbe, EventTypes.ModelQuery, EventTypes.Attribution, EventTypes.ContaminationAlert });
        Assert.Equal((1, 2), ((int)ProbeSubject.Example, (int)ProbeSubject.Source));
        Assert.Equal(new[] { "Example", "Source", "Shared" }, Enum.GetNames<ProbeSubject>());
        Assert.Equal(3, (int)ProbeSubject.Shared);
        Assert.Equal((1, 2), ((int)ProbePrecision.Float32, (int)ProbePrecision.Float16));
    }
}
