using System.Collections.Concurrent;
using Attribution.Transport.Messages;
using MassTransit;

namespace Attribution.Cli.Demo;

/// <summary>Collects the contamination alerts that reach the alert bus, as a monitoring subscriber would.</summary>
internal sealed class DemoAlertSink
{
    public ConcurrentQueue<ContaminationAlertMessage> Alerts { get; } = new();
}

/// <summary>A MassTransit consumer of contamination alerts: the demo's stand-in for a monitoring system.</summary>
internal sealed class DemoAlertMonitor(DemoAlertSink sink) : IConsumer<ContaminationAlertMessage>
{
    public Task Consume(ConsumeContext<ContaminationAlertMessage> context)
    {
        sink.Alerts.Enqueue(context.Message);
        return Task.CompletedTask;
    }
}
