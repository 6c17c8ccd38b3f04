using System.Diagnostics;
using Attribution.Transport;

namespace Attribution.Observability;

/// <summary>
/// The pipeline's telemetry names: the activity source of traces (<see cref="TraceContext.Source"/>, in Transport so
/// every producer can use it), and the prefix of the meter names each service's instruments use
/// (System.Diagnostics.Metrics; exported by OpenTelemetry, see <c>AddPipelineTelemetry</c>).
/// </summary>
public static class PipelineTelemetry
{
    /// <summary>Name of the pipeline's activity source.</summary>
    public const string SourceName = TraceContext.SourceName;

    /// <summary>Meter names every service uses start with this.</summary>
    public const string MeterPrefix = "Attribution.";

    /// <summary>The activity source of query, attribution and alert spans.</summary>
    public static ActivitySource Source => TraceContext.Source;
}
