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

/// <summary>A started console: its URLs and the app to stop.</summary>
public sealed class RunningConsole(WebApplication app, Uri web, Uri flight) : IAsyncDisposable
{
    /// <summary>The web application (its services: feed, ledger, store).</summary>
    public WebApplication App { get; } = app;

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
        builder.Services.AddPipelineTelemetry(aspNetCore: true);
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
        return new RunningConsole(app, addresses[0], addresses[1]);
    }
}

/// <summary>How the console learns the services' health.</summary>
public sealed record ConsoleHealth(Func<CancellationToken, Task<HealthReport>> Check);
