using Attribution.Transport.Embedded;
using Attribution.Transport.Kafka;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Attribution.Transport.Tests;

public sealed class OptionsTests
{
    private static ServiceProvider Build(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return new ServiceCollection().AddLogging().AddEventLog(configuration).BuildServiceProvider();
    }

    [Fact]
    public async Task Default_configuration_selects_the_embedded_log_and_reports_healthy()
    {
        await using var sp = Build([]);
        var log = sp.GetRequiredService<IEventLog>();
        Assert.IsType<EmbeddedEventLog>(log);
        var report = await sp.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, report.Status);
        Assert.Contains("embedded", report.Entries["event-log"].Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kafka_kind_binds_bootstrap_servers_from_configuration()
    {
        await using var sp = Build(new() { ["Transport:Kind"] = "kafka", ["Transport:Kafka:BootstrapServers"] = "broker:9092", ["Transport:Kafka:LingerMs"] = "7" });
        var options = sp.GetRequiredService<IOptions<TransportOptions>>().Value;
        Assert.True(options.UsesKafka);
        Assert.Equal("broker:9092", options.Kafka.BootstrapServers);
        Assert.Equal(7, options.Kafka.LingerMs);
    }

    [Theory]
    [InlineData("Transport:Kind", "rabbit", "must be 'embedded' or 'kafka'")]
    [InlineData("Transport:Kind", "kafka", "BootstrapServers is required")]
    [InlineData("Transport:Embedded:MaxRecordsPerPartition", "0", "MaxRecordsPerPartition must be")]
    public async Task Invalid_options_fail_at_start_up_with_a_message_naming_the_setting(string key, string value, string expected)
    {
        await using var sp = Build(new() { [key] = value });
        var e = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<TransportOptions>>().Value);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Kafka_log_rejects_invalid_options_before_connecting()
    {
        var e = Assert.Throws<ArgumentException>(() => new KafkaEventLog(new KafkaOptions { BootstrapServers = "x:1", LingerMs = -1 }));
        Assert.Contains("LingerMs", e.Message, StringComparison.Ordinal);
    }
}
