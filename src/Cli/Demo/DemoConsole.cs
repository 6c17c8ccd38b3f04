using Attribution.Downstream.Web;
using Attribution.Transport;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace Attribution.Cli.Demo;

/// <summary>
/// The web console beside the demo: a second (web) host over the demo's own event log, producer and alert feed, with the
/// demo services' health. Its SQL store starts empty each run (the embedded log's offsets start again at 0).
/// </summary>
internal static class DemoConsole
{
    public static async Task<RunningConsole> StartAsync(DemoSettings settings, IHost demo, string runDirectory, string outDir, CancellationToken cancellationToken)
    {
        var store = Path.Combine(outDir, "attributions.duckdb");
        File.Delete(store);
        File.Delete(store + ".wal");
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Downstream:StorePath"] = store,
            ["Downstream:RunDirectory"] = runDirectory,
        }).Build();
        var health = demo.Services.GetRequiredService<HealthCheckService>();
        void Transport(IServiceCollection s)
        {
            s.AddSingleton(demo.Services.GetRequiredService<IEventLog>());
            s.AddSingleton(demo.Services.GetRequiredService<IEventProducer>());
            s.AddSingleton(demo.Services.GetRequiredService<AlertFeed>());
        }

        try
        {
            return await ConsoleServer.StartAsync(new ConsoleSettings { Port = settings.ConsolePort, FlightPort = settings.ConsolePort == 0 ? 0 : settings.ConsolePort + 1 },
                configuration, Transport, health: t => health.CheckHealthAsync(t), cancellationToken: cancellationToken);
        }
        catch (IOException) when (settings.ConsolePort != 0)
        {
            // The port is taken (another console?): any free ports will do for a demo.
            return await ConsoleServer.StartAsync(new ConsoleSettings { Port = 0, FlightPort = 0 }, configuration, Transport,
                health: t => health.CheckHealthAsync(t), cancellationToken: cancellationToken);
        }
    }
}
