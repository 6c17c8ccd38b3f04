using Attribution.Contracts;
using Attribution.Downstream.Feed;
using Attribution.Transport;
using Attribution.Transport.Embedded;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Attribution.Downstream.Tests;

/// <summary>A clock the test moves by hand (the embedded log stamps records with it).</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private long _ticks = start.UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}

/// <summary>Seeded synthetic attribution events, as a Scorer would publish them.</summary>
internal static class SyntheticAttributions
{
    public static AttributionResult Make(Random rng, int i, string model, int sources = 5, int topK = 4) => new(
        $"q-{i:D5}", model, "forward-only",
        Enumerable.Range(0, topK).Select(_ => (long)rng.Next(0, 1000)).ToArray(),
        Enumerable.Range(0, topK).Select(_ => (float)(rng.NextDouble() * 2 - 0.5)).ToArray(),
        Enumerable.Range(0, sources).Select(s => (long)s).ToArray(),
        Enumerable.Range(0, sources).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(),
        rng.Next(100, 5000));
}

/// <summary>The downstream host over an embedded log, as `./pipeline console` runs it (in-memory store, fast ledger rounds).</summary>
internal sealed class DownstreamHarness : IAsyncDisposable
{
    private DownstreamHarness(IHost host, EmbeddedEventLog log)
    {
        Host = host;
        Log = log;
    }

    public IHost Host { get; }

    public EmbeddedEventLog Log { get; }

    public IEventProducer Producer => Host.Services.GetRequiredService<IEventProducer>();

    public AttributionFeed Feed => Host.Services.GetRequiredService<AttributionFeed>();

    public T Get<T>() where T : notnull => Host.Services.GetRequiredService<T>();

    public static async Task<DownstreamHarness> StartAsync(TimeProvider clock, int partitions = 4, IDictionary<string, string?>? settings = null)
    {
        var log = new EmbeddedEventLog(new EmbeddedOptions(), clock);
        await log.CreateTopicAsync(new TopicSpec(Topics.Attributions, partitions));
        await log.CreateTopicAsync(new TopicSpec(Topics.DeadLetter, 1));
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Downstream:StorePath"] = ":memory:",
            ["Downstream:LedgerPublishInterval"] = "00:00:00.100",
        });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        builder.Services.AddSingleton<IEventLog>(log);
        builder.Services.AddSingleton(log.CreateProducer());
        builder.Services.AddSingleton(clock);
        builder.Services.AddDownstream(builder.Configuration);
        var host = builder.Build();
        await host.StartAsync();
        return new DownstreamHarness(host, log);
    }

    /// <summary>Publishes events the way the Scorer does (key = query id, Arrow value, standard headers).</summary>
    public async Task PublishAsync(IEnumerable<AttributionResult> events, ManualClock? clock = null, TimeSpan? step = null)
    {
        foreach (var e in events)
        {
            await Producer.ProduceAsync(Topics.Attributions, ArrowEvents.Message(e.QueryId, e));
            if (clock is not null && step is { } s)
            {
                clock.Advance(s);
            }
        }
    }

    public async Task WaitForAsync(Func<bool> condition, string what, double seconds = 20)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {seconds} s waiting for {what}");
            }

            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Host.StopAsync();
        Host.Dispose();
        await Log.DisposeAsync();
    }
}
