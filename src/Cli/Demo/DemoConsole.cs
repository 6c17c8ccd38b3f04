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
    /// <summary>
    /// Runs the demo's <paramref name="body"/> while watching <paramref name="consoleFailed"/> (<see cref="RunningConsole.Failed"/>;
    /// null without a console): when one of the console's background services fails, during the run or before its end,
    /// the body is cancelled, one <c>error:</c> line naming the service and the fix goes to <paramref name="error"/>, and
    /// the exit code is 2 (the demo cannot show what the console was to serve). Otherwise the body's exit code.
    /// </summary>
    public static async Task<int> GuardAsync(Task<ConsoleServiceFailure?>? consoleFailed, Func<CancellationToken, Task<int>> body, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(error);
        if (consoleFailed is null)
        {
            return await body(cancellationToken);
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var work = body(stop.Token);
        int code = 0;
        if (await Task.WhenAny(work, consoleFailed) == work || consoleFailed.Result is null)
        {
            code = await work;
        }
        else
        {
            await stop.CancelAsync();
            try
            {
                await work;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // The body stopped because the console failed: the failure is the outcome.
            }
        }

        if (consoleFailed is { IsCompletedSuccessfully: true, Result: { } failure })
        {
            error.WriteLine($"error: {failure.Describe()}");
            return 2;
        }

        return code;
    }

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
