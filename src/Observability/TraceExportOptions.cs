using Microsoft.Extensions.Configuration;

namespace Attribution.Observability;

/// <summary>Where the pipeline's spans go (section <c>Telemetry</c>; off by default).</summary>
public enum TraceExporter
{
    /// <summary>Spans are recorded (so <c>traceparent</c> headers carry real span ids) but not exported.</summary>
    None,

    /// <summary>Each finished span is written to standard output (OpenTelemetry.Exporter.Console).</summary>
    Console,

    /// <summary>Spans are sent to an OpenTelemetry collector over OTLP (OpenTelemetry.Exporter.OpenTelemetryProtocol).</summary>
    Otlp,
}

/// <summary>
/// Trace export settings, from configuration section <c>Telemetry</c>: <c>Traces</c> = none | console | otlp (default
/// none), <c>OtlpEndpoint</c> (default <c>http://localhost:4317</c> for grpc, <c>http://localhost:4318/v1/traces</c> for
/// http), <c>OtlpProtocol</c> = grpc | http (default grpc). For example <c>--set Telemetry:Traces=otlp</c> or the
/// environment variable <c>Telemetry__Traces=console</c>.
/// </summary>
/// <param name="Exporter">The exporter.</param>
/// <param name="OtlpEndpoint">The collector's address (OTLP only).</param>
/// <param name="OtlpHttp">OTLP over HTTP/protobuf instead of gRPC.</param>
public sealed record TraceExportOptions(TraceExporter Exporter, Uri OtlpEndpoint, bool OtlpHttp)
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Telemetry";

    /// <summary>No export (the default).</summary>
    public static TraceExportOptions Off { get; } = new(TraceExporter.None, new Uri("http://localhost:4317"), false);

    /// <summary>Reads the settings; a value that cannot be honoured throws <see cref="ArgumentException"/> saying which and why.</summary>
    public static TraceExportOptions From(IConfiguration? configuration)
    {
        var section = configuration?.GetSection(Section);
        var traces = section?["Traces"];
        var exporter = string.IsNullOrWhiteSpace(traces) ? TraceExporter.None : traces.Trim().ToLowerInvariant() switch
        {
            "none" or "off" => TraceExporter.None,
            "console" => TraceExporter.Console,
            "otlp" => TraceExporter.Otlp,
            _ => throw new ArgumentException($"{Section}:Traces '{traces}' is not an exporter: use none (default), console or otlp."),
        };
        var protocol = section?["OtlpProtocol"];
        var http = string.IsNullOrWhiteSpace(protocol) ? false : protocol.Trim().ToLowerInvariant() switch
        {
            "grpc" => false,
            "http" or "http/protobuf" => true,
            _ => throw new ArgumentException($"{Section}:OtlpProtocol '{protocol}' is not supported: use grpc (default) or http."),
        };
        var endpoint = section?["OtlpEndpoint"];
        Uri uri;
        if (string.IsNullOrWhiteSpace(endpoint))
        {
            uri = new Uri(http ? "http://localhost:4318/v1/traces" : "http://localhost:4317");
        }
        else if (!Uri.TryCreate(endpoint.Trim(), UriKind.Absolute, out uri!) || uri.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"{Section}:OtlpEndpoint '{endpoint}' is not an http(s) URL (for example http://collector:4317).");
        }

        return new TraceExportOptions(exporter, uri, http);
    }
}
