namespace Attribution.Arrow.Tests;

public class ArrowInspectorTests
{
    [Fact]
    public void Describe_PrintsSchemaMetadataAndFirstRowsOfEveryType()
    {
        var bytes = ArrowStreamWriter.ToBytes(Fixtures.AllTypesSchema, Fixtures.AllTypes(3, nulls: true), Fixtures.AllTypes(4, nulls: false));
        var output = new StringWriter();
        ArrowInspector.Describe(bytes, output, maxRows: 4);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("schema: 13 field(s)", lines[0]);
        Assert.Equal("  i32: int32 {unit: \"count\", empty: \"\"}", lines[2]);
        Assert.Equal("  fsl: fixed_size_list<item: float32 not null>[3]", lines[12]);
        Assert.Equal("  schema metadata: {schema-version: \"1\", note: \"héllo\", blank: \"\"}", lines[14]);
        Assert.Equal("batch 0: 3 row(s)", lines[15]);
        Assert.StartsWith("  [0] b=true, i32=-3, i64=-5, f32=-0, ", lines[16], StringComparison.Ordinal);
        Assert.True(lines[16].Contains("ts_us=2023-11-14T22:13:20.123456Z, ts_ns_naive=1969-12-31T23:59:59.999999999", StringComparison.Ordinal), lines[16]);
        Assert.Contains("s=\"\", bin=0x, lf=[], li=[], fsl=[0, 0, 1E-45], id=0", lines[16], StringComparison.Ordinal);
        Assert.StartsWith("  [1] b=null, i32=null, ", lines[17], StringComparison.Ordinal);
        Assert.Equal("batch 1: 4 row(s)", lines[19]);
        Assert.StartsWith("  [3] ", lines[20], StringComparison.Ordinal);
        Assert.Equal($"total: 2 batch(es), 7 row(s), {bytes.Length} bytes (first 4 rows shown)", lines[^1]);
    }

    [Fact]
    public void Describe_OfAMalformedStream_ThrowsArrowFormatExceptionSayingWhere()
    {
        var e = Assert.Throws<ArrowFormatException>(() => ArrowInspector.Describe(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x10 }, TextWriter.Null));
        Assert.Equal("Malformed Arrow stream at byte 4: truncated: metadata size after the continuation marker needs 4 bytes but 1 remain.", e.Message);
    }
}
