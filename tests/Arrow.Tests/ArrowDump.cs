using System.Globalization;
using System.Text.Json.Nodes;

namespace Attribution.Arrow.Tests;

/// <summary>
/// The canonical JSON dump that infra/node/arrow-interop.mjs also produces: int64/timestamps as
/// decimal strings, floats as IEEE bit patterns in hex, binary as hex. Equal dumps mean equal values.
/// </summary>
internal static class ArrowDump
{
    public static JsonObject Of(ArrowSchema schema, IEnumerable<RecordBatch> batches)
    {
        var fields = new JsonArray();
        foreach (var f in schema.Fields)
        {
            fields.Add(new JsonObject
            {
                ["name"] = f.Name,
                ["type"] = f.Type.ToString(),
                ["nullable"] = f.Nullable,
                ["metadata"] = Metadata(f.Metadata),
            });
        }
        var batchArray = new JsonArray();
        foreach (var batch in batches)
        {
            var columns = new JsonArray();
            foreach (var column in batch.Columns)
            {
                var values = new JsonArray();
                for (var i = 0; i < batch.Length; i++)
                {
                    values.Add(Slot(column, i));
                }
                columns.Add(values);
            }
            batchArray.Add(new JsonObject { ["rows"] = batch.Length, ["columns"] = columns });
        }
        return new JsonObject
        {
            ["schema"] = new JsonObject { ["fields"] = fields, ["metadata"] = Metadata(schema.Metadata) },
            ["batches"] = batchArray,
        };
    }

    /// <summary>All rows of all batches per column, ignoring how rows are split into batches.</summary>
    public static JsonArray Rows(JsonObject dump)
    {
        var fieldCount = dump["schema"]!["fields"]!.AsArray().Count;
        var columns = new JsonArray();
        for (var c = 0; c < fieldCount; c++)
        {
            var all = new JsonArray();
            foreach (var batch in dump["batches"]!.AsArray())
            {
                foreach (var v in batch!["columns"]![c]!.AsArray())
                {
                    all.Add(v?.DeepClone());
                }
            }
            columns.Add(all);
        }
        return columns;
    }

    /// <summary>
    /// arrow-js's RecordBatchReader yields one synthesized 0-row batch for a stream that has a
    /// schema but no record batch messages; drop it when the other side saw no batches.
    /// </summary>
    public static JsonNode WithoutSynthesizedEmptyBatch(JsonNode jsDump, int ourBatchCount)
    {
        var batches = jsDump["batches"]!.AsArray();
        if (ourBatchCount == 0 && batches.Count == 1 && (int)batches[0]!["rows"]! == 0)
        {
            batches.Clear();
        }
        return jsDump;
    }

    private static JsonObject Metadata(IReadOnlyDictionary<string, string>? metadata)
    {
        var o = new JsonObject();
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>())
        {
            o[k] = v;
        }
        return o;
    }

    private static JsonNode? Slot(ArrowArray a, int i)
    {
        if (a.IsNull(i))
        {
            return null;
        }
        switch (a.Type.Kind)
        {
            case ArrowTypeKind.Bool: return a.GetBool(i);
            case ArrowTypeKind.Int32: return a.Int32Values[i];
            case ArrowTypeKind.Int64 or ArrowTypeKind.Timestamp: return a.Int64Values[i].ToString(CultureInfo.InvariantCulture);
            case ArrowTypeKind.Float32: return "0x" + BitConverter.SingleToUInt32Bits(a.Float32Values[i]).ToString("x8", CultureInfo.InvariantCulture);
            case ArrowTypeKind.Float64: return "0x" + BitConverter.DoubleToUInt64Bits(a.Float64Values[i]).ToString("x16", CultureInfo.InvariantCulture);
            case ArrowTypeKind.Utf8: return a.GetString(i);
            case ArrowTypeKind.Binary: return Convert.ToHexStringLower(a.GetBytes(i));
            default:
                var (start, length) = a.GetListRange(i);
                var items = new JsonArray();
                for (var k = start; k < start + length; k++)
                {
                    items.Add(Slot(a.Child!, k));
                }
                return items;
        }
    }
}

/// <summary>Finds the repository root (the folder holding Pipeline.sln) from the test binaries.</summary>
internal static class RepoRoot
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Pipeline.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"No Pipeline.sln above {AppContext.BaseDirectory}; run the tests from the repository checkout.");
    }
}
