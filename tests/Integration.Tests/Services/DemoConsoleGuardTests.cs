using Attribution.Cli.Demo;
using Attribution.Contracts;
using Attribution.Downstream.Web;
using Attribution.Transport;
using Attribution.Transport.Embedded;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Attribution.Integration.Tests.Services;

/// <summary>
/// <c>./pipeline demo</c> with its web console (issue 14 leftover): a console background service that fails ends the demo
/// with exit code 2 and one <c>error:</c> line naming the service and the fix, instead of the demo carrying on (or
/// hanging with --stay) beside a dead console.
/// </summary>
public sealed class DemoConsoleGuardTests
{
    [Fact]
    public async Task A_console_service_failure_cancels_the_demo_and_exits_2_with_the_reason()
    {
        // The ledger topic exists but is not compacted: the console's ledger publisher fails after start.
        var dir = Directory.CreateTempSubdirectory("demo-guard-");
        await using var log = new EmbeddedEventLog(new EmbeddedOptions());
        await log.CreateTopicAsync(new TopicSpec(Topics.Attributions, 2));
        await log.CreateTopicAsync(new TopicSpec("ledger", 1, Compacted: false));
        try
        {
            await using var console = await StartConsoleAsync(log, dir.FullName);
            var error = new StringWriter();
            bool cancelled = false;
            var code = await DemoConsole.GuardAsync(console.Failed, async token =>
            {
                // The demo's replay: runs until cancelled (like --stay).
                try
                {
                    await Task.Delay(TimeSpan.FromMinutes(2), token);
                }
                catch (OperationCanceledException)
                {
                    cancelled = true;
                    throw;
                }

                return 0;
            }, error, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

            Assert.Equal(2, code);
            Assert.True(cancelled, "the demo's work must be cancelled when the console fails");
            var line = Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("error: the console's LedgerPublisher stopped", line, StringComparison.Ordinal);
            Assert.Contains("is not compacted", line, StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task With_a_healthy_console_the_demo_s_own_exit_code_stands()
    {
        var dir = Directory.CreateTempSubdirectory("demo-guard-ok-");
        await using var log = new EmbeddedEventLog(new EmbeddedOptions());
        await log.CreateTopicAsync(new TopicSpec(Topics.Attributions, 2));
        try
        {
            await using var console = await StartConsoleAsync(log, dir.FullName);
            var error = new StringWriter();
            Assert.Equal(1, await DemoConsole.GuardAsync(console.Failed, async token => { await Task.Delay(200, token); return 1; }, error, CancellationToken.None));
            Assert.Equal(0, await DemoConsole.GuardAsync(null, _ => Task.FromResult(0), error, CancellationToken.None));
            Assert.Equal("", error.ToString());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static Task<RunningConsole> StartConsoleAsync(EmbeddedEventLog log, string dir)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Downstream:StorePath"] = Path.Combine(dir, "a.duckdb"),
        }).Build();
        return ConsoleServer.StartAsync(new ConsoleSettings { Port = 0, FlightPort = 0 }, configuration, s =>
        {
            s.AddSingleton<IEventLog>(log);
            s.AddSingleton(log.CreateProducer());
        });
    }
}
