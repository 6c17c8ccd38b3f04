using System.Globalization;
using System.Text;

namespace Attribution.Arrow;

/// <summary>
/// Human-readable view of any Arrow IPC stream: schema (with metadata), batch sizes and the first
/// rows. Backs <c>./pipeline arrow inspect</c>; pure, so it is tested without a console.
/// </summary>
public static class ArrowInspector
{
    /// <summary>Writes the schema and the first <paramref name="maxRows"/> rows of <paramref name="stream"/>.</summary>
    public static void Describe(ReadOnlyMemory<byte> stream, TextWriter output, int maxRows = 10, int maxListItems = 8, ArrowReaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        var reader = new ArrowStreamReader(stream, options);
        var schema = reader.Schema;
        output.WriteLine($"schema: {schema.Fields.Count} field(s)");
        foreach (var field in schema.Fields)
        {
            output.WriteLine($"  {field}{Metadata(field.Metadata)}");
        }
        if (schema.Metadata is { Count: > 0 })
        {
            output.WriteLine($"  schema metadata:{Metadata(schema.Metadata)}");
        }
        var batches = 0;
        long rows = 0;
        var shown = 0;
        while (reader.ReadNext() is { } batch)
        {
            output.WriteLine($"batch {batches}: {batch.Length} row(s)");
            for (var r = 0; r < batch.Length && shown < maxRows; r++, shown++)
            {
                var cells = new string[batch.Columns.Count];
                for (var c = 0; c < cells.Length; c++)
                {
                    cells[c] = $"{schema.Fields[c].Name}={Format(batch.Columns[c], r, maxListItems)}";
                }
                output.WriteLine($"  [{rows + r}] {string.Join(", ", cells)}");
            }
            batches++;
            rows += batch.Length;
        }
        output.WriteLine($"total: {batches} batch(es), {rows} row(s), {stream.Length} bytes{(shown < rows ? $" (first {shown} rows shown)" : "")}");
    }

    /// <summary>One slot as text: null, numbers (invariant culture), quoted strings, hex bytes, [list items].</summary>
    public static string Format(ArrowArray array, int index, int maxListItems = 8)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (array.IsNull(index))
        {
            return "null";
        }
        var c = CultureInfo.InvariantCulture;
        switch (array.Type.Kind)
        {
            case ArrowTypeKind.Bool: return array.GetBool(index) ? "true" : "false";
            case ArrowTypeKind.Int32: return array.Int32Values[index].ToString(c);
            case ArrowTypeKind.Int64: return array.Int64Values[index].ToString(c);
            case ArrowTypeKind.Float32: return array.Float32Values[index].ToString("R", c);
            case ArrowTypeKind.Float64: return array.Float64Values[index].ToString("R", c);
            case ArrowTypeKind.Timestamp: return Timestamp(array.Type, array.Int64Values[index]);
            case ArrowTypeKind.Utf8: return Quote(array.GetString(index)!);
            case ArrowTypeKind.Binary:
                var bytes = array.GetBytes(index);
                return bytes.Length <= 32 ? $"0x{Convert.ToHexStringLower(bytes)}" : $"0x{Convert.ToHexStringLower(bytes[..32])}... ({bytes.Length} bytes)";
            default:
                var (start, length) = array.GetListRange(index);
                var items = new StringBuilder("[");
                for (var k = 0; k < Math.Min(length, maxListItems); k++)
                {
                    items.Append(k == 0 ? "" : ", ").Append(Format(array.Child!, start + k, maxListItems));
                }
                return items.Append(length > maxListItems ? $", ... {length} items]" : "]").ToString();
        }
    }

    private static string Timestamp(ArrowType type, long value)
    {
        // Work in 100 ns ticks, flooring so times before 1970 stay exact; nanoseconds keep 2 extra digits.
        var ticksPer = type.Unit switch
        {
            ArrowTimeUnit.Second => TimeSpan.TicksPerSecond,
            ArrowTimeUnit.Millisecond => TimeSpan.TicksPerMillisecond,
            ArrowTimeUnit.Microsecond => TimeSpan.TicksPerMicrosecond,
            _ => 0,
        };
        var ticks = ticksPer != 0 ? value * (Int128)ticksPer
            : value >= 0 ? value / 100 : ((value + 1) / 100) - 1;
        var absolute = ticks + DateTime.UnixEpoch.Ticks;
        if (absolute < DateTime.MinValue.Ticks || absolute > DateTime.MaxValue.Ticks)
        {
            return value.ToString(CultureInfo.InvariantCulture) + ArrowType.UnitName(type.Unit);
        }
        var time = new DateTime((long)absolute, DateTimeKind.Unspecified);
        var text = ticksPer == 0
            ? time.ToString("yyyy-MM-ddTHH:mm:ss.fffffff", CultureInfo.InvariantCulture) + (value - ((long)ticks * 100)).ToString("00", CultureInfo.InvariantCulture)
            : time.ToString("yyyy-MM-ddTHH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture).TrimEnd('.');
        return text + (type.TimeZone is null ? "" : type.TimeZone == "UTC" ? "Z" : " " + type.TimeZone);
    }

    private static string Quote(string s) => s.Length > 80 ? $"\"{s[..80]}...\"" : $"\"{s}\"";

    private static string Metadata(IReadOnlyDictionary<string, string>? metadata) =>
        metadata is not { Count: > 0 } ? "" : " {" + string.Join(", ", metadata.Select(kv => $"{kv.Key}: {Quote(kv.Value)}")) + "}";
}
