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
}
