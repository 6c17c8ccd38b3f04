using System.Text.Json;
using Attribution.Contracts;
using Attribution.Downstream.Web;
using Attribution.Transport;
using Attribution.Transport.Embedded;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Attribution.Downstream.Tests;

/// <summary>
/// A running console over an embedded log, with a run directory like the demo's: five sources (the last one flagged),
/// FashionMNIST previews, and a shared alert feed the test publishes into.
/// </summary>
internal sealed class ConsoleFixture : IAsyncDisposable
{
    public const long FlaggedSource = 4;

    private ConsoleFixture(RunningConsole console, EmbeddedEventLog log, AlertFeed alerts, DirectoryInfo runDir)
    {
        Console = console;
        Log = log;
        Alerts = alerts;
        RunDirectory = runDir;
    }

    public RunningConsole Console { get; }

    public EmbeddedEventLog Log { get; }

    public AlertFeed Alerts { get; }

    public DirectoryInfo RunDirectory { get; }

    public IEventProducer Producer => Console.App.Services.GetRequiredService<IEventProducer>();

    public T Get<T>() where T : notnull => Console.App.Services.GetRequiredService<T>();

    public static async Task<ConsoleFixture> StartAsync(int partitions = 4)
    {
        var runDir = Directory.CreateTempSubdirectory("console-run-");
        var sources = new
        {
            sources = Enumerable.Range(0, 5).Select(i => new { id = i, name = i == FlaggedSource ? "eval-suite-v2 (leaked benchmark)" : $"publisher-{(char)('A' + i)}", flagged = i == FlaggedSource }),
            exampleSources = Enumerable.Range(0, 1000).ToDictionary(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture), i => (long)(i % 5)),
        };
        await File.WriteAllTextAsync(Path.Combine(runDir.FullName, "sources.json"), JsonSerializer.Serialize(sources));
        await File.WriteAllTextAsync(Path.Combine(runDir.FullName, "run.json"), """{"recipe": {"data": {"name": "fashion-mnist"}}}""");
        var log = new EmbeddedEventLog(new EmbeddedOptions());
        await log.CreateTopicAsync(new TopicSpec(Topics.Attributions, partitions));
        var alerts = new AlertFeed();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Downstream:StorePath"] = ":memory:",
            ["Downstream:RunDirectory"] = runDir.FullName,
            ["Downstream:LedgerPublishInterval"] = "00:00:00.200",
        }).Build();
        var console = await ConsoleServer.StartAsync(new ConsoleSettings { Port = 0, FlightPort = 0 }, configuration, s =>
        {
            s.AddSingleton<IEventLog>(log);
            s.AddSingleton(log.CreateProducer());
            s.AddSingleton(alerts);
        });
        return new ConsoleFixture(console, log, alerts, runDir);
    }

    public async Task PublishAsync(IEnumerable<AttributionResult> events)
    {
        foreach (var e in events)
        {
            await Producer.ProduceAsync(Topics.Attributions, ArrowEvents.Message(e.QueryId, e));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Console.DisposeAsync();
        await Log.DisposeAsync();
        RunDirectory.Delete(recursive: true);
    }
}
