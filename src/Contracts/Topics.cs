namespace Attribution.Contracts;

/// <summary>Event-log topic names. Keys are noted per topic; every value is one Arrow IPC stream.</summary>
public static class Topics
{
    /// <summary><see cref="CheckpointPublished"/> events, keyed by run id.</summary>
    public const string Checkpoints = "checkpoints";

    /// <summary><see cref="TrainingBatch"/> events, keyed by run id.</summary>
    public const string Batches = "batches";

    /// <summary><see cref="InfluenceProbe"/> events, compacted, keyed by <see cref="InfluenceProbe.Key"/> ("&lt;run&gt;/&lt;step&gt;/example/&lt;id&gt;", ".../source/&lt;id&gt;"); "&lt;run&gt;/&lt;step&gt;/checkpoint" holds the set's <see cref="CheckpointPublished"/>, "&lt;run&gt;/&lt;step&gt;/spans" a language model's <see cref="SpanIndexPublished"/>.</summary>
    public const string Probes = "probes";

    /// <summary><see cref="ModelQuery"/> events, keyed by query id.</summary>
    public const string Queries = "queries";

    /// <summary><see cref="AttributionResult"/> events, keyed by query id.</summary>
    public const string Attributions = "attributions";

    /// <summary>Poison input: the original bytes with <see cref="EventHeaders.Error"/> and <see cref="EventHeaders.SourceTopic"/> headers.</summary>
    public const string DeadLetter = "dead-letter";
}

/// <summary>Record header names and values (string keys, UTF-8 values).</summary>
public static class EventHeaders
{
    /// <summary>Media type header; always <see cref="ArrowStreamContentType"/>.</summary>
    public const string ContentType = "content-type";

    /// <summary>The IANA media type of the Arrow IPC stream format.</summary>
    public const string ArrowStreamContentType = "application/vnd.apache.arrow.stream";

    /// <summary>Schema version of the payload, decimal (also in the Arrow schema metadata).</summary>
    public const string SchemaVersion = "schema-version";

    /// <summary>Event type name, e.g. "model-query" (also in the Arrow schema metadata).</summary>
    public const string EventType = "event-type";

    /// <summary>Dead-letter records: why the original record was rejected.</summary>
    public const string Error = "error";

    /// <summary>Dead-letter records: the topic the original record came from.</summary>
    public const string SourceTopic = "source-topic";
}

/// <summary>Event type names carried in <see cref="EventHeaders.EventType"/> and the schema metadata.</summary>
public static class EventTypes
{
    /// <summary><see cref="Contracts.TrainingBatch"/>.</summary>
    public const string TrainingBatch = "training-batch";
    /// <summary><see cref="Contracts.CheckpointPublished"/>.</summary>
    public const string CheckpointPublished = "checkpoint-published";
    /// <summary><see cref="Contracts.InfluenceProbe"/>.</summary>
    public const string InfluenceProbe = "influence-probe";
    /// <summary><see cref="Contracts.ModelQuery"/>.</summary>
    public const string ModelQuery = "model-query";
    /// <summary><see cref="Contracts.AttributionResult"/>.</summary>
    public const string Attribution = "attribution";
    /// <summary><see cref="Contracts.ContaminationAlert"/>.</summary>
    public const string ContaminationAlert = "contamination-alert";
    /// <summary><see cref="Contracts.SpanIndexPublished"/>.</summary>
    public const string SpanIndexPublished = "span-index-published";
}
