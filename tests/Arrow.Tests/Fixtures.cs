
namespace Attribution.Arrow.Tests;

/// <summary>Deterministic C#-built batches covering every supported type, nulls and edge lengths.</summary>
internal static class Fixtures
{
    public static readonly ArrowType TsUtc = ArrowType.Timestamp(ArrowTimeUnit.Microsecond, "UTC");
    public static readonly ArrowType TsNaive = ArrowType.Timestamp(ArrowTimeUnit.Nanosecond, null);

    public static ArrowSchema AllTypesSchema { get; } = new(
    [
        new ArrowField("b", ArrowType.Bool),
        new ArrowField("i32", ArrowType.Int32, Metadata: new Dictionary<string, string> { ["unit"] = "count", ["empty"] = "" }),
        new ArrowField("i64", ArrowType.Int64),
        new ArrowField("f32", ArrowType.Float32),
        new ArrowField("f64", ArrowType.Float64),
        new ArrowField("ts_us", TsUtc),
        new ArrowField("ts_ns_naive", TsNaive),
        new ArrowField("s", ArrowType.Utf8),
        new ArrowField("bin", ArrowType.Binary),
        new ArrowField("lf", ArrowType.List(ArrowType.Float32, itemNullable: false)),
        new ArrowField("li", ArrowType.List(ArrowType.Int64, itemNullable: false)),
        new ArrowField("fsl", ArrowType.FixedSizeList(3, ArrowType.Float32, itemNullable: false)),
        new ArrowField("id", ArrowType.Int64, Nullable: false),
    ],
    new Dictionary<string, string> { ["schema-version"] = "1", ["note"] = "héllo", ["blank"] = "" });

    /// <summary>
    /// <paramref name="rows"/> rows; when <paramref name="nulls"/>, every slot with row % 3 == 1 is null
    /// (except the non-nullable id); <paramref name="allNull"/> makes every nullable slot null.
    /// </summary>
    public static RecordBatch AllTypes(int rows, bool nulls, bool allNull = false, int seed = 0)
    {
        var rng = new Random(seed);
        bool Valid(int i) => !allNull && !(nulls && i % 3 == 1);
        var valid = Enumerable.Range(0, rows).Select(Valid).ToArray();
        var validSpan = nulls || allNull ? valid : [];
        var f64 = Enumerable.Range(0, rows).Select(i => i switch { 2 => double.NaN, 4 => double.NegativeInfinity, 5 => -0.0, _ => rng.NextDouble() * 1e300 }).ToArray();
        return new RecordBatch(AllTypesSchema,
        [
            ArrowArrays.Bool(Enumerable.Range(0, rows).Select(i => i % 2 == 0).ToArray(), validSpan),
            ArrowArrays.Int32(Enumerable.Range(0, rows).Select(i => i * 7 - 3 + (i == 6 ? int.MinValue + 3 : 0)).ToArray(), validSpan),
            ArrowArrays.Int64(Enumerable.Range(0, rows).Select(i => i == 3 ? long.MaxValue : i * 1_000_000_000_007L - 5).ToArray(), validSpan),
            ArrowArrays.Float32(Enumerable.Range(0, rows).Select(i => i == 0 ? -0f : (float)rng.NextDouble() / 3).ToArray(), validSpan),
            ArrowArrays.Float64(f64, validSpan),
            ArrowArrays.Timestamp(TsUtc, Enumerable.Range(0, rows).Select(i => 1_700_000_000_123_456L + i).ToArray(), validSpan),
            ArrowArrays.Timestamp(TsNaive, Enumerable.Range(0, rows).Select(i => -1L - i).ToArray(), validSpan),
            ArrowArrays.Utf8(Enumerable.Range(0, rows).Select(i => Valid(i) ? (i % 4 == 0 ? "" : $"r{i}-ü€😀") : null).ToArray()),
            ArrowArrays.Binary(Enumerable.Range(0, rows).Select(i => Valid(i) ? (ReadOnlyMemory<byte>?)Enumerable.Range(0, i % 5).Select(k => (byte)(k * 37 + i)).ToArray() : null).ToArray()),
            ArrowArrays.ListOfFloat32(Enumerable.Range(0, rows).Select(i => Valid(i) ? (ReadOnlyMemory<float>?)Enumerable.Range(0, i % 4).Select(k => k + i / 8f).ToArray() : null).ToArray()),
            ArrowArrays.ListOfInt64(Enumerable.Range(0, rows).Select(i => Valid(i) ? (ReadOnlyMemory<long>?)Enumerable.Range(0, i % 3).Select(k => k - i * 3L).ToArray() : null).ToArray()),
            ArrowArrays.FixedSizeListOfFloat32(3, Enumerable.Range(0, rows).Select(i => Valid(i) ? (ReadOnlyMemory<float>?)new[] { i, -i / 2f, float.Epsilon } : null).ToArray()),
            ArrowArrays.Int64(Enumerable.Range(0, rows).Select(i => (long)i).ToArray()),
        ]);
    }

    /// <summary>Named C# streams sent to Node: every type, nulls, empty and several batches.</summary>
    public static IEnumerable<(string Name, ArrowSchema Schema, RecordBatch[] Batches)> Streams()
    {
        yield return ("all_types_9", AllTypesSchema, [AllTypes(9, nulls: true)]);
        yield return ("multi_batch", AllTypesSchema, [AllTypes(1, true), AllTypes(7, true, seed: 1), AllTypes(0, true), AllTypes(8, false, seed: 2), AllTypes(65, true, seed: 3), AllTypes(64, false, seed: 4)]);
        yield return ("all_null_9", AllTypesSchema, [AllTypes(9, nulls: false, allNull: true)]);
        yield return ("schema_only", AllTypesSchema, []);
        yield return ("zero_rows", AllTypesSchema, [AllTypes(0, nulls: false)]);
        var sliced = new ArrowSchema([new ArrowField("x", ArrowType.Int32, Nullable: false)]);
        yield return ("no_columns_meta", new ArrowSchema([], new Dictionary<string, string> { ["k"] = "v" }), []);
        yield return ("one_int", sliced, [new RecordBatch(sliced, [ArrowArrays.Int32([1, 2, 3])])]);
    }
}
