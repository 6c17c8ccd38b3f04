using System.Threading.Channels;
using Attribution.Transport.Alerts;
using Attribution.Transport.Messages;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Attribution.Transport.Tests;

/// <summary>What the monitor consumer received.</summary>
public sealed class AlertInbox
{
    public Channel<ContaminationAlertMessage> Alerts { get; } = Channel.CreateUnbounded<ContaminationAlertMessage>();

    public Channel<ProbeSetCompleteMessage> ProbeSets { get; } = Channel.CreateUnbounded<ProbeSetCompleteMessage>();
}

public sealed class AlertMonitor(AlertInbox inbox) : IConsumer<ContaminationAlertMessage>, IConsumer<ProbeSetCompleteMessage>
{
    public async Task Consume(ConsumeContext<ContaminationAlertMessage> context) => await inbox.Alerts.Writer.WriteAsync(context.Message, context.CancellationToken);

    public async Task Consume(ConsumeContext<ProbeSetCompleteMessage> context) => await inbox.ProbeSets.Writer.WriteAsync(context.Message, context.CancellationToken);
}

internal static class AlertBusScenario
{
    public static async Task PublishesAndMonitorReceivesAsync(AlertBusOptions options)
    {
        var services = new ServiceCollection().AddLogging().AddSingleton<AlertInbox>();
        services.AddAlertBus(options, x => x.AddConsumer<AlertMonitor>());
        await using var sp = services.BuildServiceProvider();
        var bus = sp.GetRequiredService<IBusControl>();
        using var started = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await bus.StartAsync(started.Token);
        try
        {
            // Unique ids: a shared broker may still hold other runs' messages for the same consumer's queue.
            var run = Guid.NewGuid().ToString("N");
            var alert = new ContaminationAlertMessage
            {
                QueryId = $"q-17-{run}",
                ModelVersion = "step-400",
                Rule = AlertRule.SourceShare,
                FlaggedSourceIds = [3, 9],
                Score = 0.42,
                Threshold = 0.25,
                Timestamp = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero),
            };
            await bus.Publish(alert, started.Token);
            await bus.Publish(new ProbeSetCompleteMessage { RunId = $"run-{run}", ProbeCount = 60_000, Step = 400 }, started.Token);

            var inbox = sp.GetRequiredService<AlertInbox>();
            ContaminationAlertMessage received;
            do
            {
                received = await inbox.Alerts.Reader.ReadAsync(started.Token);
            }
            while (received.QueryId != alert.QueryId);

            Assert.Equal(alert.QueryId, received.QueryId);
            Assert.Equal(alert.ModelVersion, received.ModelVersion);
            Assert.Equal(alert.Rule, received.Rule);
            Assert.Equal(alert.FlaggedSourceIds, received.FlaggedSourceIds);
            Assert.Empty(received.FlaggedExampleIds);
            Assert.Equal(alert.Score, received.Score);
            Assert.Equal(alert.Threshold, received.Threshold);
            Assert.Equal(alert.Timestamp, received.Timestamp);
            ProbeSetCompleteMessage probeSet;
            do
            {
                probeSet = await inbox.ProbeSets.Reader.ReadAsync(started.Token);
            }
            while (probeSet.RunId != $"run-{run}");

            Assert.Equal((60_000L, 400L), (probeSet.ProbeCount, probeSet.Step));
        }
        finally
        {
            await bus.StopAsync(CancellationToken.None);
        }
    }
}

public sealed class InMemoryAlertBusTests
{
    [Fact]
    public Task In_memory_bus_delivers_alerts_and_control_events_to_the_monitor() =>
        AlertBusScenario.PublishesAndMonitorReceivesAsync(new AlertBusOptions());

    [Fact]
    public void Unknown_bus_kind_is_rejected_at_registration_with_the_setting_name()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Transport:AlertBus:Kind"] = "kafka" }).Build();
        var e = Assert.Throws<ArgumentException>(() => new ServiceCollection().AddAlertBus(configuration));
        Assert.Contains("Transport:AlertBus:Kind", e.Message, StringComparison.Ordinal);
    }
}

[Collection(RabbitMqCollection.Name)]
public sealed class RabbitMqAlertBusTests
{
    [Fact]
    public Task RabbitMq_bus_delivers_alerts_and_control_events_to_the_monitor() =>
        AlertBusScenario.PublishesAndMonitorReceivesAsync(new AlertBusOptions
        {
            Kind = "rabbitmq",
            RabbitMq = new RabbitMqOptions { Host = "127.0.0.1", Port = RabbitMqFixture.Port },
        });
}
