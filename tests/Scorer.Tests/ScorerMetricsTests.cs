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

    [Fact]
    public void Two_Scorers_in_one_process_report_apart_by_their_instance_tag()
    {
        // Protects the Prometheus scrape of a process with more than one Scorer (the flaky DemoLikeRun test: another test
        // host's Scorer in the same process): exporters listen by meter name, and untagged measurements of two instances
        // were one series whose value was whichever instance was observed last.
        using var a = new ScorerMetrics();
        using var b = new ScorerMetrics();
        for (int i = 0; i < 40; i++)
        {
            a.Scored(1000);
        }

        for (int i = 0; i < 7; i++)
        {
            b.Scored(1000);
        }

        var queries = new Dictionary<string, long>();
        var batchSizes = new List<(int Size, string? Instance)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            // By name, as an exporter does: both instances (and any other in the test process).
            if (instrument.Meter.Name == ScorerMetrics.MeterName && instrument.Name is "pipeline.scorer.queries" or "pipeline.scorer.batch_size")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == ScorerMetrics.InstanceTag)
                {
                    lock (queries)
                    {
                        queries[(string)tag.Value!] = value;
                    }
                }
            }
        });
        listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) =>
        {
            string? instance = null;
            foreach (var tag in tags)
            {
                instance = tag.Key == ScorerMetrics.InstanceTag ? (string?)tag.Value : instance;
            }

            lock (batchSizes)
            {
                batchSizes.Add((value, instance));
            }
        });
        listener.Start();
        a.BatchScored(12);
        listener.RecordObservableInstruments();

        Assert.NotEqual(a.Instance, b.Instance);
        Assert.Equal(40, queries[a.Instance]);
        Assert.Equal(7, queries[b.Instance]);
        Assert.Contains((12, a.Instance), batchSizes);
    }
}
