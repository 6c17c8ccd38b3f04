using Apache.Arrow;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;

namespace Attribution.Downstream.Ledger;

/// <summary>
/// The ledger's wire format on the <c>ledger</c> topic: one Arrow IPC stream per record (schema, one batch, end),
/// written and read with Apache.Arrow so any Arrow library reads it. Columns: window utf8, window_start timestamp[us, UTC],
/// model_version utf8, source_id int64, source_name utf8 (nullable), mass float64, positive_mass float64, queries int64.
/// </summary>
public static class LedgerArrow
{
    /// <summary>Schema metadata "event-type" of ledger records.</summary>
    public const string EventType = "source-ledger-entry";

    /// <summary>Schema version written.</summary>
    public const int SchemaVersion = 1;

    private static readonly TimestampType UtcMicros = new(TimeUnit.Microsecond, "UTC");

    /// <summary>The Arrow schema of ledger records.</summary>
    public static Schema Schema { get; } = new Schema.Builder()
        .Field(f => f.Name("window").DataType(StringType.Default).Nullable(false))
        .Field(f => f.Name("window_start").DataType(UtcMicros).Nullable(false))
        .Field(f => f.Name("model_version").DataType(StringType.Default).Nullable(false))
        .Field(f => f.Name("source_id").DataType(Int64Type.Default).Nullable(false))
        .Field(f => f.Name("source_name").DataType(StringType.Default).Nullable(true))
        .Field(f => f.Name("mass").DataType(DoubleType.Default).Nullable(false))
        .Field(f => f.Name("positive_mass").DataType(DoubleType.Default).Nullable(false))
        .Field(f => f.Name("queries").DataType(Int64Type.Default).Nullable(false))
        .Metadata("event-type", EventType)
        .Metadata("schema-version", SchemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture))
        .Build();

    /// <summary>One Arrow IPC stream holding <paramref name="entries"/> as one batch; <paramref name="sourceName"/> names sources (null when unknown).</summary>
    public static byte[] Encode(IReadOnlyList<LedgerEntry> entries, Func<long, string?>? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var window = new StringArray.Builder();
        var start = new TimestampArray.Builder(UtcMicros);
        var model = new StringArray.Builder();
        var source = new Int64Array.Builder();
        var name = new StringArray.Builder();
        var mass = new DoubleArray.Builder();
        var positive = new DoubleArray.Builder();
        var queries = new Int64Array.Builder();
        foreach (var e in entries)
        {
            window.Append(LedgerWindows.Name(e.Key.Window));
            start.Append(e.Key.Start);
            model.Append(e.Key.ModelVersion);
            source.Append(e.Key.SourceId);
            if (sourceName?.Invoke(e.Key.SourceId) is { } n)
            {
                name.Append(n);
            }
            else
            {
                name.AppendNull();
            }

            mass.Append(e.Mass);
            positive.Append(e.PositiveMass);
            queries.Append(e.Queries);
        }

        var batch = new RecordBatch(Schema,
            [window.Build(), start.Build(), model.Build(), source.Build(), name.Build(), mass.Build(), positive.Build(), queries.Build()],
            entries.Count);
        using var stream = new MemoryStream();
        using (var writer = new ArrowStreamWriter(stream, Schema, leaveOpen: true))
        {
            writer.WriteRecordBatch(batch);
            writer.WriteEnd();
        }

        return stream.ToArray();
    }

    /// <summary>Every entry in a ledger record's value, with each source's name (null when the writer knew none).</summary>
    /// <exception cref="FormatException">The bytes are not a ledger Arrow stream (says which column or row is wrong).</exception>
    public static IReadOnlyList<(LedgerEntry Entry, string? SourceName)> Decode(ReadOnlyMemory<byte> value)
    {
        var result = new List<(LedgerEntry, string?)>();
        try
        {
            using var reader = new ArrowStreamReader(value);
            while (reader.ReadNextRecordBatch() is { } batch)
            {
                using (batch)
                {
                    var window = Column<StringArray>(batch, "window");
                    var start = Column<TimestampArray>(batch, "window_start");
                    var model = Column<StringArray>(batch, "model_version");
                    var source = Column<Int64Array>(batch, "source_id");
                    var name = Column<StringArray>(batch, "source_name");
                    var mass = Column<DoubleArray>(batch, "mass");
                    var positive = Column<DoubleArray>(batch, "positive_mass");
                    var queries = Column<Int64Array>(batch, "queries");
                    for (int i = 0; i < batch.Length; i++)
                    {
                        if (!LedgerWindows.TryParse(window.GetString(i), out var w))
                        {
                            throw new FormatException($"ledger record row {i}: window '{window.GetString(i)}' is not minute, hour or day.");
                        }

                        var key = new LedgerKey(w,
                            start.GetTimestamp(i) ?? throw Null("window_start", i),
                            model.GetString(i) ?? throw Null("model_version", i),
                            source.GetValue(i) ?? throw Null("source_id", i));
                        result.Add((new LedgerEntry(key, mass.GetValue(i) ?? throw Null("mass", i), positive.GetValue(i) ?? throw Null("positive_mass", i),
                            queries.GetValue(i) ?? throw Null("queries", i)), name.GetString(i)));
                    }
                }
            }
        }
        catch (Exception e) when (e is not FormatException and (InvalidDataException or InvalidOperationException or ArgumentException or IndexOutOfRangeException or OverflowException))
        {
            throw new FormatException($"ledger record is not a readable Arrow IPC stream: {e.Message}", e);
        }

        return result;
    }

    private static T Column<T>(RecordBatch batch, string name) where T : class, IArrowArray
    {
        var index = batch.Schema.GetFieldIndex(name);
        if (index < 0)
        {
            throw new FormatException($"ledger record has no column '{name}' (schema: {string.Join(", ", batch.Schema.FieldsList.Select(f => f.Name))}).");
        }

        return batch.Column(index) as T ?? throw new FormatException($"ledger record column '{name}' is {batch.Column(index).Data.DataType.Name}, expected {typeof(T).Name}.");
    }

    private static FormatException Null(string column, int row) => new($"ledger record row {row}: column '{column}' is null.");
}
