using System.Net;
using Attribution.Downstream.Feed;
using Attribution.Downstream.Flight;
using Attribution.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Attribution.Downstream.Web;

/// <summary>Where the console listens.</summary>
public sealed record ConsoleSettings
{
    /// <summary>Address to bind (loopback by default: the SQL endpoint answers anyone who can reach it).</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>HTTP/1.1 port of the web console and its JSON API (0 picks a free one).</summary>
    public int Port { get; init; } = 8090;

    /// <summary>HTTP/2 (cleartext gRPC) port of the Arrow Flight endpoint (0 picks a free one).</summary>
    public int FlightPort { get; init; } = 8091;
}

/// <summary>A background service of the console that ended with an error.</summary>
/// <param name="Service">The service's type name (e.g. <c>LedgerPublisher</c>).</param>
/// <param name="Error">What it threw.</param>
public sealed record ConsoleServiceFailure(string Service, Exception Error)
{
    /// <summary>What failed, why, and what to do, for the operator.</summary>
    public string Describe() =>
        $"the console's {Service} stopped: {Error.Message} (the console cannot serve without it; fix the cause and start it again)";
}

/// <summary>A started console: its URLs and the app to stop.</summary>
public sealed class RunningConsole(WebApplication app, Uri web, Uri flight, Task<ConsoleServiceFailure?> failed) : IAsyncDisposable
{
    /// <summary>The web application (its services: feed, ledger, store).</summary>
    public WebApplication App { get; } = app;

    /// <summary>
    /// Completes when one of the console's background services (the feed, the ledger publisher) ends with an error,
    /// with that service and error (the host then stops: a console without its feed would serve a stale page); with
    /// null when they all ended normally (shutdown). Hosts wait on it beside their stop signal and report it.
    /// </summary>
    public Task<ConsoleServiceFailure?> Failed { get; } = failed;

    /// <summary>The console's URL.</summary>
    public Uri WebUrl { get; } = web;

    /// <summary>The Flight endpoint's URL (gRPC over cleartext HTTP/2).</summary>
    public Uri FlightUrl { get; } = flight;

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await App.StopAsync(stop.Token).ConfigureAwait(false);
        await App.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>
/// The downstream host as one ASP.NET Core application: the attribution feed and its sinks (<c>AddDownstream</c>), the web
/// console and its JSON API on one port, Arrow Flight on another (gRPC needs HTTP/2, which cleartext Kestrel serves only on
/// an HTTP/2-only endpoint).
/// </summary>
public static class ConsoleServer
{
    /// <summary>
    /// Builds and starts the console. <paramref name="addTransport"/> registers <c>IEventLog</c> and <c>IEventProducer</c>
    /// (and, to see alerts, an alert bus with <see cref="AlertFeedConsumer"/>, or a shared <see cref="AlertFeed"/>);
    /// <paramref name="health"/> reports the services' health (default: this host's health checks).
    /// </summary>
    public static async Task<RunningConsole> StartAsync(ConsoleSettings settings, IConfiguration configuration, Action<IServiceCollection> addTransport,
        Action<ILoggingBuilder>? logging = null, Func<CancellationToken, Task<HealthReport>>? health = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(addTransport);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(ConsoleServer).Assembly.GetName().Name });
        // A failing background service is reported and stops the host through RunningConsole.Failed (WatchAsync), not by
        // the host itself: stopping inside StartAsync cancels Kestrel's bind and the cause is lost ("A task was canceled").
        builder.Services.Configure<HostOptions>(o => o.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.Ignore);
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.ClearProviders();
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging?.Invoke(builder.Logging);
        var address = IPAddress.Parse(settings.Host);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, settings.Port, l => l.Protocols = HttpProtocols.Http1);
            k.Listen(address, settings.FlightPort, l => l.Protocols = HttpProtocols.Http2);
        });
        addTransport(builder.Services);
        builder.Services.AddDownstream(builder.Configuration);
        builder.Services.AddSingleton<FlightSubscriptions>();
        builder.Services.AddPipelineTelemetry(aspNetCore: true, configuration: builder.Configuration);
        builder.Services.AddGrpc().AddFlightServer<AttributionFlightServer>();
        if (health is not null)
        {
            builder.Services.AddSingleton(new ConsoleHealth(health));
        }
        else
        {
            builder.Services.AddSingleton(sp => new ConsoleHealth(sp.GetRequiredService<HealthCheckService>().CheckHealthAsync));
        }

        var app = builder.Build();
        app.MapFlightEndpoint();
        app.MapPrometheusScrapingEndpoint("/metrics");
        _ = app.Services.GetRequiredService<DownstreamInstruments>();
        ConsoleApi.Map(app);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Hosted services (the feed writing the store) may have started before Kestrel failed to bind: stop them,
            // or a retry on other ports would run a second feed into the same store.
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await app.StopAsync(stop.Token).ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a)).ToList();
        // Kestrel lists the endpoints in the order they were configured: the console first, Flight second.
        return new RunningConsole(app, addresses[0], addresses[1], WatchAsync(app));
    }

    /// <summary>
    /// The first background service to fault (logged, and the host is stopped), or null once all ended without error.
    /// </summary>
    private static async Task<ConsoleServiceFailure?> WatchAsync(WebApplication app)
    {
        var failure = await FirstFailureAsync(app.Services.GetServices<IHostedService>().OfType<BackgroundService>()).ConfigureAwait(false);
        if (failure is not null)
        {
            DownstreamLog.ConsoleServiceFailed(app.Logger, failure.Describe(), failure.Error);
            app.Lifetime.StopApplication();
        }

        return failure;
    }

    private static async Task<ConsoleServiceFailure?> FirstFailureAsync(IEnumerable<BackgroundService> services)
    {
        var running = services.Where(s => s.ExecuteTask is not null).ToDictionary(s => s.ExecuteTask!, s => s.GetType().Name);
        while (running.Count > 0)
        {
            var done = await Task.WhenAny(running.Keys).ConfigureAwait(false);
            if (done.IsFaulted)
            {
                return new ConsoleServiceFailure(running[done], done.Exception!.InnerExceptions.Count == 1 ? done.Exception.InnerException! : done.Exception);
            }

            running.Remove(done);
        }

        return null;
    }
}

/// <summary>How the console learns the services' health.</summary>
public sealed record ConsoleHealth(Func<CancellationToken, Task<HealthReport>> Check);
