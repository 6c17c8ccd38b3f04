using System.Diagnostics.Metrics;
using Attribution.Transport;

namespace Attribution.Scorer.Tests;

/// <summary>The Scorer's exported instruments (issue 14): a batch-size histogram and a consumer-lag gauge per partition.</summary>
public sealed class ScorerMetricsTests
{
    [Fact]
    public void Batch_sizes_are_recorded_one_measurement_per_batch_and_lag_is_reported_per_partition_with_its_tags()
    {
        using var metrics = new ScorerMetrics();
        var sizes = new List<int>();
        var lags = new List<(long Value, string? Topic, int? Partition)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            // Only this instance's meter: other ScorerMetrics in the test process publish the same names.
            if (ReferenceEquals(instrument.Meter, metrics.Meter) && instrument.Name is "pipeline.scorer.batch_size" or "pipeline.scorer.consumer_lag")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<int>((instrument, value, _, _) =>
        {
            if (instrument.Name == "pipeline.scorer.batch_size")
            {
                lock (sizes)
                {
                    sizes.Add(value);
                }
            }
        });
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? topic = null;
            int? partition = null;
            foreach (var tag in tags)
            {
                topic = tag.Key == "topic" ? (string?)tag.Value : topic;
                partition = tag.Key == "partition" ? (int?)tag.Value : partition;
            }

            lags.Add((value, topic, partition));
        });
        listener.Start();

        metrics.BatchScored(5);
        metrics.BatchScored(12);
        metrics.BatchScored(64);
        metrics.ObserveLag(() => new Dictionary<TopicPartition, long> { [new("queries", 0)] = 17, [new("queries", 3)] = 0 });
        listener.RecordObservableInstruments();

        Assert.Equal([5, 12, 64], sizes.Order());
        Assert.Equal([(0L, "queries", 3), (17L, "queries", 0)], lags.OrderBy(l => l.Value));
        Assert.Equal(17, metrics.ConsumerLag[new TopicPartition("queries", 0)]);
    }
}
