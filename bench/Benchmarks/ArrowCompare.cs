using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using Attribution.Contracts;
using Attribution.Contracts.Arrow;

namespace Attribution.Benchmarks;

/// <summary>
/// Same-run, alternating comparison of Arrow encode/decode of the 1,000-row attribution batch (top-100 lists),
/// uncompressed and with lz4/zstd bodies: each round runs every case once for a fixed time slice, rounds rotate the
/// case order, and the median over rounds is reported, so load on a shared machine hits every case alike.
/// Throughput = uncompressed stream bytes / time. (Until the hand-written codec was removed, this also ran it side by
/// side with Apache.Arrow; those numbers are in docs/benchmarks/arrow.md.)
/// Run: dotnet run -c Release --project bench/Benchmarks -- arrow-compare [rows] [rounds]
/// </summary>
internal static class ArrowCompare
{
    public static int Run(string[] args)
    {
        var rows = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1000;
        var rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 9;
        var records = ArrowWorkload.Attributions(rows);
        var output = new ArrayBufferWriter<byte>(1 << 22);
        var plain = EventCodecs.Attributions.EncodeBatch(records);
        var lz4 = EventCodec<AttributionResult>.Instance.WithCompression(ArrowCompression.Lz4Frame);
        var zstd = EventCodec<AttributionResult>.Instance.WithCompression(ArrowCompression.Zstd);
        var lz4Bytes = lz4.EncodeBatch(records);
        var zstdBytes = zstd.EncodeBatch(records);
        Check(lz4.DecodeBatch(lz4Bytes).Count == rows && zstd.DecodeBatch(zstdBytes).Count == rows, "compressed streams decode");
        Console.WriteLine($"arrow-compare: {rows} attribution rows, top-100 lists; stream bytes: uncompressed {plain.Length}, lz4 {lz4Bytes.Length}, zstd {zstdBytes.Length}; {rounds} alternating rounds");

        var cases = new (string Name, long Bytes, Func<int> Run)[]
        {
            ("encode records", plain.Length, () => { output.ResetWrittenCount(); EncodeInto(output, records, ArrowCompression.None); return output.WrittenCount; }),
            ("decode records", plain.Length, () => EventCodecs.Attributions.DecodeBatch(plain).Count),
            ("decode columns (validated, no records)", plain.Length, () => ArrowWorkload.ReadValidated(plain)),
            ("encode records lz4", plain.Length, () => { output.ResetWrittenCount(); EncodeInto(output, records, ArrowCompression.Lz4Frame); return output.WrittenCount; }),
            ("decode records lz4", plain.Length, () => lz4.DecodeBatch(lz4Bytes).Count),
            ("encode records zstd", plain.Length, () => { output.ResetWrittenCount(); EncodeInto(output, records, ArrowCompression.Zstd); return output.WrittenCount; }),
            ("decode records zstd", plain.Length, () => zstd.DecodeBatch(zstdBytes).Count),
        };
        var times = cases.Select(_ => new List<double>()).ToArray();
        foreach (var c in cases)
        {
            for (var i = 0; i < 20; i++)
            {
                c.Run(); // warm-up (JIT tiering)
            }
        }
        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < cases.Length; k++)
            {
                var c = cases[(k + round) % cases.Length];
                var index = (k + round) % cases.Length;
                var n = 0;
                var start = Stopwatch.GetTimestamp();
                while (Stopwatch.GetElapsedTime(start).TotalMilliseconds < 300)
                {
                    c.Run();
                    n++;
                }
                times[index].Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds / n);
            }
        }
        Console.WriteLine($"{"case",-46} {"median us",10} {"min us",10} {"GB/s",7}");
        for (var k = 0; k < cases.Length; k++)
        {
            var sorted = times[k].Order().ToArray();
            var median = sorted[sorted.Length / 2];
            Console.WriteLine($"{cases[k].Name,-46} {median,10:F1} {sorted[0],10:F1} {cases[k].Bytes / median / 1000,7:F2}");
        }
        return 0;
    }

    private static void EncodeInto(IBufferWriter<byte> output, AttributionResult[] records, ArrowCompression compression)
    {
        using var batch = AttributionResult.ToArrow(records);
        ArrowIpc.Write(output, AttributionResult.Schema, [batch], compression);
    }

    private static void Check(bool ok, string what)
    {
        if (!ok)
        {
            throw new InvalidOperationException($"arrow-compare self-check failed: {what}");
        }
    }
}
