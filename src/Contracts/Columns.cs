using System.Globalization;
using Attribution.Arrow;

namespace Attribution.Contracts;

/// <summary>Schema construction and checked column access shared by the event records.</summary>
internal static class Columns
{
    public static ArrowSchema Schema(string eventType, int version, params ArrowField[] fields) =>
        new(fields, new Dictionary<string, string>
        {
            [EventHeaders.EventType] = eventType,
            [EventHeaders.SchemaVersion] = version.ToString(CultureInfo.InvariantCulture),
        });

    public static ArrowField Required(string name, ArrowType type) => new(name, type, Nullable: false);

    public static ArrowField Optional(string name, ArrowType type) => new(name, type, Nullable: true);

    public static readonly ArrowType Int64List = ArrowType.List(ArrowType.Int64, itemNullable: false);
    public static readonly ArrowType Float32List = ArrowType.List(ArrowType.Float32, itemNullable: false);
    public static readonly ArrowType UtcMicros = ArrowType.Timestamp(ArrowTimeUnit.Microsecond, "UTC");

    public static void CheckSchemaMetadata(ArrowSchema schema, string eventType, int supportedVersion)
    {
        var metadata = schema.Metadata;
        if (metadata is null || !metadata.TryGetValue(EventHeaders.EventType, out var type))
        {
            throw new EventContractException(eventType, null, null, $"the Arrow schema has no '{EventHeaders.EventType}' metadata; was it written by a {eventType} encoder?");
        }
        if (type != eventType)
        {
            throw new EventContractException(eventType, null, null, $"the stream holds '{type}' events, not '{eventType}'");
        }
        if (!metadata.TryGetValue(EventHeaders.SchemaVersion, out var v) || !int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var version) || version < 1)
        {
            throw new EventContractException(eventType, null, null, $"schema metadata '{EventHeaders.SchemaVersion}' is missing or not a positive integer");
        }
        if (version > supportedVersion)
        {
            throw new EventContractException(eventType, null, null, $"schema version {version} is newer than this build supports ({supportedVersion}); upgrade the consumer");
        }
    }

    /// <summary>The column with this name and type; with <paramref name="noNulls"/>, also checks it has no nulls.</summary>
    public static ArrowArray Get(RecordBatch batch, string eventType, string name, ArrowType type, bool noNulls = true)
    {
        var column = batch.Column(name) ?? throw new EventContractException(eventType, name, null, "required column is missing");
        if (column.Type.Kind != type.Kind || column.Type.Unit != type.Unit || column.Type.TimeZone != type.TimeZone
            || (type.Item is not null && column.Type.Item?.Type.Kind != type.Item.Type.Kind))
        {
            throw new EventContractException(eventType, name, null, $"column is {column.Type}, expected {type}");
        }
        if (noNulls && column.NullCount > 0)
        {
            throw new EventContractException(eventType, name, FirstNull(column), "value is null but the field is required");
        }
        if (column.Child is { NullCount: > 0 } child)
        {
            throw new EventContractException(eventType, name, null, $"list items must not be null ({child.NullCount} null items)");
        }
        return column;
    }

    public static ArrowArray? GetOptional(RecordBatch batch, string eventType, string name, ArrowType type) =>
        batch.Column(name) is null ? null : Get(batch, eventType, name, type, noNulls: false);

    public static int FirstNull(ArrowArray column)
    {
        for (var i = 0; i < column.Length; i++)
        {
            if (column.IsNull(i))
            {
                return i;
            }
        }
        return -1;
    }

    public static string String(ArrowArray column, int row) => column.GetString(row) ?? "";

    // Typed arms matter: a switch whose natural type is long[] would turn null into an empty, non-null memory.
    public static ReadOnlyMemory<long>? Longs(IReadOnlyList<long>? values) => values switch
    {
        null => (ReadOnlyMemory<long>?)null,
        long[] array => new ReadOnlyMemory<long>(array),
        _ => new ReadOnlyMemory<long>(values.ToArray()),
    };

    public static ReadOnlyMemory<float>? Floats(IReadOnlyList<float>? values) => values switch
    {
        null => (ReadOnlyMemory<float>?)null,
        float[] array => new ReadOnlyMemory<float>(array),
        _ => new ReadOnlyMemory<float>(values.ToArray()),
    };

    public static long ToMicros(DateTimeOffset t) => (t.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond;

    public static DateTimeOffset FromMicros(string eventType, string column, int row, long micros)
    {
        const long MaxMicros = (3155378975999999999L - 621355968000000000L) / 10; // DateTimeOffset.MaxValue
        const long MinMicros = -621355968000000000L / 10;
        if (micros is > MaxMicros or < MinMicros)
        {
            throw new EventContractException(eventType, column, row, $"timestamp {micros} us is outside the representable range");
        }
        return DateTimeOffset.UnixEpoch.AddTicks(micros * TimeSpan.TicksPerMicrosecond);
    }

    public static void Check(bool condition, string eventType, string? column, int row, string problem)
    {
        if (!condition)
        {
            throw new EventContractException(eventType, column, row, problem);
        }
    }
}
