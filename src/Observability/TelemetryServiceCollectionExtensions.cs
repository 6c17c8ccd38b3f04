using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Attribution.Observability;

/// <summary>Registers OpenTelemetry for the pipeline's services.</summary>
public static class TelemetryServiceCollectionExtensions
{
    /// <summary>
    /// Metrics from every <c>Attribution.*</c> meter and traces from <see cref="PipelineTelemetry.Source"/> (always sampled,
    /// so the <c>traceparent</c> headers carry real span ids), exported as <paramref name="configuration"/>'s
    /// <c>Telemetry</c> section says (<see cref="TraceExportOptions"/>: off by default, console or OTLP).
    /// <paramref name="prometheusPort"/> serves the Prometheus text format at <c>http://+:PORT/metrics</c> from a standalone
    /// listener (beside the services' <c>/health</c> on the same port); <paramref name="aspNetCore"/> instead registers the
    /// exporter for <c>MapPrometheusScrapingEndpoint</c> in a web host.
    /// </summary>
    /// <exception cref="ArgumentException">The <c>Telemetry</c> section has a value that cannot be honoured.</exception>
    public static IServiceCollection AddPipelineTelemetry(this IServiceCollection services, int? prometheusPort = null, bool aspNetCore = false, IConfiguration? configuration = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var traces = TraceExportOptions.From(configuration);
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
            .WithTracing(t =>
            {
                t.AddSource(PipelineTelemetry.SourceName).SetSampler(new AlwaysOnSampler());
                switch (traces.Exporter)
                {
                    case TraceExporter.Console:
                        t.AddConsoleExporter();
                        break;
                    case TraceExporter.Otlp:
                        t.AddOtlpExporter(o =>
                        {
                            o.Endpoint = traces.OtlpEndpoint;
                            o.Protocol = traces.OtlpHttp ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                        });
                        break;
                }
            });
        return services;
    }
}
