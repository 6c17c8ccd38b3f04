using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Apache.Arrow;
using Apache.Arrow.Types;
using Attribution.Contracts;
using Attribution.Contracts.Arrow;

namespace Attribution.Benchmarks;

/// <summary>
/// Mutation fuzzing of the Contracts boundary: N inputs derived from valid events of every type (several batches,
/// lz4/zstd bodies, dictionary strings, the file format) by bit flips, byte overwrites, hostile int32/int64 values,
/// truncations, appended bytes, spliced chunks and random bytes, each decoded by its event codec. Every input must end
/// as decoded events or an EventContractException; any other exception is counted and printed (the run fails), and
/// a crash would end the process. Also reports the largest allocation per input byte.
/// Run: dotnet run -c Release --project bench/Benchmarks -- arrow-fuzz [inputs=100000] [seed=1]
/// </summary>
internal static class ArrowFuzz
{
    public static int Run(string[] args)
    {
        var inputs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100_000;
        var seed = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1;
        var corpus = Corpus();
        var rng = new Random(seed);
        long accepted = 0, refused = 0, unhandled = 0;
        double worstRatio = 0;
        var worstAllocation = 0L;
        var strategies = new long[8];
        var watch = Stopwatch.StartNew();
        for (var n = 0; n < inputs; n++)
        {
            var (name, valid, decode) = corpus[rng.Next(corpus.Length)];
            var strategy = rng.Next(strategies.Length);
            strategies[strategy]++;
            var bytes = Mutate(valid, strategy, rng, corpus);
            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                decode(bytes);
                accepted++;
            }
            catch (EventContractException)
            {
                refused++;
            }
            catch (Exception e)
            {
                unhandled++;
                if (unhandled <= 10)
                {
                    Console.WriteLine($"UNHANDLED on input {n} ({name}, strategy {strategy}): {e.GetType().Name}: {e.Message}\n  bytes: {Convert.ToHexString(bytes)}");
                }
            }
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (allocated > worstAllocation)
            {
                worstAllocation = allocated;
            }
            if (bytes.Length >= 1024)
            {
                worstRatio = Math.Max(worstRatio, (double)allocated / bytes.Length);
            }
        }
        Console.WriteLine($"arrow-fuzz: {inputs} mutated inputs (seed {seed}) from {corpus.Length} valid events in {watch.Elapsed.TotalSeconds:F1} s");
        Console.WriteLine($"  accepted {accepted}, refused with EventContractException {refused}, unhandled {unhandled}");
        Console.WriteLine($"  per strategy (bit flips, byte overwrite, int32, int64, truncate, append, splice, random): {string.Join(", ", strategies)}");
        Console.WriteLine($"  largest managed allocation for one input: {worstAllocation} bytes; worst allocation / input size for inputs of 1 KiB or more: {worstRatio:F1}");
        return unhandled == 0 ? 0 : 1;
    }

    private static byte[] Mutate(byte[] valid, int strategy, Random rng, (string, byte[], Func<byte[], int>)[] corpus)
    {
        var bytes = (byte[])valid.Clone();
        switch (strategy)
        {
            case 0:
                for (var k = rng.Next(1, 9); k > 0; k--)
                {
                    var bit = rng.Next(bytes.Length * 8);
                    bytes[bit >> 3] ^= (byte)(1 << (bit & 7));
                }
                return bytes;
            case 1:
                for (var k = rng.Next(1, 5); k > 0; k--)
                {
                    bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                }
                return bytes;
            case 2:
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(rng.Next(bytes.Length - 3)), HostileInt32[rng.Next(HostileInt32.Length)]);
                return bytes;
            case 3:
                BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(rng.Next(bytes.Length - 7)), HostileInt64[rng.Next(HostileInt64.Length)]);
                return bytes;
            case 4:
                return bytes[..rng.Next(bytes.Length)];
            case 5:
                var tail = new byte[rng.Next(1, 64)];
                rng.NextBytes(tail);
                return [.. bytes, .. (rng.Next(2) == 0 ? tail : valid)];
            case 6:
                var other = corpus[rng.Next(corpus.Length)].Item2;
                var from = rng.Next(other.Length);
                var length = rng.Next(1, Math.Min(256, other.Length - from) + 1);
                var at = rng.Next(bytes.Length);
                return [.. bytes[..at], .. other.AsSpan(from, length), .. bytes[Math.Min(bytes.Length, at + rng.Next(0, 64))..]];
            default:
                var random = new byte[rng.Next(0, 2048)];
                rng.NextBytes(random);
                if (random.Length >= 8 && rng.Next(2) == 0)
                {
                    BinaryPrimitives.WriteInt32LittleEndian(random, -1); // a plausible start: continuation marker + size
                    BinaryPrimitives.WriteInt32LittleEndian(random.AsSpan(4), rng.Next(random.Length));
                }
                return random;
        }
    }

    private static readonly int[] HostileInt32 = [int.MaxValue, int.MinValue, -1, 0, 1, 7, 8, 0x10000, 1 << 30, -8];
    private static readonly long[] HostileInt64 = [long.MaxValue, long.MinValue, -1, 0, 1L << 31, 1L << 40, int.MaxValue, -2];

    private static (string, byte[], Func<byte[], int>)[] Corpus()
    {
        var t0 = new DateTimeOffset(2026, 12, 5, 1, 2, 3, TimeSpan.Zero);
        var attributions = ArrowWorkload.Attributions(3);
        var dictionaryType = new DictionaryType(Int32Type.Default, StringType.Default, false);
        var listType = new ListType(new Field("item", FloatType.Default, false));
        var utc = new TimestampType(TimeUnit.Microsecond, "UTC");
        var querySchema = new Schema(
        [
            new Field("query_id", dictionaryType, false),
            new Field("model_version", dictionaryType, false),
            new Field("features", listType, true),
            new Field("timestamp", utc, false),
        ], new Dictionary<string, string> { ["event-type"] = "model-query", ["schema-version"] = "1" });
        var dictionaryQuery = ArrowIpc.ToBytes(querySchema, [new RecordBatch(querySchema,
        [
            new DictionaryArray(dictionaryType, ArrowArrays.Int32([0]), ArrowArrays.Utf8(["q-7"])),
            new DictionaryArray(dictionaryType, ArrowArrays.Int32([0]), ArrowArrays.Utf8(["run-1@300"])),
            ArrowArrays.List<float>(listType, [new float[] { 0, 0.5f, 1 }]),
            ArrowArrays.Timestamp(utc, [1_700_000_000_000_000]),
        ], 1)]);
        return
        [
            ("attributions x3", EventCodecs.Attributions.EncodeBatch(attributions), b => EventCodecs.Attributions.DecodeBatch(b).Count),
            ("attribution lz4", EventCodec<AttributionResult>.Instance.WithCompression(ArrowCompression.Lz4Frame).Encode(attributions[0]), b => EventCodecs.Attributions.DecodeBatch(b).Count),
            ("attribution zstd", EventCodec<AttributionResult>.Instance.WithCompression(ArrowCompression.Zstd).Encode(attributions[1]), b => EventCodecs.Attributions.DecodeBatch(b).Count),
            ("query", EventCodecs.Queries.Encode(new ModelQuery("q-1", "run-1@300", [0f, 0.25f, 1f], null, t0)), b => EventCodecs.Queries.Decode(b) is null ? 0 : 1),
            ("token query", EventCodecs.Queries.Encode(new ModelQuery("q-2", "gpt@1", null, [101, 7, 102], t0)), b => EventCodecs.Queries.Decode(b) is null ? 0 : 1),
            ("dictionary query", dictionaryQuery, b => EventCodecs.Queries.Decode(b) is null ? 0 : 1),
            ("probe", EventCodecs.Probes.Encode(new InfluenceProbe("r", 1, ProbeSubject.Source, 2, "mlp:2-3", 1, 4, 1, [new("layers.0.weight", 3, 2, 1), new("layers.0.bias", 3, 1, 0)], ProbePrecision.Float16, [0.5f, -1f, 2f, 0.25f, 3f, -0.125f, 1.5f, 4f])), b => EventCodecs.Probes.DecodeBatch(b).Count),
            ("training batch", EventCodecs.TrainingBatches.Encode(new TrainingBatch("r", 5, [1, 2], [3, 4], [1, 2, 3])), b => EventCodecs.TrainingBatches.DecodeBatch(b).Count),
            ("checkpoint", EventCodecs.Checkpoints.Encode(new CheckpointPublished("r", 5, "file:///c", "sha256:00", 10, new CheckpointRecipe("mlp:784-10", 0.05, 5e-4, 128, 1, "fashion-mnist"))), b => EventCodecs.Checkpoints.DecodeBatch(b).Count),
            ("alert file", ArrowIpc.ToFileBytes(ContaminationAlert.Schema, [ContaminationAlert.ToArrow([new ContaminationAlert("q", [1], [2], 0.9, 0.5)])]), b => EventCodecs.Alerts.DecodeBatch(b).Count),
        ];
    }
}
