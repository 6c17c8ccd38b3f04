using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace Attribution.Cli.Services;

/// <summary>
/// GET /health on a local port: the registered health checks (event log, alert bus, each service) as JSON, status
/// 200 when healthy and 503 otherwise, for container probes and monitoring.
/// </summary>
internal sealed class HealthEndpoint : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly HealthCheckService _checks;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    private HealthEndpoint(HealthCheckService checks, int port, ILogger logger)
    {
        _checks = checks;
        _logger = logger;
        _listener.Prefixes.Add($"http://+:{port}/health/");
        _listener.Start();
        _loop = Task.Run(ServeAsync);
    }

    public static HealthEndpoint? Start(IServiceProvider services, int port, ILogger logger)
    {
        try
        {
            var endpoint = new HealthEndpoint(services.GetRequiredService<HealthCheckService>(), port, logger);
            ServiceLog.HealthListening(logger, port);
            return endpoint;
        }
        catch (HttpListenerException e)
        {
            // The services still run; the operator learns why there is no endpoint.
            ServiceLog.HealthFailed(logger, port, e.Message);
            return null;
        }
    }

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception) when (_stop.IsCancellationRequested || !_listener.IsListening)
            {
                return;
            }
            catch (HttpListenerException)
            {
                continue;
            }

            try
            {
                var report = await _checks.CheckHealthAsync(_stop.Token);
                var body = JsonSerializer.SerializeToUtf8Bytes(new
                {
                    status = report.Status.ToString(),
                    totalMs = report.TotalDuration.TotalMilliseconds,
                    checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description }),
                });
                context.Response.StatusCode = report.Status == HealthStatus.Healthy ? 200 : 503;
                context.Response.ContentType = "application/json";
                await context.Response.OutputStream.WriteAsync(body, _stop.Token);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                context.Response.StatusCode = 500;
                ServiceLog.HealthFailed(_logger, 0, e.Message);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            finally
            {
                context.Response.Close();
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
            // The loop ends with the listener; nothing to report at shutdown.
        }

        _stop.Dispose();
    }
}
