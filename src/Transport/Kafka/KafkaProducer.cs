using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Attribution.Transport.Kafka;

/// <summary>Idempotent producer (acks=all, murmur2 partitioning like the embedded log) with back-off retries.</summary>
internal sealed class KafkaProducer : IEventProducer
{
    private readonly KafkaOptions _options;
    private readonly ILogger _logger;
    private readonly IProducer<byte[]?, byte[]> _producer;
    private int _disposed;

    public KafkaProducer(KafkaOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
        var config = new ProducerConfig
        {
            BootstrapServers = options.BootstrapServers,
            ClientId = options.ClientId + "-producer",
            Acks = Acks.All,
            EnableIdempotence = true,
            LingerMs = options.LingerMs,
            MessageTimeoutMs = options.MessageTimeoutMs,
            RetryBackoffMs = options.RetryBackoffMs,
            Partitioner = Confluent.Kafka.Partitioner.Murmur2Random,
        };
        KafkaLibrary.Apply(options, config);
        _producer = new ProducerBuilder<byte[]?, byte[]>(config)
            .SetErrorHandler((_, e) => _logger.KafkaClientError("producer", e.Code.ToString(), e.Reason))
            .SetLogHandler((_, m) => _logger.KafkaClientLog(m.Name, m.Facility, m.Message))
            .Build();
    }

    public async Task<EventPosition> ProduceAsync(string topic, EventMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        TopicNames.Validate(topic);
        if (message.Key is null || message.Value is null)
        {
            throw new ArgumentException($"EventMessage for topic '{topic}' has a null Key or Value; use an empty array instead.", nameof(message));
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var kafkaMessage = new Message<byte[]?, byte[]> { Key = message.Key.Length == 0 ? null : message.Key, Value = message.Value };
        if (message.Headers is { Count: > 0 } headers)
        {
            kafkaMessage.Headers = [];
            foreach (var h in headers)
            {
                kafkaMessage.Headers.Add(h.Key, h.Value);
            }
        }

        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var result = await _producer.ProduceAsync(topic, kafkaMessage, cancellationToken).ConfigureAwait(false);
                return new EventPosition(result.Topic, result.Partition.Value, result.Offset.Value);
            }
            catch (ProduceException<byte[]?, byte[]> e) when (KafkaLibrary.IsTransient(e.Error) && attempt <= _options.ProduceRetries)
            {
                var delay = TimeSpan.FromMilliseconds(_options.RetryBackoffMs * Math.Pow(2, attempt - 1));
                _logger.ProduceRetry(topic, attempt, e.Error.ToString(), delay.TotalMilliseconds);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
            catch (ProduceException<byte[]?, byte[]> e)
            {
                throw new EventLogException(
                    $"Produce to '{topic}' failed after {attempt} attempt(s): {e.Error.Code} {e.Error.Reason}" + (e.Error.IsFatal ? " (fatal: recreate the producer)" : ""),
                    KafkaLibrary.IsTransient(e.Error),
                    e);
            }
        }
    }

    public Task FlushAsync(CancellationToken cancellationToken = default) =>
        Task.Run(() => _producer.Flush(cancellationToken), cancellationToken);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Deliver what is in flight before the handle goes away.
        _producer.Flush(TimeSpan.FromMilliseconds(_options.MessageTimeoutMs));
        _producer.Dispose();
    }
}
