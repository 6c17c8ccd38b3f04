using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Attribution.Transport.Kafka;

/// <summary>
/// The Kafka event log: Confluent.Kafka over the librdkafka <see cref="KafkaLibrary"/> chose. Producers are idempotent (acks=all); consumers
/// store offsets only when told (<c>enable.auto.offset.store=false</c>) and commit stored offsets on
/// <see cref="IEventConsumer.Commit"/>, on revoke, on close and every <see cref="KafkaOptions.AutoCommitIntervalMs"/>.
/// Thread-safe.
/// </summary>
public sealed class KafkaEventLog : IEventLog
{
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly Lazy<IAdminClient> _admin;

    /// <summary>Creates the log; connects lazily on first use.</summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="EventLogException">librdkafka could not be loaded.</exception>
    public KafkaEventLog(KafkaOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Validate() is { } error)
        {
            throw new ArgumentException(error, nameof(options));
        }

        Options = options;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<KafkaEventLog>();
        _logger.LibrdkafkaLoaded(KafkaLibrary.EnsureLoaded(options.LibraryPath).ToString());
        _admin = new Lazy<IAdminClient>(() =>
        {
            var config = new AdminClientConfig { BootstrapServers = options.BootstrapServers, ClientId = options.ClientId + "-admin" };
            KafkaLibrary.Apply(options, config);
            return new AdminClientBuilder(config)
                .SetErrorHandler((_, e) => _logger.KafkaClientError("admin", e.Code.ToString(), e.Reason))
                .SetLogHandler((_, m) => _logger.KafkaClientLog(m.Name, m.Facility, m.Message))
                .Build();
        });
    }

    /// <inheritdoc />
    public string Kind => "kafka";

    /// <summary>The options this log was created with.</summary>
    public KafkaOptions Options { get; }

    private TimeSpan AdminTimeout => TimeSpan.FromMilliseconds(Options.AdminTimeoutMs);

    /// <inheritdoc />
    public async Task CreateTopicAsync(TopicSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        // Idempotent without the admin API when the topic is already there (some clusters, e.g. librdkafka's mock,
        // have no controller to ask; their operators create topics up front).
        if (await GetPartitionCountAsync(spec.Name, cancellationToken).ConfigureAwait(false) is not null)
        {
            return;
        }

        var topic = new TopicSpecification
        {
            Name = spec.Name,
            NumPartitions = spec.Partitions,
            ReplicationFactor = spec.ReplicationFactor ?? Options.DefaultReplicationFactor,
            Configs = spec.Compacted ? new Dictionary<string, string> { ["cleanup.policy"] = "compact" } : null,
        };
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await _admin.Value.CreateTopicsAsync([topic], new CreateTopicsOptions { OperationTimeout = AdminTimeout, RequestTimeout = AdminTimeout })
                    .WaitAsync(cancellationToken).ConfigureAwait(false);
                _logger.TopicCreated(spec.Name, spec.Partitions, spec.Compacted);
                return;
            }
            catch (CreateTopicsException e) when (e.Results.All(r => r.Error.Code is ErrorCode.TopicAlreadyExists or ErrorCode.NoError))
            {
                return;
            }
            catch (CreateTopicsException e) when (attempt <= Options.ProduceRetries && e.Results.Any(r => KafkaLibrary.IsTransient(r.Error)))
            {
                await BackOffAsync($"create topic {spec.Name}", attempt, e.Message, cancellationToken).ConfigureAwait(false);
            }
            catch (KafkaException e) when (attempt <= Options.ProduceRetries && KafkaLibrary.IsTransient(e.Error))
            {
                await BackOffAsync($"create topic {spec.Name}", attempt, e.Message, cancellationToken).ConfigureAwait(false);
            }
            catch (KafkaException e)
            {
                throw new EventLogException($"Could not create topic '{spec.Name}' on {Options.BootstrapServers}: {e.Message}", KafkaLibrary.IsTransient(e.Error), e);
            }
        }
    }

    /// <inheritdoc />
    public Task<int?> GetPartitionCountAsync(string topic, CancellationToken cancellationToken = default)
    {
        TopicNames.Validate(topic);
        return Task.Run(() =>
        {
            try
            {
                // All-topics metadata: asking for one topic by name could auto-create it.
                var meta = _admin.Value.GetMetadata(AdminTimeout).Topics.FirstOrDefault(t => t.Topic == topic && t.Error.Code == ErrorCode.NoError);
                return meta is null ? null : (int?)meta.Partitions.Count;
            }
            catch (KafkaException e)
            {
                throw new EventLogException($"Could not read metadata of '{topic}' from {Options.BootstrapServers}: {e.Message}", KafkaLibrary.IsTransient(e.Error), e);
            }
        }, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyDictionary<string, TopicDescription>> DescribeTopicsAsync(IReadOnlyCollection<string> topics, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topics);
        foreach (var t in topics)
        {
            TopicNames.Validate(t);
        }

        var partitions = await Task.Run(() =>
        {
            try
            {
                // All-topics metadata: asking for topics by name could auto-create them.
                return _admin.Value.GetMetadata(AdminTimeout).Topics
                    .Where(t => t.Error.Code == ErrorCode.NoError && topics.Contains(t.Topic, StringComparer.Ordinal))
                    .ToDictionary(t => t.Topic, t => t.Partitions.Count, StringComparer.Ordinal);
            }
            catch (KafkaException e)
            {
                throw new EventLogException($"Could not read topic metadata from {Options.BootstrapServers}: {e.Message}", KafkaLibrary.IsTransient(e.Error), e);
            }
        }, cancellationToken).ConfigureAwait(false);
        if (partitions.Count == 0)
        {
            return new Dictionary<string, TopicDescription>(StringComparer.Ordinal);
        }

        var policies = new Dictionary<string, string?>(StringComparer.Ordinal);
        var errors = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            var results = await _admin.Value.DescribeConfigsAsync(
                    [.. partitions.Keys.Select(t => new ConfigResource { Type = ResourceType.Topic, Name = t })],
                    new DescribeConfigsOptions { RequestTimeout = AdminTimeout })
                .WaitAsync(cancellationToken).ConfigureAwait(false);
            foreach (var r in results)
            {
                policies[r.ConfigResource.Name] = r.Entries.TryGetValue("cleanup.policy", out var entry) ? entry.Value : null;
            }
        }
        catch (DescribeConfigsException e)
        {
            foreach (var r in e.Results)
            {
                if (r.Error.IsError)
                {
                    errors[r.ConfigResource.Name] = $"DescribeConfigs: {r.Error.Reason}";
                }
                else
                {
                    policies[r.ConfigResource.Name] = r.Entries.TryGetValue("cleanup.policy", out var entry) ? entry.Value : null;
                }
            }
        }
        catch (KafkaException e)
        {
            _logger.DescribeConfigsFailed(string.Join(", ", partitions.Keys), e.Message, e);
            foreach (var t in partitions.Keys)
            {
                errors[t] = $"DescribeConfigs: {e.Error.Reason}";
            }
        }

        return partitions.ToDictionary(kv => kv.Key, kv => policies.TryGetValue(kv.Key, out var policy)
            ? new TopicDescription(kv.Key, kv.Value, policy?.Split(',', StringSplitOptions.TrimEntries).Contains("compact", StringComparer.Ordinal) ?? false)
            : new TopicDescription(kv.Key, kv.Value, null, errors.GetValueOrDefault(kv.Key, "DescribeConfigs returned nothing")), StringComparer.Ordinal);
    }

    /// <inheritdoc />
    public IEventProducer CreateProducer() => new KafkaProducer(Options, _loggerFactory.CreateLogger<KafkaProducer>());

    /// <inheritdoc />
    public IEventConsumer CreateConsumer(ConsumerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        return new KafkaConsumer(Options, settings, _loggerFactory.CreateLogger<KafkaConsumer>());
    }

    /// <inheritdoc />
    public Task<EventLogHealth> CheckHealthAsync(CancellationToken cancellationToken = default) => Task.Run(() =>
    {
        try
        {
            var meta = _admin.Value.GetMetadata(AdminTimeout);
            return meta.Brokers.Count > 0
                ? new EventLogHealth(true, $"kafka {Options.BootstrapServers}: {meta.Brokers.Count} brokers, {meta.Topics.Count} topics (librdkafka {Library.VersionString} from {KafkaLibrary.Loaded?.Path})")
                : new EventLogHealth(false, $"kafka {Options.BootstrapServers}: metadata listed no brokers");
        }
        catch (KafkaException e)
        {
            return new EventLogHealth(false, $"kafka {Options.BootstrapServers}: {e.Error.Code} {e.Message}");
        }
    }, cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        if (_admin.IsValueCreated)
        {
            _admin.Value.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private async Task BackOffAsync(string operation, int attempt, string error, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(Options.RetryBackoffMs * Math.Pow(2, attempt - 1));
        _logger.AdminRetry(operation, attempt, error, delay.TotalMilliseconds);
        await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
    }
}
