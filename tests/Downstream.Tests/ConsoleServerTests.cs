using System.Net;
using System.Net.Sockets;
using Attribution.Contracts;
using Attribution.Downstream.Store;
using Attribution.Downstream.Web;
using Attribution.Transport;
using Attribution.Transport.Embedded;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Attribution.Downstream.Tests;

public sealed class ConsoleServerTests
{
    [Fact]
    public async Task Console_that_cannot_bind_its_port_stops_its_feed_so_a_retry_writes_each_event_once()
    {
        var dir = Directory.CreateTempSubdirectory("console-bind-");
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var busy = ((IPEndPoint)taken.LocalEndpoint).Port;
        await using var log = new EmbeddedEventLog(new EmbeddedOptions());
        await log.CreateTopicAsync(new TopicSpec(Topics.Attributions, 2));
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Downstream:StorePath"] = Path.Combine(dir.FullName, "a.duckdb"),
        }).Build();
        void Transport(IServiceCollection s)
        {
            s.AddSingleton<IEventLog>(log);
            s.AddSingleton(log.CreateProducer());
        }

        try
        {
            await Assert.ThrowsAnyAsync<IOException>(() => ConsoleServer.StartAsync(new ConsoleSettings { Port = busy, FlightPort = 0 }, configuration, Transport));
            await using (var console = await ConsoleServer.StartAsync(new ConsoleSettings { Port = 0, FlightPort = 0 }, configuration, Transport))
            {
                var producer = console.App.Services.GetRequiredService<IEventProducer>();
                var rng = new Random(2);
                for (int i = 0; i < 20; i++)
                {
                    var e = SyntheticAttributions.Make(rng, i, "m");
                    await producer.ProduceAsync(Topics.Attributions, ArrowEvents.Message(e.QueryId, e));
                }

                var store = console.App.Services.GetRequiredService<AttributionStore>();
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (store.Rows < 20 && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(20);
                }

                await Task.Delay(300); // a second feed, if one survived, would have written by now
                Assert.Equal(20L, store.Query("SELECT count(*) FROM attributions").Rows[0][0]);
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_background_service_that_fails_is_reported_with_its_name_and_error()
    {
        // Protects the operator's view of a dying console: a ledger topic that exists but is not compacted makes the
        // ledger publisher fail after start; Failed must name the service and the topic (ConsoleCommand prints it, exit 2),
        // where the host used to end with exit code 1 and no message.
        var dir = Directory.CreateTempSubdirectory("console-fail-");
        await using var log = new EmbeddedEventLog(new EmbeddedOptions());
        await log.CreateTopicAsync(new TopicSpec(Topics.Attributions, 2));
        await log.CreateTopicAsync(new TopicSpec("ledger", 1, Compacted: false));
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Downstream:StorePath"] = Path.Combine(dir.FullName, "a.duckdb"),
        }).Build();
        try
        {
            await using var console = await ConsoleServer.StartAsync(new ConsoleSettings { Port = 0, FlightPort = 0 }, configuration, s =>
            {
                s.AddSingleton<IEventLog>(log);
                s.AddSingleton(log.CreateProducer());
            });
            var failure = await console.Failed.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.NotNull(failure);
            Assert.Equal("LedgerPublisher", failure.Service);
            Assert.IsType<TopicProvisioningException>(failure.Error);
            Assert.Contains("ledger", failure.Describe(), StringComparison.Ordinal);
            Assert.Contains("is not compacted", failure.Describe(), StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_console_that_is_stopped_reports_no_failure()
    {
        var dir = Directory.CreateTempSubdirectory("console-stop-");
        await using var log = new EmbeddedEventLog(new EmbeddedOptions());
        await log.CreateTopicAsync(new TopicSpec(Topics.Attributions, 2));
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Downstream:StorePath"] = Path.Combine(dir.FullName, "a.duckdb"),
        }).Build();
        try
        {
            var console = await ConsoleServer.StartAsync(new ConsoleSettings { Port = 0, FlightPort = 0 }, configuration, s =>
            {
                s.AddSingleton<IEventLog>(log);
                s.AddSingleton(log.CreateProducer());
            });
            await Task.Delay(300);
            Assert.False(console.Failed.IsCompleted, "nothing failed, so Failed must still be pending while the console runs");
            await console.DisposeAsync();
            Assert.Null(await console.Failed.WaitAsync(TimeSpan.FromSeconds(10)));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
