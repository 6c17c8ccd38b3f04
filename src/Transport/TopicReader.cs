using System.Diagnostics;

namespace Attribution.Transport;

/// <summary>Reads a topic from its beginning to its end offsets with a standalone reader (no group, no commits).</summary>
public static class TopicReader
{
    /// <summary>Every retained record of <paramref name="topic"/> up to the end offsets seen when reading starts; empty when the topic does not exist.</summary>
    public static Task<List<EventRecord>> ReadToEndAsync(IEventLog log, string topic, CancellationToken cancellationToken) =>
        ReadToEndAsync(log, topic, _ => true, cancellationToken);

    /// <summary>The retained records of <paramref name="topic"/> that <paramref name="keep"/> accepts (the others are not held), read as above.</summary>
    public static async Task<List<EventRecord>> ReadToEndAsync(IEventLog log, string topic, Func<EventRecord, bool> keep, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keep);
        var result = new List<EventRecord>();
        if (await log.GetPartitionCountAsync(topic, cancellationToken) is not { } partitions)
        {
            return result;
        }

        await Task.Run(() =>
        {
            using var reader = log.CreateConsumer(new ConsumerSettings { Topics = [topic], Start = StartPosition.Beginning });
            var ends = new long[partitions];
            var next = new long[partitions];
            for (int p = 0; p < partitions; p++)
            {
                ends[p] = reader.GetEndOffset(new TopicPartition(topic, p));
            }

            // Compaction can leave the last offsets empty: stop after a quiet second as well as at the end offsets.
            var quiet = Stopwatch.StartNew();
            while (Enumerable.Range(0, partitions).Any(p => next[p] < ends[p]) && quiet.Elapsed < TimeSpan.FromSeconds(1))
            {
                if (reader.Consume(TimeSpan.FromMilliseconds(50), cancellationToken) is { } r)
                {
                    quiet.Restart();
                    if (r.Offset < ends[r.Partition] && keep(r))
                    {
                        result.Add(r);
                    }

                    next[r.Partition] = Math.Max(next[r.Partition], r.Offset + 1);
                }
            }
        }, cancellationToken);
        return result;
    }
}
