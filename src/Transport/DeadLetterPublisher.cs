using System.Globalization;

namespace Attribution.Transport;

/// <summary>
/// Publishes poison events to a dead-letter topic with their original key, value and headers, plus headers saying where
/// they came from and why they failed; then stores and commits the original offset so the stream continues.
/// </summary>
public sealed class DeadLetterPublisher
{
    /// <summary>Header: topic the event was read from.</summary>
    public const string OriginalTopicHeader = "dlq.original.topic";
    /// <summary>Header: partition the event was read from (decimal).</summary>
    public const string OriginalPartitionHeader = "dlq.original.partition";
    /// <summary>Header: offset of the event (decimal).</summary>
    public const string OriginalOffsetHeader = "dlq.original.offset";
    /// <summary>Header: original append time (ISO 8601).</summary>
    public const string OriginalTimestampHeader = "dlq.original.timestamp";
    /// <summary>Header: full type name of the exception.</summary>
    public const string ErrorClassHeader = "dlq.error.class";
    /// <summary>Header: exception message (truncated to 4 KiB).</summary>
    public const string ErrorMessageHeader = "dlq.error.message";
    /// <summary>Header: which consumer group dead-lettered it.</summary>
    public const string GroupHeader = "dlq.group";

    private const int MaxMessageChars = 4096;
    private readonly IEventProducer _producer;

    /// <summary>Creates a publisher writing to <paramref name="deadLetterTopic"/> through <paramref name="producer"/>.</summary>
    public DeadLetterPublisher(IEventProducer producer, string deadLetterTopic)
    {
        ArgumentNullException.ThrowIfNull(producer);
        TopicNames.Validate(deadLetterTopic);
        _producer = producer;
        Topic = deadLetterTopic;
    }

    /// <summary>The dead-letter topic.</summary>
    public string Topic { get; }

    /// <summary>Builds the dead-letter message for <paramref name="original"/> failed with <paramref name="error"/>.</summary>
    public static EventMessage CreateMessage(EventRecord original, Exception error, string? groupId = null)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(error);
        var message = error.Message.Length > MaxMessageChars ? error.Message[..MaxMessageChars] : error.Message;
        var headers = new List<EventHeader>(original.Headers.Count + 7);
        headers.AddRange(original.Headers);
        headers.Add(EventHeader.Utf8(OriginalTopicHeader, original.Topic));
        headers.Add(EventHeader.Utf8(OriginalPartitionHeader, original.Partition.ToString(CultureInfo.InvariantCulture)));
        headers.Add(EventHeader.Utf8(OriginalOffsetHeader, original.Offset.ToString(CultureInfo.InvariantCulture)));
        headers.Add(EventHeader.Utf8(OriginalTimestampHeader, original.Timestamp.ToString("O", CultureInfo.InvariantCulture)));
        headers.Add(EventHeader.Utf8(ErrorClassHeader, error.GetType().FullName ?? error.GetType().Name));
        headers.Add(EventHeader.Utf8(ErrorMessageHeader, message));
        if (groupId is not null)
        {
            headers.Add(EventHeader.Utf8(GroupHeader, groupId));
        }

        return new EventMessage(original.Key, original.Value, headers);
    }

    /// <summary>Publishes the dead letter and waits for its acknowledgement.</summary>
    public Task<EventPosition> PublishAsync(EventRecord original, Exception error, string? groupId = null, CancellationToken cancellationToken = default) =>
        _producer.ProduceAsync(Topic, CreateMessage(original, error, groupId), cancellationToken);

    /// <summary>
    /// Publishes the dead letter, then (only once it is acknowledged) stores and commits the original offset on
    /// <paramref name="consumer"/>, so the poison event is not read again.
    /// </summary>
    public async Task<EventPosition> PublishAndCommitAsync(IEventConsumer consumer, EventRecord original, Exception error, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(consumer);
        var position = await PublishAsync(original, error, consumer.GroupId, cancellationToken).ConfigureAwait(false);
        consumer.StoreOffset(original);
        consumer.Commit();
        return position;
    }
}
