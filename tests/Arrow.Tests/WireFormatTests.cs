using System.Buffers.Binary;

namespace Attribution.Arrow.Tests;

public class WireFormatTests
{
    // shared/docs/arrow-ipc.md section 5.1: Schema { x: int32, nullable } + EOS, accepted by arrow-js 21.2.0.
    private const string GoldenSchemaHex =
        "ffffffff78000000" + "10000000" + "0000" + "0a000c0006000500 0800" + "0a000000" + "00" + "01" + "0400" +
        "0c000000" + "0800080000000400" + "08000000" + "04000000" + "01000000" + "14000000" +
        "1000140010000f000e00080000000400" + "10000000" + "2c000000" + "14000000" + "0000" + "02" + "01" +
        "18000000" + "08000c0008000700" + "08000000" + "000000" + "01" + "20000000" + "01000000" + "78000000" +
        "00000000" + "ffffffff00000000";

    private static byte[] Golden => Convert.FromHexString(GoldenSchemaHex.Replace(" ", "", StringComparison.Ordinal));

    [Fact]
    public void SchemaWithOneNullableInt32_IsByteIdenticalToTheSpecGoldenVector()
    {
        var schema = new ArrowSchema([new ArrowField("x", ArrowType.Int32)]);
        var bytes = ArrowStreamWriter.ToBytes(schema);
        Assert.Equal(136, Golden.Length);
        Assert.Equal(Convert.ToHexString(Golden), Convert.ToHexString(bytes));
    }

    [Fact]
    public void SpecGoldenVector_ReadsAsOneNullableInt32FieldAndNoBatches()
    {
        var (schema, batches) = ArrowStreamReader.ReadAll(Golden);
        var field = Assert.Single(schema.Fields);
        Assert.Equal("x", field.Name);
        Assert.Equal(ArrowType.Int32, field.Type);
        Assert.True(field.Nullable);
        Assert.Empty(batches);
    }

    [Fact]
    public void WireEnumValues_AreFrozen()
    {
        // The Arrow format's numbers; changing one breaks every other implementation.
        Assert.Equal((-1, (short)3, (short)4), (ArrowWire.Continuation, ArrowWire.MetadataV4, ArrowWire.MetadataV5));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, new[] { ArrowWire.MessageHeader.Schema, ArrowWire.MessageHeader.DictionaryBatch, ArrowWire.MessageHeader.RecordBatch, ArrowWire.MessageHeader.Tensor, ArrowWire.MessageHeader.SparseTensor });
        Assert.Equal(new byte[] { 2, 3, 4, 5, 6, 10, 12, 16 }, new[] { ArrowWire.Type.Int, ArrowWire.Type.FloatingPoint, ArrowWire.Type.Binary, ArrowWire.Type.Utf8, ArrowWire.Type.Bool, ArrowWire.Type.Timestamp, ArrowWire.Type.List, ArrowWire.Type.FixedSizeList });
        Assert.Equal(new short[] { 0, 1, 2 }, new[] { ArrowWire.Precision.Half, ArrowWire.Precision.Single, ArrowWire.Precision.Double });
        Assert.Equal(new short[] { 0, 1, 2, 3 }, new[] { ArrowTimeUnit.Second, ArrowTimeUnit.Millisecond, ArrowTimeUnit.Microsecond, ArrowTimeUnit.Nanosecond }.Select(u => (short)u).ToArray());
    }

    [Fact]
    public void WrittenMessages_AreFramedAligned_AndEndWithEos()
    {
        var bytes = ArrowStreamWriter.ToBytes(Fixtures.AllTypesSchema, Fixtures.AllTypes(9, nulls: true), Fixtures.AllTypes(0, nulls: false));
        var reader = new ArrowStreamReader(bytes);
        var starts = new List<int> { 0, reader.Position };
        while (reader.ReadNext() is not null)
        {
            starts.Add(reader.Position);
        }
        // schema, 2 batches, then the EOS; every message 8-aligned with a continuation marker and padded size.
        Assert.Equal(4, starts.Count);
        Assert.Equal(bytes.Length - 8, starts[^1]);
        Assert.Equal(bytes.Length, reader.Position);
        foreach (var start in starts)
        {
            Assert.Equal(0, start % 8);
            Assert.Equal(-1, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(start)));
            Assert.Equal(0, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(start + 4)) % 8);
        }
        Assert.Equal("FFFFFFFF00000000", Convert.ToHexString(bytes.AsSpan(bytes.Length - 8)));
    }

    [Fact]
    public void NullCountZero_WritesZeroLengthValidityBuffer_AndReaderIgnoresBitmap()
    {
        var schema = new ArrowSchema([new ArrowField("v", ArrowType.Int64)]);
        var batch = new RecordBatch(schema, [ArrowArrays.Int64([5, 6, 7])]);
        var read = ArrowStreamReader.ReadAll(ArrowStreamWriter.ToBytes(batch)).Batches[0].Columns[0];
        Assert.Equal(0, read.NullCount);
        Assert.True(read.Validity.IsEmpty);
        Assert.Equal(new long[] { 5, 6, 7 }, read.Int64Values.ToArray());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(64)]
    [InlineData(65)]
    public void EveryType_RoundTripsThroughOurWriterAndReader(int rows)
    {
        var batch = Fixtures.AllTypes(rows, nulls: true, seed: rows);
        var bytes = ArrowStreamWriter.ToBytes(batch);
        var (schema, batches) = ArrowStreamReader.ReadAll(bytes);
        Assert.Equal(ArrowDump.Of(batch.Schema, [batch]).ToJsonString(), ArrowDump.Of(schema, batches).ToJsonString());
        Assert.Equal(rows - ((rows + 1) / 3), batches[0].Column("s")!.Length - batches[0].Column("s")!.NullCount);
    }

    [Fact]
    public void SlicedListChildrenAndOffsets_AreRebasedWhenWritten()
    {
        // A reader-produced array whose offsets start past 0 (allowed by the format) must be
        // written with offsets rebased to 0 and only the referenced child items.
        var child = ArrowArrays.Float32([9f, 9f, 1f, 2f, 3f]);
        var offsets = new byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(offsets, 2);
        BinaryPrimitives.WriteInt32LittleEndian(offsets.AsSpan(4), 4);
        BinaryPrimitives.WriteInt32LittleEndian(offsets.AsSpan(8), 5);
        var type = ArrowType.List(ArrowType.Float32, itemNullable: false);
        var list = ArrowArrays.FromBuffers(type, 2, 0, default, offsets, default, child);
        var schema = new ArrowSchema([new ArrowField("l", type)]);
        var read = ArrowStreamReader.ReadAll(ArrowStreamWriter.ToBytes(new RecordBatch(schema, [list]))).Batches[0].Columns[0];
        Assert.Equal(new[] { 0, 2, 3 }, read.OffsetValues.ToArray());
        Assert.Equal(new[] { 1f, 2f }, read.GetFloat32List(0).ToArray());
        Assert.Equal(new[] { 3f }, read.GetFloat32List(1).ToArray());
        Assert.Equal(3, read.Child!.Length);
    }

    [Fact]
    public void LegacyFramingWithoutContinuationAndWithoutEos_IsAccepted()
    {
        var batch = Fixtures.AllTypes(5, nulls: true);
        var modern = ArrowStreamWriter.ToBytes(batch);
        // Rewrite as pre-0.15 framing: drop each continuation marker and the EOS.
        var legacy = new List<byte>();
        var pos = 0;
        var reader = new ArrowStreamReader(modern);
        var ends = new List<int> { reader.Position };
        while (reader.ReadNext() is not null)
        {
            ends.Add(reader.Position);
        }
        foreach (var end in ends)
        {
            legacy.AddRange(modern.AsSpan(pos + 4, end - pos - 4).ToArray());
            pos = end;
        }
        var (_, batches) = ArrowStreamReader.ReadAll(legacy.ToArray());
        Assert.Equal(ArrowDump.Of(batch.Schema, [batch]).ToJsonString(), ArrowDump.Of(batch.Schema, batches).ToJsonString());
    }
}
