using System.Runtime.CompilerServices;
using Attribution.Contracts;
using Attribution.Transport;

namespace Attribution.Scorer;

/// <summary>
/// A downstream reader of the attributions topic that yields each query's attribution once, deduplicated by query id
/// (the Scorer already publishes one per query; this also absorbs duplicates a producer retry or an uncommitted crash
/// could leave on a log without transactions). Records that are not valid attributions are counted in
/// <see cref="Malformed"/> and skipped. With a group id it commits what it has yielded, so a restarted reader resumes.
/// </summary>
public sealed class AttributionReader(IEventLog log, string? groupId = null, int window = 1_000_000)
{
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private readonly Queue<string> _order = new();

    /// <summary>Records skipped because they were not valid attribution events.</summary>
    public long Malformed { get; private set; }

    /// <summary>Records skipped because their query id was already yielded.</summary>
    public long Duplicates { get; private set; }

    /// <summary>Yields attributions as they arrive, each query id at most once (within the last <c>window</c> ids), until cancelled.</summary>
    public async IAsyncEnumerable<AttributionResult> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(log);
        using var consumer = log.CreateConsumer(new ConsumerSettings { Topics = [Topics.Attributions], GroupId = groupId, Start = groupId is null ? StartPosition.Beginning : StartPosition.Committed });
        while (!cancellationToken.IsCancellationRequested)
        {
            EventRecord? record;
            try
            {
                record = await Task.Run(() => consumer.Consume(TimeSpan.FromMilliseconds(200), cancellationToken), cancellationToken);
            }
            catch (OperationCanceledException e) when (e.CancellationToken == cancellationToken)
            {
                break;
            }

            if (record is null)
            {
                continue;
            }

            AttributionResult? result = null;
            try
            {
                result = EventCodecs.Attributions.Decode(record.Value);
            }
            catch (EventContractException)
            {
                Malformed++;
            }

            if (result is not null && _seen.Add(result.QueryId))
            {
                _order.Enqueue(result.QueryId);
                if (_order.Count > window)
                {
                    _seen.Remove(_order.Dequeue());
                }

                yield return result;
            }
            else if (result is not null)
            {
                Duplicates++;
            }

            if (groupId is not null)
            {
                consumer.StoreOffset(record);
                consumer.Commit();
            }
        }

        if (groupId is not null)
        {
            consumer.Close();
        }
    }
}
