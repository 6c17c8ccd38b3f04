using System.Buffers;
using Apache.Arrow;
using Attribution.Contracts;
using Attribution.Contracts.Arrow;
using BenchmarkDotNet.Attributes;

namespace Attribution.Benchmarks;

/// <summary>
/// Arrow IPC encode/decode of attribution events (top-100 example ids + scores per row) on Apache.Arrow, as the
/// services do it: <see cref="EventCodecs.Attributions"/> records to stream bytes and back (hardened read, every
/// column validated, lists copied into records), uncompressed and with lz4/zstd bodies. Throughput = uncompressed
/// stream bytes / mean time (see docs/benchmarks/arrow.md; the same-run comparison with the former hand-written
/// codec is `dotnet run -c Release --project bench/Benchmarks -- arrow-compare`).
/// Run: dotnet run -c Release --project bench/Benchmarks -- --filter '*ArrowBenchmarks*'
/// </summary>
[MemoryDiagnoser]
public class ArrowBenchmarks
{
    private readonly ArrayBufferWriter<byte> _output = new(1 << 22);
    private AttributionResult[] _records = [];
    private byte[] _bytes = [];
    private EventCodec<AttributionResult> _codec = EventCodec<AttributionResult>.Instance;

    [Params(1, 1000)]
    public int Rows { get; set; }

    [Params(ArrowCompression.None, ArrowCompression.Lz4Frame, ArrowCompression.Zstd)]
    public ArrowCompression Compression { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _records = ArrowWorkload.Attributions(Rows);
        _codec = EventCodec<AttributionResult>.Instance.WithCompression(Compression);
        _bytes = _codec.EncodeBatch(_records);
        Console.WriteLine($"// stream bytes for {Rows} row(s), {Compression}: {_bytes.Length}");
    }

    [Benchmark]
    public int EncodeRecords()
    {
        _output.ResetWrittenCount();
        using var batch = AttributionResult.ToArrow(_records);
        ArrowIpc.Write(_output, AttributionResult.Schema, [batch], Compression);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int DecodeRecords() => _codec.DecodeBatch(_bytes).Count;
}

/// <summary>The benchmark workload: attribution events with top-100 example lists and 10 sources.</summary>
internal static class ArrowWorkload
{
    public static AttributionResult[] Attributions(int rows)
    {
        var rng = new Random(7);
        return Enumerable.Range(0, rows).Select(i => new AttributionResult(
            $"query-{i:D8}", "run-1@step-300", "forward-only",
            Enumerable.Range(0, 100).Select(_ => rng.NextInt64(0, 60_000)).ToArray(),
            Enumerable.Range(0, 100).Select(_ => (float)rng.NextDouble()).ToArray(),
            Enumerable.Range(0, 10).Select(s => (long)s).ToArray(),
            Enumerable.Range(0, 10).Select(_ => (float)rng.NextDouble()).ToArray(),
            850)).ToArray();
    }

    /// <summary>Decodes every column of every batch as a reader that wants the values would: hardened read + validation.</summary>
    public static int ReadValidated(byte[] bytes)
    {
        using var contents = ArrowIpc.Read(bytes);
        var rows = 0;
        foreach (RecordBatch batch in contents.Batches)
        {
            foreach (var column in batch.Arrays)
            {
                ArrowValidation.Validate(column, "column");
            }
            rows += batch.Length;
        }
        return rows;
    }
}
