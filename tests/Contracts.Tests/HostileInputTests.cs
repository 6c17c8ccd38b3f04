using System.Buffers.Binary;
using Apache.Arrow;
using Apache.Arrow.Types;
using Attribution.Contracts.Arrow;
using FsCheck;
using FsCheck.Fluent;

namespace Attribution.Contracts.Tests;

/// <summary>
/// Malformed input at the Contracts boundary must raise <see cref="EventContractException"/> (never another exception
/// type, never a crash or hang) and allocate in proportion to the input, not to lengths or counts read from it.
/// The seeded sets here are small; `dotnet run -c Release --project bench/Benchmarks -- arrow-fuzz` runs 100,000+.
/// </summary>
public class HostileInputTests
{
    /// <summary>Valid inputs the mutations start from: several event types, batches, compression, dictionaries, the file format.</summary>
    public static readonly (string Name, byte[] Bytes, Func<byte[], int> Decode)[] Corpus =
    [
        ("attributions x3", EventCodecs.Attributions.EncodeBatch([EventRoundTripTests.Attribution(5, 1), EventRoundTripTests.Attribution(0, 2), EventRoundTripTests.Attribution(7, 3)]), b => EventCodecs.Attributions.DecodeBatch(b).Count),
        ("query", EventCodecs.Queries.Encode(new ModelQuery("q-1", "m", [0.5f, 1f, 2f], null, EventRoundTripTests.T0)), b => EventCodecs.Queries.DecodeBatch(b).Count),
        ("probe lz4", EventCodec<InfluenceProbe>.Instance.WithCompression(ArrowCompression.Lz4Frame).Encode(EventRoundTripTests.Probe(ProbePrecision.Float32)), b => EventCodecs.Probes.DecodeBatch(b).Count),
        ("probes f16 x2", EventCodecs.Probes.EncodeBatch([EventRoundTripTests.Probe(), EventRoundTripTests.Probe(id: 6)]), b => EventCodecs.Probes.DecodeBatch(b).Count),
        ("checkpoint with recipe", EventCodecs.Checkpoints.Encode(new CheckpointPublished("r", 5, "file:///c", "sha256:00", 10, EventRoundTripTests.Recipe with { Tokenizer = "bytes" })), b => EventCodecs.Checkpoints.DecodeBatch(b).Count),
        ("documents", EventCodecs.TrainingBatches.Encode(new TrainingBatch("lm", 3, [1, 2, 3], [0, 0, 1], Documents: [[256, 65, 257], [], [256, 66, 66, 257]])), b => EventCodecs.TrainingBatches.DecodeBatch(b).Count),
        ("batch zstd", EventCodec<TrainingBatch>.Instance.WithCompression(ArrowCompression.Zstd).Encode(new TrainingBatch("r", 3, [1, 2, 3], [4, 5, 6], [9])), b => EventCodecs.TrainingBatches.DecodeBatch(b).Count),
        ("dictionary queries", ArrowVariantTests.DictionaryQueries(), b => EventCodecs.Queries.DecodeBatch(b).Count),
        ("alert file", ArrowIpc.ToFileBytes(ContaminationAlert.Schema, [ContaminationAlert.ToArrow([new ContaminationAlert("q", [1, 2], [3], 0.7, 0.5)])]), b => EventCodecs.Alerts.DecodeBatch(b).Count),
    ];

    /// <summary>Decodes; true when accepted, false when refused with a contract error. Anything else fails the test.</summary>
    internal static bool Decode(Func<byte[], int> decode, byte[] bytes)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            decode(bytes);
            return true;
        }
        catch (EventContractException e)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
            return false;
        }
        finally
        {
            // Records copy every value once; nothing may scale with a count read from the wire.
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < (64L * bytes.Length) + (1 << 20), $"allocated {allocated} bytes for a {bytes.Length}-byte input");
        }
    }

    private static Config Fuzz(int tests)
    {
        var scale = int.TryParse(Environment.GetEnvironmentVariable("ARROW_FUZZ_SCALE"), out var s) ? s : 1;
        var seed = ulong.TryParse(Environment.GetEnvironmentVariable("ARROW_FUZZ_SEED"), out var z) ? z : 12345UL;
        return Config.QuickThrowOnFailure.WithMaxTest(tests * scale).WithReplay(seed, 67891UL);
    }

    [Fact]
    public void TheCorpusIsValid()
    {
        Assert.Equal([3, 1, 1, 2, 1, 1, 1, 2, 1], Corpus.Select(c => c.Decode(c.Bytes)));
    }

    [Fact]
    public void RandomBytes_OnlyEverRaiseEventContractException()
    {
        Check.One(Fuzz(1000), Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), bytes => !Decode(Corpus[0].Decode, bytes)));
    }

    [Fact]
    public void EveryTruncation_IsRefusedOrEndsAtAMessageBoundary()
    {
        foreach (var (name, valid, decode) in Corpus)
        {
            var accepted = 0;
            for (var length = 0; length < valid.Length; length++)
            {
                accepted += Decode(decode, valid[..length]) ? 1 : 0;
            }
            // Only cuts right after a complete message (before the end-of-stream marker) are streams; a file needs its footer.
            Assert.True(accepted <= 4, $"{name}: {accepted} truncations accepted");
        }
    }

    [Fact]
    public void EverySingleByteCorruption_OnlyEverRaisesEventContractException()
    {
        foreach (var (name, valid, decode) in Corpus)
        {
            var refused = 0;
            foreach (var replacement in new byte[] { 0x00, 0xFF, 0x80 })
            {
                for (var i = 0; i < valid.Length; i++)
                {
                    if (valid[i] == replacement)
                    {
                        continue;
                    }
                    var bytes = (byte[])valid.Clone();
                    bytes[i] = replacement;
                    refused += Decode(decode, bytes) ? 0 : 1;
                }
            }
            Assert.True(refused > valid.Length / 2, $"{name}: only {refused} corruptions were detected");
        }
    }

    [Fact]
    public void RandomBitFlipsAndHostileInt32s_OnlyEverRaiseEventContractException()
    {
        var flips = Gen.Choose(0, Corpus.Length - 1).SelectMany(c => Gen.Choose(0, (Corpus[c].Bytes.Length * 8) - 1).ArrayOf().Select(a => (c, a.Take(8).ToArray())));
        Check.One(Fuzz(600), Prop.ForAll(flips.ToArbitrary(), t =>
        {
            var bytes = (byte[])Corpus[t.c].Bytes.Clone();
            foreach (var bit in t.Item2)
            {
                bytes[bit >> 3] ^= (byte)(1 << (bit & 7));
            }
            Decode(Corpus[t.c].Decode, bytes);
            return true;
        }));
        var values = Gen.Elements(int.MaxValue, int.MinValue, -1, 0, 1, 8, 0x10000, 1 << 30);
        var overwrite = Gen.Choose(0, Corpus.Length - 1).SelectMany(c => Gen.Choose(0, Corpus[c].Bytes.Length - 4).Zip(values).Select(p => (c, p.Item1, p.Item2)));
        Check.One(Fuzz(600), Prop.ForAll(overwrite.ToArbitrary(), t =>
        {
            var bytes = (byte[])Corpus[t.c].Bytes.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(t.Item2), t.Item3);
            Decode(Corpus[t.c].Decode, bytes);
            return true;
        }));
    }

    // ---- targeted malformations, each with the error it must produce ------------------------------------------

    private static string Refuse<T>(IEventCodec<T> codec, byte[] bytes) => Assert.Throws<EventContractException>(() => codec.DecodeBatch(bytes)).Message;

    [Fact]
    public void BytesAfterTheEndOfStream_AreRefused()
    {
        var valid = EventCodecs.Queries.Encode(new ModelQuery("q", "m", [1f], null, default));
        Assert.Contains("4 bytes follow the end-of-stream marker", Refuse(EventCodecs.Queries, [.. valid, 1, 2, 3, 4]), StringComparison.Ordinal);
        Assert.Contains($"{valid.Length} bytes follow the end-of-stream marker", Refuse(EventCodecs.Queries, [.. valid, .. valid]), StringComparison.Ordinal);
    }

    [Fact]
    public void AQueryEventWithTwoRows_IsRefusedWhereOneIsExpected()
    {
        var two = EventCodecs.Queries.EncodeBatch([new ModelQuery("q-1", "m", [1f], null, default), new ModelQuery("q-2", "m", [1f], null, default)]);
        Assert.Equal("model-query event: expected exactly one event in the stream, found 2", Assert.Throws<EventContractException>(() => EventCodecs.Queries.Decode(two)).Message);
    }

    [Fact]
    public void HostileDecompressedLength_IsRefusedBeforeAnythingIsAllocated()
    {
        var bytes = EventCodec<AttributionResult>.Instance.WithCompression(ArrowCompression.Zstd).Encode(EventRoundTripTests.Attribution(100));
        // Every compressed buffer starts with its uncompressed length (int64); claim 1 GiB in the first one found.
        var claimed = 0;
        using (var contents = ArrowIpc.Read(bytes))
        {
            claimed = contents.Batches[0].Length;
        }
        var at = FindUncompressedLengthPrefix(bytes);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(at), 1L << 30);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var message = Refuse(EventCodecs.Attributions, bytes);
        Assert.Contains("more than 32x the", message, StringComparison.Ordinal);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
        Assert.Equal(1, claimed);
    }

    private static int FindUncompressedLengthPrefix(byte[] zstdStream)
    {
        // The zstd frame magic 28 B5 2F FD follows the 8-byte length prefix of each compressed buffer.
        var magic = zstdStream.AsSpan().IndexOf(new byte[] { 0x28, 0xB5, 0x2F, 0xFD });
        Assert.True(magic > 8);
        return magic - 8;
    }

    [Fact]
    public void DeeplyNestedSchema_IsRefusedBeforeApacheArrowRecursesIntoIt()
    {
        IArrowType type = Int64Type.Default;
        for (var i = 0; i < 40; i++)
        {
            type = new ListType(new Field("item", type, true));
        }
        var schema = new Schema([new Field("deep", type, true)], new Dictionary<string, string> { ["event-type"] = "attribution", ["schema-version"] = "1" });
        Assert.Contains("fields nest deeper than 32 levels (ArrowReadLimits.MaxNestingDepth)", Refuse(EventCodecs.Attributions, ArrowIpc.ToBytes(schema, [])), StringComparison.Ordinal);
    }

    [Fact]
    public void HostileVectorCount_IsRefusedNotAllocated()
    {
        // A record batch whose field-node vector claims 2^28 nodes (Apache.Arrow would size a list by it).
        var bytes = EventCodecs.Alerts.Encode(new ContaminationAlert("q", [1], [2], 1, 0.5));
        var nodes = FindNodeVectorCount(bytes);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(nodes), 1 << 28);
        Assert.Contains("RecordBatch.nodes: vector of 268435456 elements (16 bytes each) runs past the metadata end", Refuse(EventCodecs.Alerts, bytes), StringComparison.Ordinal);
    }

    private static int FindNodeVectorCount(byte[] alertStream)
    {
        // The alert has 5 columns + 2 list children = 7 field nodes: the vector is "07 00 00 00" then (length 1, nulls 0) x n.
        var pattern = new byte[] { 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        var at = alertStream.AsSpan().IndexOf(pattern);
        Assert.True(at > 0);
        return at;
    }

    [Fact]
    public void FileWhoseFooterDisagreesWithItsBody_IsRefused()
    {
        var file = ArrowIpc.ToFileBytes(ContaminationAlert.Schema, [ContaminationAlert.ToArrow([new ContaminationAlert("q", [], [], 1, 1)])]);
        var body = ArrowIpc.ToFileBytes(ContaminationAlert.Schema, [ContaminationAlert.ToArrow([new ContaminationAlert("q", [], [], 1, 1)]), ContaminationAlert.ToArrow([])]);
        Assert.Contains("truncated", Refuse(EventCodecs.Alerts, file[..^3]), StringComparison.Ordinal);
        // Splice: the first file's footer after the second file's two batches.
        var footerLength = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(file.Length - 10));
        var bodyFooterLength = BinaryPrimitives.ReadInt32LittleEndian(body.AsSpan(body.Length - 10));
        byte[] spliced = [.. body[..(body.Length - 10 - bodyFooterLength)], .. file[(file.Length - 10 - footerLength)..]];
        Assert.Contains("the file footer lists 1 record batches", Refuse(EventCodecs.Alerts, spliced), StringComparison.Ordinal);
    }

    [Fact]
    public void EmptyAndTinyInputs_SayWhatIsMissing()
    {
        Assert.Equal("attribution event: not a valid Arrow IPC stream: Malformed Arrow input at byte 0: the input is empty; an Arrow IPC stream starts with a Schema message.", Refuse(EventCodecs.Attributions, []));
        Assert.Contains("truncated: the metadata size after the continuation marker needs 4 bytes but 1 remain", Refuse(EventCodecs.Attributions, [0xFF, 0xFF, 0xFF, 0xFF, 0x10]), StringComparison.Ordinal);
    }
}
