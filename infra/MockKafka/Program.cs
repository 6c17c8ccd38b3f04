using Attribution.MockKafka;
using Attribution.Transport;
using Attribution.Transport.Embedded;
using Attribution.Transport.Kafka;

// Usage:
//   MockKafka [--brokers N] [--pipeline-topics P]
//                                    start a mock cluster, print its bootstrap servers, run until stdin closes / Ctrl-C;
//                                    with --pipeline-topics, first create the pipeline's topics with P partitions each
//                                    (the mock has no controller, so clients cannot create topics themselves)
//   MockKafka bench [--messages N]   produce->consume throughput and latency: embedded log, then mock Kafka cluster
var brokers = 3;
var messages = 20_000;
var bench = false;
var pipelineTopics = 0;
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "bench")
    {
        bench = true;
    }
    else if (args[i] == "--brokers" && i + 1 < args.Length && int.TryParse(args[i + 1], out var b))
    {
        brokers = b;
        i++;
    }
    else if (args[i] == "--pipeline-topics" && i + 1 < args.Length && int.TryParse(args[i + 1], out var parts) && parts > 0)
    {
        pipelineTopics = parts;
        i++;
    }
    else if (args[i] == "--messages" && i + 1 < args.Length && int.TryParse(args[i + 1], out var m) && m > 0)
    {
        messages = m;
        i++;
    }
    else
    {
        Console.Error.WriteLine($"Unknown argument '{args[i]}'. Usage: MockKafka [--brokers N] [--pipeline-topics P] | MockKafka bench [--messages N] [--brokers N]");
        return 2;
    }
}

try
{
    if (bench)
    {
        await RunBenchAsync(brokers, messages);
        return 0;
    }

    using var cluster = new MockKafkaCluster(brokers);
    if (pipelineTopics > 0)
    {
        foreach (var topic in new[] { Attribution.Contracts.Topics.Checkpoints, Attribution.Contracts.Topics.Batches, Attribution.Contracts.Topics.Probes,
            Attribution.Contracts.Topics.Queries, Attribution.Contracts.Topics.Attributions, Attribution.Contracts.Topics.DeadLetter })
        {
            cluster.CreateTopic(topic, pipelineTopics, Math.Min(3, brokers));
        }

        // The demo's console publishes the source ledger: one partition (the mock cannot set cleanup.policy=compact).
        cluster.CreateTopic("ledger", 1, Math.Min(3, brokers));
    }

    Console.WriteLine(cluster.BootstrapServers);
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    var stdinClosed = Task.Run(() => { while (Console.ReadLine() is not null) { } });
    await Task.WhenAny(stdinClosed, Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default));
    return 0;
}
catch (Exception e) when (e is MockKafkaException or ArgumentOutOfRangeException or EventLogException or TimeoutException)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}

static async Task RunBenchAsync(int brokers, int messages)
{
    const int valueBytes = 256;
    Console.WriteLine($"| log | mode | messages | msg/s | p50 µs | p99 µs |");
    Console.WriteLine($"|---|---|---:|---:|---:|---:|");
    await using (var embedded = new EmbeddedEventLog())
    {
        await embedded.CreateTopicAsync(new TopicSpec("bench-t", 4));
        await embedded.CreateTopicAsync(new TopicSpec("bench-l", 4));
        Print("embedded", await TransportBenchmark.ThroughputAsync(embedded, "bench-t", messages, valueBytes, 1000));
        Print("embedded", await TransportBenchmark.LatencyAsync(embedded, "bench-l", Math.Min(messages, 5000), valueBytes));
    }

    KafkaLibrary.EnsureLoaded();
    using var cluster = new MockKafkaCluster(brokers);
    cluster.CreateTopic("bench-t", 4, Math.Min(3, brokers));
    cluster.CreateTopic("bench-l", 4, Math.Min(3, brokers));
    await using var kafka = new KafkaEventLog(new KafkaOptions { BootstrapServers = cluster.BootstrapServers, LingerMs = 1, FetchWaitMaxMs = 5, AutoCommitIntervalMs = 0 });
    Print($"mock kafka ({brokers} brokers)", await TransportBenchmark.ThroughputAsync(kafka, "bench-t", messages, valueBytes, 1000));
    Print($"mock kafka ({brokers} brokers)", await TransportBenchmark.LatencyAsync(kafka, "bench-l", Math.Min(messages, 2000), valueBytes));
}

static void Print(string log, TransportBenchmark.Result r) =>
    Console.WriteLine($"| {log} | {r.Mode} | {r.Messages} | {r.PerSecond:N0} | {r.P50Us:N1} | {r.P99Us:N1} |");
