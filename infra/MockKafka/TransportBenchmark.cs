using System.Buffers.Binary;
using System.Diagnostics;
using Attribution.Transport;

namespace Attribution.MockKafka;

/// <summary>Produce-to-consume throughput and latency of an <see cref="IEventLog"/> (one producer, one consumer).</summary>
internal static class TransportBenchmark
{
    public sealed record Result(string Mode, int Messages, double PerSecond, double P50Us, double P99Us);

    /// <summary>Pipelined: up to <paramref name="window"/> produces in flight; latency is produce-call to consume.</summary>
    public static async Task<Result> ThroughputAsync(IEventLog log, string topic, int messages, int valueBytes, int window)
    {
        using var producer = log.CreateProducer();
        using var consumer = log.CreateConsumer(new ConsumerSettings { Topics = [topic], GroupId = "bench-" + Guid.NewGuid().ToString("N") });
        await WarmUpAsync(producer, consumer, topic);
        var latencies = new double[messages];
        var consumed = Task.Factory.StartNew(() => ConsumeAll(consumer, messages, latencies), TaskCreationOptions.LongRunning);
        var inFlight = new SemaphoreSlim(window);
        var pending = new List<Task>(messages);
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < messages; i++)
        {
            await inFlight.WaitAsync();
            var value = new byte[valueBytes];
            BinaryPrimitives.WriteInt64LittleEndian(value, Stopwatch.GetTimestamp());
            pending.Add(producer.ProduceAsync(topic, new EventMessage(BitConverter.GetBytes(i % 64), value)).ContinueWith(_ => inFlight.Release(), TaskScheduler.Default));
        }

        await Task.WhenAll(pending);
        await consumed;
        var elapsed = sw.Elapsed;
        return Summarise("throughput", messages, elapsed, latencies);
    }

    /// <summary>One at a time: produce, wait until consumed, repeat (the latency an idle pipeline adds to one query).</summary>
    public static async Task<Result> LatencyAsync(IEventLog log, string topic, int messages, int valueBytes)
    {
        using var producer = log.CreateProducer();
        using var consumer = log.CreateConsumer(new ConsumerSettings { Topics = [topic], GroupId = "bench-" + Guid.NewGuid().ToString("N") });
        await WarmUpAsync(producer, consumer, topic);
        var latencies = new double[messages];
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < messages; i++)
        {
            var value = new byte[valueBytes];
            var start = Stopwatch.GetTimestamp();
            BinaryPrimitives.WriteInt64LittleEndian(value, start);
            _ = producer.ProduceAsync(topic, new EventMessage(BitConverter.GetBytes(i % 64), value));
            var r = consumer.Consume(TimeSpan.FromSeconds(30)) ?? throw new TimeoutException($"message {i} not consumed within 30 s");
            latencies[i] = Stopwatch.GetElapsedTime(BinaryPrimitives.ReadInt64LittleEndian(r.Value)).TotalMicroseconds;
            consumer.StoreOffset(r);
        }

        consumer.Commit();
        return Summarise("latency", messages, sw.Elapsed, latencies);
    }

    private static async Task WarmUpAsync(IEventProducer producer, IEventConsumer consumer, string topic)
    {
        // Join the group and fetch once, so the measurement does not include the first rebalance.
        var marker = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(marker, -1);
        await producer.ProduceAsync(topic, new EventMessage([], marker));
        var deadline = Stopwatch.StartNew();
        while (consumer.Consume(TimeSpan.FromMilliseconds(200)) is not { } r || BinaryPrimitives.ReadInt64LittleEndian(r.Value) != -1)
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException("warm-up message was not consumed within 60 s");
            }
        }
    }

    private static void ConsumeAll(IEventConsumer consumer, int messages, double[] latencies)
    {
        var n = 0;
        while (n < messages)
        {
            var r = consumer.Consume(TimeSpan.FromSeconds(30)) ?? throw new TimeoutException($"only {n} of {messages} consumed");
            latencies[n++] = Stopwatch.GetElapsedTime(BinaryPrimitives.ReadInt64LittleEndian(r.Value)).TotalMicroseconds;
            consumer.StoreOffset(r);
            if (n % 1000 == 0)
            {
                consumer.Commit();
            }
        }

        consumer.Commit();
    }

    private static Result Summarise(string mode, int messages, TimeSpan elapsed, double[] latencies)
    {
        Array.Sort(latencies);
        return new Result(mode, messages, messages / elapsed.TotalSeconds, latencies[latencies.Length / 2], latencies[(int)(latencies.Length * 0.99)]);
    }
}
