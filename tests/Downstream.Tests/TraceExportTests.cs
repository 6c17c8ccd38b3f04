using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Attribution.Observability;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace Attribution.Downstream.Tests;

/// <summary>Trace export (issue 14): off by default, OTLP or console when configured, a clear error otherwise.</summary>
public sealed class TraceExportTests
{
    [Fact]
    public async Task Otlp_export_sends_the_pipelines_spans_to_the_configured_collector()
    {
        // A stand-in collector: an HTTP listener that keeps what is POSTed to /v1/traces (OTLP over HTTP/protobuf).
        var port = FreePort();
        using var collector = new HttpListener();
        collector.Prefixes.Add($"http://127.0.0.1:{port}/");
        collector.Start();
        var received = ReceiveOneAsync(collector);

        var services = new ServiceCollection();
        services.AddPipelineTelemetry(configuration: Configuration(new()
        {
            ["Telemetry:Traces"] = "otlp",
            ["Telemetry:OtlpProtocol"] = "http",
            ["Telemetry:OtlpEndpoint"] = $"http://127.0.0.1:{port}/v1/traces",
        }));
        await using var provider = services.BuildServiceProvider();
        var tracer = provider.GetRequiredService<TracerProvider>();
        ActivityTraceId traceId;
        using (var span = PipelineTelemetry.Source.StartActivity("attribute", ActivityKind.Consumer))
        {
            Assert.NotNull(span);
            span.SetTag("attribution.query_id", "q-otlp-1");
            traceId = span.TraceId;
        }

        Assert.True(tracer.ForceFlush(10_000), "the OTLP exporter did not flush within 10 s");
        var (path, body) = await received.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("/v1/traces", path);
        var id = new byte[16];
        traceId.CopyTo(id);
        Assert.True(body.AsSpan().IndexOf(id) >= 0, "the exported request does not carry the span's trace id");
        Assert.True(body.AsSpan().IndexOf("q-otlp-1"u8) >= 0, "the exported request does not carry the span's query id tag");
    }

    [Fact]
    public void Export_is_off_unless_configured_and_a_wrong_value_says_what_to_use()
    {
        Assert.Equal(TraceExporter.None, TraceExportOptions.From(null).Exporter);
        Assert.Equal(TraceExporter.None, TraceExportOptions.From(Configuration(new())).Exporter);
        var console = TraceExportOptions.From(Configuration(new() { ["Telemetry:Traces"] = "Console" }));
        Assert.Equal(TraceExporter.Console, console.Exporter);
        var grpc = TraceExportOptions.From(Configuration(new() { ["Telemetry:Traces"] = "otlp" }));
        Assert.Equal((TraceExporter.Otlp, "http://localhost:4317/", false), (grpc.Exporter, grpc.OtlpEndpoint.ToString(), grpc.OtlpHttp));

        var bad = Assert.Throws<ArgumentException>(() => TraceExportOptions.From(Configuration(new() { ["Telemetry:Traces"] = "jaeger" })));
        Assert.Contains("Telemetry:Traces 'jaeger'", bad.Message, StringComparison.Ordinal);
        Assert.Contains("none (default), console or otlp", bad.Message, StringComparison.Ordinal);
        var badUrl = Assert.Throws<ArgumentException>(() => new ServiceCollection().AddPipelineTelemetry(configuration:
            Configuration(new() { ["Telemetry:Traces"] = "otlp", ["Telemetry:OtlpEndpoint"] = "collector:4317" })));
        Assert.Contains("Telemetry:OtlpEndpoint 'collector:4317'", badUrl.Message, StringComparison.Ordinal);
    }

    private static IConfiguration Configuration(Dictionary<string, string?> values) => new ConfigurationBuilder().AddInMemoryCollection(values).Build();

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static async Task<(string Path, byte[] Body)> ReceiveOneAsync(HttpListener listener)
    {
        var context = await listener.GetContextAsync();
        using var body = new MemoryStream();
        await context.Request.InputStream.CopyToAsync(body);
        context.Response.StatusCode = 200;
        context.Response.Close();
        return (context.Request.Url!.AbsolutePath, body.ToArray());
    }
}
