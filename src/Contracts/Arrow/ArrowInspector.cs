using System.Globalization;
using System.Text;
using Apache.Arrow;
using Apache.Arrow.Types;

namespace Attribution.Contracts.Arrow;

/// <summary>
/// Human-readable view of any Arrow IPC stream or file: format, schema (with metadata), dictionaries, batch sizes and
/// the first rows. Backs <c>./pipeline arrow inspect</c>; pure, so it is tested without a console. Reads through
/// <see cref="ArrowIpc.Read"/> (hardened), and validates every column before printing a value of it.
/// </summary>
public static class ArrowInspector
{
    /// <summary>Writes the description of <paramref name="input"/>; throws <see cref="InvalidArrowException"/> for bad bytes.</summary>
    public static void Describe(ReadOnlyMemory<byte> input, TextWriter output, int maxRows = 10, int maxListItems = 8)
    {
        ArgumentNullException.ThrowIfNull(output);
        using var contents = ArrowIpc.Read(input);
        var schema = contents.Schema;
        var compression = contents.Compression is { } codec ? $", {codec}-compressed bodies" : "";
        output.WriteLine($"format: Arrow IPC {(contents.Format == ArrowIpcFormat.File ? "file" : "stream")}{compression}, {input.Length} bytes");
        output.WriteLine($"schema: {schema.FieldsList.Count} field(s)");
        foreach (var field in schema.FieldsList)
        {
            output.WriteLine($"  {ArrowText.Field(field)}{Metadata(field.Metadata)}");
        }
        if (schema.Metadata is { Count: > 0 })
        {
            output.WriteLine($"  schema metadata:{Metadata(schema.Metadata)}");
        }
        long rows = 0;
        var shown = 0;
        for (var b = 0; b < contents.Batches.Count; b++)
        {
            var batch = contents.Batches[b];
            output.WriteLine($"batch {b}: {batch.Length} row(s)");
            var columns = new IArrowArray?[batch.ColumnCount];
            for (var c = 0; c < columns.Length; c++)
            {
                var name = schema.FieldsList[c].Name;
                var column = batch.Column(c);
                try
                {
                    ArrowValidation.Validate(column, $"batch {b}, column '{name}'");
                    columns[c] = column;
                }
                catch (NotSupportedException)
                {
                    columns[c] = null; // printed as its type
                }
                if (columns[c] is DictionaryArray dictionary)
                {
                    var entries = Enumerable.Range(0, Math.Min(dictionary.Dictionary.Length, maxListItems)).Select(i => Format(dictionary.Dictionary, i, maxListItems));
                    output.WriteLine($"  dictionary '{name}': {dictionary.Dictionary.Length} entries [{string.Join(", ", entries)}{(dictionary.Dictionary.Length > maxListItems ? ", ..." : "")}]");
                }
            }
            for (var r = 0; r < batch.Length && shown < maxRows; r++, shown++)
            {
                var cells = new string[columns.Length];
                for (var c = 0; c < cells.Length; c++)
                {
                    var value = columns[c] is { } column ? Format(column, r, maxListItems) : $"<{ArrowText.Type(schema.FieldsList[c].DataType)}>";
                    cells[c] = $"{schema.FieldsList[c].Name}={value}";
                }
                output.WriteLine($"  [{rows + r}] {string.Join(", ", cells)}");
            }
            rows += batch.Length;
        }
        output.WriteLine($"total: {contents.Batches.Count} batch(es), {rows} row(s){(shown < rows ? $" (first {shown} rows shown)" : "")}");
    }

    /// <summary>One slot of a validated array as text: null, numbers (invariant culture), quoted strings, hex bytes, [lists], {structs}.</summary>
    public static string Format(IArrowArray array, int index, int maxListItems = 8)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (array.IsNull(index))
        {
            return "null";
        }
        var c = CultureInfo.InvariantCulture;
        switch (array)
        {
            case BooleanArray a: return a.GetValue(index) == true ? "true" : "false";
            case Int8Array a: return a.GetValue(index)!.Value.ToString(c);
            case Int16Array a: return a.GetValue(index)!.Value.ToString(c);
            case Int32Array a: return a.GetValue(index)!.Value.ToString(c);
            case Int64Array a: return a.GetValue(index)!.Value.ToString(c);
            case UInt8Array a: return a.GetValue(index)!.Value.ToString(c);
            case UInt16Array a: return a.GetValue(index)!.Value.ToString(c);
            case UInt32Array a: return a.GetValue(index)!.Value.ToString(c);
            case UInt64Array a: return a.GetValue(index)!.Value.ToString(c);
            case FloatArray a: return a.GetValue(index)!.Value.ToString("R", c);
            case DoubleArray a: return a.GetValue(index)!.Value.ToString("R", c);
            case TimestampArray a: return Timestamp((TimestampType)a.Data.DataType, a.Values[index]);
            case StringArray a: return Quote(a.GetString(index));
            case LargeStringArray a: return Quote(a.GetString(index));
            case StringViewArray a: return Quote(a.GetString(index));
            case BinaryArray a: return Hex(a.GetBytes(index));
            case LargeBinaryArray a: return Hex(a.GetBytes(index));
            case DictionaryArray a:
                var slot = ArrowValidation.ReadIndex(((DictionaryType)a.Data.DataType).IndexType.TypeId, a.Data.Buffers[1].Span, a.Data.Offset + index);
                return Format(a.Dictionary, (int)slot, maxListItems);
            case ListArray a: return Items(a.Values, a.ValueOffsets[index], a.GetValueLength(index), maxListItems);
            case LargeListArray a: return Items(a.Values, (int)a.ValueOffsets[index], a.GetValueLength(index), maxListItems);
            case FixedSizeListArray a:
                var size = ((FixedSizeListType)a.Data.DataType).ListSize;
                return Items(a.Values, (a.Offset + index) * size, size, maxListItems);
            case StructArray a:
                var fields = ((StructType)a.Data.DataType).Fields;
                return "{" + string.Join(", ", fields.Select((f, k) => $"{f.Name}={Format(a.Fields[k], a.Offset + index, maxListItems)}")) + "}";
            default:
                return $"<{ArrowText.Type(array.Data.DataType)}>";
        }
    }

    private static string Items(IArrowArray values, int start, int length, int maxListItems)
    {
        var items = new StringBuilder("[");
        for (var k = 0; k < Math.Min(length, maxListItems); k++)
        {
            items.Append(k == 0 ? "" : ", ").Append(Format(values, start + k, maxListItems));
        }
        return items.Append(length > maxListItems ? $", ... {length} items]" : "]").ToString();
    }

    private static string Hex(ReadOnlySpan<byte> bytes) =>
        bytes.Length <= 32 ? $"0x{Convert.ToHexStringLower(bytes)}" : $"0x{Convert.ToHexStringLower(bytes[..32])}... ({bytes.Length} bytes)";

    private static string Timestamp(TimestampType type, long value)
    {
        // Work in 100 ns ticks, flooring so times before 1970 stay exact; nanoseconds keep 2 extra digits.
        var ticksPer = type.Unit switch
        {
            TimeUnit.Second => TimeSpan.TicksPerSecond,
            TimeUnit.Millisecond => TimeSpan.TicksPerMillisecond,
            TimeUnit.Microsecond => TimeSpan.TicksPerMicrosecond,
            _ => 0,
        };
        var ticks = ticksPer != 0 ? value * (Int128)ticksPer
            : value >= 0 ? value / 100 : ((value + 1) / 100) - 1;
        var absolute = ticks + DateTime.UnixEpoch.Ticks;
        if (absolute < DateTime.MinValue.Ticks || absolute > DateTime.MaxValue.Ticks)
        {
            return value.ToString(CultureInfo.InvariantCulture) + " " + ArrowText.Type(type);
        }
        var time = new DateTime((long)absolute, DateTimeKind.Unspecified);
        var text = ticksPer == 0
            ? time.ToString("yyyy-MM-ddTHH:mm:ss.fffffff", CultureInfo.InvariantCulture) + (value - ((long)ticks * 100)).ToString("00", CultureInfo.InvariantCulture)
            : time.ToString("yyyy-MM-ddTHH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture).TrimEnd('.');
        return text + (string.IsNullOrEmpty(type.Timezone) ? "" : type.Timezone == "UTC" ? "Z" : " " + type.Timezone);
    }

    private static string Quote(string s) => s.Length > 80 ? $"\"{s[..80]}...\"" : $"\"{s}\"";

    private static string Metadata(IReadOnlyDictionary<string, string>? metadata) =>
        metadata is not { Count: > 0 } ? "" : " {" + string.Join(", ", metadata.Select(kv => $"{kv.Key}: {Quote(kv.Value)}")) + "}";
}
