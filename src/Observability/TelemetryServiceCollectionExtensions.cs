using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Attribution.Observability;

/// <summary>Registers OpenTelemetry for the pipeline's services.</summary>
public static class TelemetryServiceCollectionExtensions
{
    /// <summary>
    /// Metrics from every <c>Attribution.*</c> meter and traces from <see cref="PipelineTelemetry.Source"/> (always sampled,
    /// so the <c>traceparent</c> headers carry real span ids; export them by adding an exporter to the tracer provider).
    /// <paramref name="prometheusPort"/> serves the Prometheus text format at <c>http://+:PORT/metrics</c> from a standalone
    /// listener (beside the services' <c>/health</c> on the same port); <paramref name="aspNetCore"/> instead registers the
    /// exporter for <c>MapPrometheusScrapingEndpoint</c> in a web host.
    /// </summary>
    public static IServiceCollection AddPipelineTelemetry(this IServiceCollection services, int? prometheusPort = null, bool aspNetCore = false)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOpenTelemetry()
            .WithMetrics(m =>
            {
                m.AddMeter(PipelineTelemetry.MeterPrefix + "*");
                if (aspNetCore)
                {
                    m.AddPrometheusExporter();
                }
                else if (prometheusPort is { } port)
                {
                    m.AddPrometheusHttpListener(o => o.ConfigureHttpListener = (_, listener) =>
                    {
                        listener.Prefixes.Clear();
                        listener.Prefixes.Add($"http://+:{port}/metrics/");
                    });
                }
            })
            .WithTracing(t => t.AddSource(PipelineTelemetry.SourceName).SetSampler(new AlwaysOnSampler()));
        return services;
    }
}
