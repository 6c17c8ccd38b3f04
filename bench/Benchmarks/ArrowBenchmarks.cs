using System.Buffers;
using Attribution.Arrow;
using Attribution.Contracts;
using BenchmarkDotNet.Attributes;

namespace Attribution.Benchmarks;

/// <summary>
/// Arrow IPC encode/decode of attribution events (top-100 example ids + scores per row).
/// Codec level: RecordBatch -> stream bytes and stream bytes -> RecordBatch (zero-copy, fully
/// validated). Record level: AttributionResult records to and from bytes, including the copies into and
/// out of records. Throughput = stream bytes / mean time (see docs/benchmarks/arrow.md).
/// Run: dotnet run -c Release --project bench/Benchmarks -- --filter '*ArrowBenchmarks*'
/// </summary>
[MemoryDiagnoser]
public class ArrowBenchmarks
{
    private readonly ArrayBufferWriter<byte> _output = new(1 << 22);
    private AttributionResult[] _records = [];
    private RecordBatch _batch = null!;
    private byte[] _bytes = [];

    [Params(1, 1000)]
    public int Rows { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(7);
        _records = Enumerable.Range(0, Rows).Select(i => new AttributionResult(
            $"query-{i:D8}", "run-1@step-300", "forward-only",
            Enumerable.Range(0, 100).Select(_ => rng.NextInt64(0, 60_000)).ToArray(),
            Enumerable.Range(0, 100).Select(_ => (float)rng.NextDouble()).ToArray(),
            Enumerable.Range(0, 10).Select(s => (long)s).ToArray(),
            Enumerable.Range(0, 10).Select(_ => (float)rng.NextDouble()).ToArray(),
            850)).ToArray();
        _batch = AttributionResult.ToArrow(_records);
        _bytes = ArrowStreamWriter.ToBytes(_batch);
        Console.WriteLine($"// stream bytes for {Rows} row(s): {_bytes.Length}");
    }

    [Benchmark]
    public int EncodeBatch()
    {
        _output.ResetWrittenCount();
        ArrowStreamWriter.WriteStream(_output, _batch.Schema, [_batch]);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int DecodeBatch()
    {
        var reader = new ArrowStreamReader(_bytes);
        var batch = reader.ReadNext()!;
        return batch.Length + (reader.ReadNext() is null ? 0 : 1);
    }

    [Benchmark]
    public int EncodeRecords()
    {
        _output.ResetWrittenCount();
        ArrowStreamWriter.WriteStream(_output, AttributionResult.Schema, [AttributionResult.ToArrow(_records)]);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int DecodeRecords() => EventCodecs.Attributions.DecodeBatch(_bytes).Count;
}
