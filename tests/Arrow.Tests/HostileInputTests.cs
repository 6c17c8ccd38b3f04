using System.Buffers.Binary;
using Attribution.Arrow.FlatBuffers;
using FsCheck;
using FsCheck.Fluent;

namespace Attribution.Arrow.Tests;

/// <summary>
/// Malformed input must raise <see cref="ArrowFormatException"/> (never another exception type),
/// never hang, and allocate in proportion to the input, not to counts read from it.
/// </summary>
public class HostileInputTests
{
    private static readonly byte[] Valid = ArrowStreamWriter.ToBytes(Fixtures.AllTypesSchema, Fixtures.AllTypes(9, nulls: true), Fixtures.AllTypes(3, nulls: false, seed: 5));

    /// <summary>Reads everything and touches every value; returns whether the stream was accepted.</summary>
    private static bool ReadFully(byte[] bytes, ArrowReaderOptions? options = null)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            var (schema, batches) = ArrowStreamReader.ReadAll(bytes, options);
            _ = ArrowDump.Of(schema, batches).ToJsonString();
            return true;
        }
        catch (ArrowFormatException e)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
            return false;
        }
        finally
        {
            // Reading itself is zero-copy; the dump above dominates. Nothing may scale with a count read from the wire.
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < (200L * bytes.Length) + (1 << 20), $"allocated {allocated} bytes for a {bytes.Length}-byte input");
        }
    }

    // Fixed seed so CI is reproducible; ARROW_FUZZ_SCALE=50 (and ARROW_FUZZ_SEED) runs a longer, different search locally.
    private static Config Fuzz(int tests)
    {
        var scale = int.TryParse(Environment.GetEnvironmentVariable("ARROW_FUZZ_SCALE"), out var s) ? s : 1;
        var seed = ulong.TryParse(Environment.GetEnvironmentVariable("ARROW_FUZZ_SEED"), out var z) ? z : 12345UL;
        return Config.QuickThrowOnFailure.WithMaxTest(tests * scale).WithReplay(seed, 67891UL);
    }

    [Fact]
    public void RandomBytes_OnlyEverRaiseArrowFormatException()
    {
        Check.One(Fuzz(2000), Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), bytes => { ReadFully(bytes); return true; }));
    }

    [Fact]
    public void RandomBytesAfterAValidContinuationAndSize_OnlyEverRaiseArrowFormatException()
    {
        Check.One(Fuzz(2000), Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), tail =>
        {
            var bytes = new byte[8 + tail.Length];
            BinaryPrimitives.WriteInt32LittleEndian(bytes, -1);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), tail.Length);
            tail.CopyTo(bytes, 8);
            ReadFully(bytes);
            return true;
        }));
    }

    [Fact]
    public void EveryTruncationOfAValidStream_IsRejectedOrEndsAtAMessageBoundary()
    {
        var accepted = 0;
        for (var length = 0; length < Valid.Length; length++)
        {
            accepted += ReadFully(Valid[..length]) ? 1 : 0;
        }
        // Only cuts at the 3 message boundaries after the schema (no EOS) are valid streams.
        Assert.Equal(3, accepted);
    }

    [Fact]
    public void EverySingleByteCorruption_OnlyEverRaisesArrowFormatException()
    {
        var rejected = 0;
        foreach (var replacement in new byte[] { 0x00, 0xFF, 0x7F, 0x80 })
        {
            for (var i = 0; i < Valid.Length; i++)
            {
                var bytes = (byte[])Valid.Clone();
                if (bytes[i] == replacement)
                {
                    continue;
                }
                bytes[i] = replacement;
                rejected += ReadFully(bytes) ? 0 : 1;
            }
        }
        Assert.True(rejected > Valid.Length, $"only {rejected} corruptions were detected");
    }

    [Fact]
    public void RandomBitFlipsAndInt32Overwrites_OnlyEverRaiseArrowFormatException()
    {
        var flips = Gen.Choose(0, (Valid.Length * 8) - 1).ArrayOf().Select(a => a.Take(8).ToArray());
        Check.One(Fuzz(1500), Prop.ForAll(flips.ToArbitrary(), bits =>
        {
            var bytes = (byte[])Valid.Clone();
            foreach (var bit in bits)
            {
                bytes[bit >> 3] ^= (byte)(1 << (bit & 7));
            }
            ReadFully(bytes);
            return true;
        }));
        var values = Gen.Elements(int.MaxValue, int.MinValue, -1, 0, 1, 8, 0x10000, 1 << 30);
        var overwrite = Gen.Choose(0, Valid.Length - 4).Zip(values);
        Check.One(Fuzz(1500), Prop.ForAll(overwrite.ToArbitrary(), t =>
        {
            var bytes = (byte[])Valid.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(t.Item1), t.Item2);
            ReadFully(bytes);
            return true;
        }));
    }

    // ---- targeted malformations, each with the message it must produce -------------------------

    private static string Reject(byte[] bytes, ArrowReaderOptions? options = null) =>
        Assert.Throws<ArrowFormatException>(() => ArrowStreamReader.ReadAll(bytes, options)).Message;

    private static byte[] GoldenSchema() => ArrowStreamWriter.ToBytes(new ArrowSchema([new ArrowField("x", ArrowType.Int32)]));

    [Fact]
    public void MetadataVersionV1_IsRejected()
    {
        var bytes = GoldenSchema();
        bytes[30] = 0; // Message.version (spec section 5.1, flatbuffer position 22)
        Assert.Contains("metadata version 0 is not supported", Reject(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownOrDictionaryHeaderType_IsRejected()
    {
        var bytes = GoldenSchema();
        bytes[29] = 2; // Message.header_type = DictionaryBatch
        Assert.Contains("first message is a DictionaryBatch", Reject(bytes), StringComparison.Ordinal);
        bytes[29] = 9;
        Assert.Contains("unknown header type 9", Reject(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public void UnsupportedColumnType_IsRejectedWithTheFieldName()
    {
        var bytes = GoldenSchema();
        bytes[90] = 7; // Field.type_type = Decimal
        Assert.Contains("field 0 ('x'): type Decimal (union tag 7) is not supported", Reject(bytes), StringComparison.Ordinal);
    }

    private static (byte[] Bytes, int BodyStart) Int32Batch()
    {
        var schema = new ArrowSchema([new ArrowField("x", ArrowType.Int32, Nullable: false)]);
        var bytes = ArrowStreamWriter.ToBytes(new RecordBatch(schema, [ArrowArrays.Int32([1, 2, 3])]));
        return (bytes, bytes.Length - 8 - 16); // body: values 12 bytes + 4 padding, then EOS
    }

    [Fact]
    public void TruncatedBody_IsRejected()
    {
        var (bytes, _) = Int32Batch();
        Assert.Contains("truncated: message 1 declares a 16-byte body but only 8 bytes remain", Reject(bytes[..^16]), StringComparison.Ordinal);
    }

    private static int FindBuffer(byte[] bytes, long offset, long length)
    {
        var pattern = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(pattern, offset);
        BinaryPrimitives.WriteInt64LittleEndian(pattern.AsSpan(8), length);
        var at = bytes.AsSpan().LastIndexOf(pattern);
        Assert.True(at > 0);
        return at;
    }

    [Fact]
    public void BufferOutsideTheBody_IsRejected()
    {
        var (bytes, _) = Int32Batch();
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(FindBuffer(bytes, 0, 12) + 8), 1L << 40);
        Assert.Contains("lies outside the 16-byte body", Reject(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public void MisalignedBuffer_IsRejectedByDefault_AndReadWhenAlignmentIsNotRequired()
    {
        var (bytes, bodyStart) = Int32Batch();
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(FindBuffer(bytes, 0, 12)), 4);
        Assert.Contains("starts at body offset 4, not a multiple of 8", Reject(bytes), StringComparison.Ordinal);
        var lenient = ArrowStreamReader.ReadAll(bytes, new ArrowReaderOptions { RequireAlignedBuffers = false });
        Assert.Equal(new[] { 2, 3, 0 }, lenient.Batches[0].Columns[0].Int32Values.ToArray());
        Assert.True(bodyStart > 0);
    }

    [Fact]
    public void DecreasingOffsets_AreRejected()
    {
        var schema = new ArrowSchema([new ArrowField("s", ArrowType.Utf8)]);
        var bytes = ArrowStreamWriter.ToBytes(new RecordBatch(schema, [ArrowArrays.Utf8(["ab", "c"])]));
        var body = bytes.Length - 8 - 24; // offsets (12 + 4 pad), data (3 + 5 pad)
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(body + 4), 5);
        Assert.Contains("column 0 ('s'): offsets decrease at slot 1 (5 then 3)", Reject(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public void CompressedBody_IsRejected()
    {
        var fb = new FlatBufferBuilder();
        var buffers = fb.CreateStructVector([]);
        var nodes = fb.CreateStructVector([]);
        fb.StartTable(0);
        var compression = fb.EndTable();
        fb.StartTable(4);
        fb.AddOffset(3, compression);
        fb.AddOffset(2, buffers);
        fb.AddOffset(1, nodes);
        var batch = fb.EndTable();
        fb.StartTable(4);
        fb.AddOffset(2, batch);
        fb.AddInt16(0, ArrowWire.MetadataV5);
        fb.AddByte(1, ArrowWire.MessageHeader.RecordBatch);
        fb.Finish(fb.EndTable());
        var schema = ArrowStreamWriter.ToBytes(new ArrowSchema([]));
        var message = new byte[8 + ((fb.WrittenSpan.Length + 7) & ~7)];
        BinaryPrimitives.WriteInt32LittleEndian(message, -1);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(4), message.Length - 8);
        fb.WrittenSpan.CopyTo(message.AsSpan(8));
        var bytes = schema[..^8].Concat(message).ToArray();
        Assert.Contains("uses body compression, which is not supported", Reject(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public void SizeLimits_AreEnforced()
    {
        Assert.Contains("ArrowReaderOptions.MaxMetadataBytes", Reject(Valid, new ArrowReaderOptions { MaxMetadataBytes = 64 }), StringComparison.Ordinal);
        Assert.Contains("ArrowReaderOptions.MaxBodyBytes", Reject(Valid, new ArrowReaderOptions { MaxBodyBytes = 64 }), StringComparison.Ordinal);
        Assert.Contains("ArrowReaderOptions.MaxFields", Reject(Valid, new ArrowReaderOptions { MaxFields = 5 }), StringComparison.Ordinal);
        Assert.Contains("ArrowReaderOptions.MaxRowsPerBatch", Reject(Valid, new ArrowReaderOptions { MaxRowsPerBatch = 4 }), StringComparison.Ordinal);
        Assert.Contains("ArrowReaderOptions.MaxBatches", Reject(Valid, new ArrowReaderOptions { MaxBatches = 1 }), StringComparison.Ordinal);
        Assert.Contains("ArrowReaderOptions.MaxMetadataEntries", Reject(Valid, new ArrowReaderOptions { MaxMetadataEntries = 1 }), StringComparison.Ordinal);
    }

    [Fact]
    public void ArrowFileFormat_IsRejectedWithAMessageNamingTheStreamFormat()
    {
        Assert.Contains("this is the Arrow IPC file format ('ARROW1' magic), not the stream format", Reject("ARROW1\0\0"u8.ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public void EmptyInput_IsRejectedWithAMessageSayingASchemaIsExpected()
    {
        Assert.Contains("starts with a Schema message", Reject([]), StringComparison.Ordinal);
    }
}
