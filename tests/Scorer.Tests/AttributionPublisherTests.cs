using Attribution.Contracts;
using Attribution.Transport;
using Attribution.Transport.Embedded;
using Attribution.Transport.Messages;
using Microsoft.Extensions.Logging.Abstractions;

namespace Attribution.Scorer.Tests;

/// <summary>Publishing: an attribution lands keyed by its query id on the id's home partition, decodable; alerts are typed.</summary>
public sealed class AttributionPublisherTests
{
    private static readonly AttributionResult Result = new("q-00143", "run@4", BatchScorer.MethodName, [5L, 6L], [0.5f, 0.25f], [0L, 1L], [0.1f, -0.2f], 1234);

    [Fact]
    public async Task An_attribution_is_produced_keyed_by_its_query_id_on_the_ids_home_partition()
    {
        await using var log = new EmbeddedEventLog();
        await log.CreateTopicAsync(new TopicSpec(Topics.Attributions, 4));
        using var producer = log.CreateProducer();
        var publisher = new AttributionPublisher(producer, bus: null, new ScorerMetrics(), NullLogger.Instance);

        var at = await publisher.ProduceAsync(AttributionPublisher.Encode(Result), CancellationToken.None);

        Assert.Equal(QueryValidator.Home(Result.QueryId, 4), at.Partition);
        using var reader = log.CreateConsumer(new ConsumerSettings { Topics = [Topics.Attributions], Start = StartPosition.Beginning });
        var record = reader.Consume(TimeSpan.FromSeconds(5));
        Assert.NotNull(record);
        Assert.Equal(Result.QueryId, record.KeyString);
        Assert.Equal(EventHeaders.ArrowStreamContentType, record.GetHeaderString(EventHeaders.ContentType));
        var decoded = EventCodecs.Attributions.Decode(record.Value);
        Assert.Equal(Result.QueryId, decoded.QueryId);
        Assert.Equal(Result.ExampleIds, decoded.ExampleIds);
        Assert.Equal(Result.SourceScores, decoded.SourceScores);
    }

    [Fact]
    public async Task Without_a_bus_an_alert_is_counted_and_the_message_carries_the_typed_verdict()
    {
        await using var log = new EmbeddedEventLog();
        using var producer = log.CreateProducer();
        var metrics = new ScorerMetrics();
        var publisher = new AttributionPublisher(producer, bus: null, metrics, NullLogger.Instance);
        var verdict = new ContaminationVerdict(AlertRule.ExampleLead, 2.5, 1.05, [], [6L]);

        await publisher.AlertAsync(Result, verdict, CancellationToken.None);
        Assert.Equal(1, metrics.AlertsRaised);

        var at = new DateTimeOffset(2026, 2, 3, 4, 5, 6, TimeSpan.Zero);
        var message = AttributionPublisher.ToMessage(Result, verdict, at);
        Assert.Equal(("q-00143", "run@4", AlertRule.ExampleLead, 2.5, 1.05, at), (message.QueryId, message.ModelVersion, message.Rule, message.Score, message.Threshold, message.Timestamp));
        Assert.Equal([6L], message.FlaggedExampleIds);
        Assert.Empty(message.FlaggedSourceIds);
    }
}
