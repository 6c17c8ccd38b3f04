using Attribution.MockKafka;

// Starts a librdkafka mock cluster, prints its bootstrap servers on stdout, and runs until stdin closes or Ctrl-C.
var brokers = 3;
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--brokers" && i + 1 < args.Length && int.TryParse(args[i + 1], out var n))
    {
        brokers = n;
        i++;
    }
    else
    {
        Console.Error.WriteLine($"Unknown argument '{args[i]}'. Usage: MockKafka [--brokers N]   (N = 1..16, default 3)");
        return 2;
    }
}

try
{
    using var cluster = new MockKafkaCluster(brokers);
    Console.WriteLine(cluster.BootstrapServers);
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
    var stdinClosed = Task.Run(() => { while (Console.ReadLine() is not null) { } });
    await Task.WhenAny(stdinClosed, Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default));
    return 0;
}
catch (Exception e) when (e is MockKafkaException or ArgumentOutOfRangeException)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}
