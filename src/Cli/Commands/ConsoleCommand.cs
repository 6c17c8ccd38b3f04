using System.CommandLine;
using System.Globalization;
using Attribution.Cli.Services;
using Attribution.Downstream.Web;
using Attribution.Transport;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Serilog.Extensions.Logging;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline console</c>: the downstream host on a Kafka cluster: reads the attributions topic into the source ledger
/// (published to the compacted <c>ledger</c> topic) and the SQL store, serves the web console and Arrow Flight, and
/// subscribes to contamination alerts on the alert bus. Runs until SIGINT/SIGTERM.
/// </summary>
internal static class ConsoleCommand
{
    public static Command Create()
    {
        var kafka = new Option<string?>("--kafka") { Description = "Kafka bootstrap servers (host:port,...) of the running pipeline." };
        var rabbit = new Option<string?>("--rabbitmq") { Description = "RabbitMQ host[:port] of the alert bus (the Scorer's --rabbitmq); without it the console shows no alerts." };
        var run = new Option<string?>("--run") { Description = "The training run directory (sources.json, run.json): source names and example previews." };
        var host = new Option<string>("--host") { Description = "Address to bind (default loopback; the SQL endpoint answers anyone who can reach it).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Web console port.", DefaultValueFactory = _ => 8090 };
        var flightPort = new Option<int>("--flight-port") { Description = "Arrow Flight port (gRPC, cleartext HTTP/2).", DefaultValueFactory = _ => 8091 };
        var db = new Option<string?>("--db") { Description = "DuckDB file of the SQL store (Downstream:StorePath, default runs/attributions.duckdb)." };
        var retention = new Option<string?>("--retention") { Description = "How long the SQL store keeps attributions, as d.hh:mm:ss (Downstream:Retention, default 7.00:00:00)." };
        var config = new Option<string?>("--config") { Description = "JSON configuration file (Transport, Downstream sections)." };
        var set = new Option<string[]>("--set") { Description = "Any setting as Section:Key=Value (repeatable)." };
        var command = new Command("console", "Serve the live web console, the source ledger, SQL over attributions and an Arrow Flight feed for a pipeline on Kafka.");
        foreach (var o in new Option[] { kafka, rabbit, run, host, port, flightPort, db, retention, config, set })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, token) =>
        {
            var named = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase) { ["Transport:Kafka:ClientId"] = "pipeline-console" };
            if (parse.GetValue(run) is { } r)
            {
                named["Downstream:RunDirectory"] = Path.GetFullPath(r);
            }

            if (parse.GetValue(db) is { } d)
            {
                named["Downstream:StorePath"] = Path.GetFullPath(d);
            }

            if (parse.GetValue(retention) is { } ret)
            {
                if (!TimeSpan.TryParse(ret, CultureInfo.InvariantCulture, out _))
                {
                    Console.Error.WriteLine($"error: --retention '{ret}' is not a duration like 7.00:00:00 (7 days) or 01:00:00 (1 hour).");
                    return 2;
                }

                named["Downstream:Retention"] = ret;
            }

            IConfigurationRoot configuration;
            var settings = new ServiceHostSettings
            {
                KafkaBootstrap = parse.GetValue(kafka),
                RabbitMq = parse.GetValue(rabbit),
                ConfigFile = parse.GetValue(config),
                Overrides = parse.GetValue(set) ?? [],
            };
            try
            {
                configuration = ServiceHost.BuildConfiguration(ServiceRoles.None, settings, named);
            }
            catch (ServiceConfigurationException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 2;
            }

            var serilog = CliLogging.CreateSerilog(verbose: false);
            RunningConsole console;
            try
            {
                console = await ConsoleServer.StartAsync(
                    new ConsoleSettings { Host = parse.GetValue(host)!, Port = parse.GetValue(port), FlightPort = parse.GetValue(flightPort) },
                    configuration,
                    s =>
                    {
                        s.AddEventLog(configuration);
                        s.AddAlertBus(configuration, x => x.AddConsumer<AlertFeedConsumer>());
                    },
                    logging => logging.AddProvider(new SerilogLoggerProvider(serilog, dispose: true)),
                    cancellationToken: token);
            }
            catch (Exception e) when (e is Microsoft.Extensions.Options.OptionsValidationException or IOException or InvalidDataException or FormatException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return e is IOException ? 1 : 2;
            }

            ConsoleServiceFailure? failure = null;
            await using (console)
            {
                Console.WriteLine($"console: {console.WebUrl}   Arrow Flight: {console.FlightUrl}   (Ctrl+C stops)");
                try
                {
                    // Runs until SIGINT/SIGTERM, or until a background service (feed, ledger publisher) fails.
                    failure = await console.Failed.WaitAsync(token);
                    if (failure is null)
                    {
                        await Task.Delay(Timeout.Infinite, token);
                    }
                }
                catch (OperationCanceledException)
                {
                    // SIGINT/SIGTERM: stop the host (the feed drains, the ledger publishes its last round).
                }
            }

            if (failure is not null)
            {
                Console.Error.WriteLine($"error: {failure.Describe()}");
                return 2;
            }

            return 0;
        });
        return command;
    }
}
