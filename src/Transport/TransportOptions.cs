using Attribution.Transport.Embedded;
using Attribution.Transport.Kafka;
using Microsoft.Extensions.Options;

namespace Attribution.Transport;

/// <summary>Event-log options (configuration section <c>Transport</c>).</summary>
public sealed class TransportOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Transport";

    /// <summary>"embedded" (default: in-process, nothing to install) or "kafka".</summary>
    public string Kind { get; set; } = "embedded";

    /// <summary>Embedded log options (<c>Transport:Embedded</c>).</summary>
    public EmbeddedOptions Embedded { get; set; } = new();

    /// <summary>Kafka options (<c>Transport:Kafka</c>).</summary>
    public KafkaOptions Kafka { get; set; } = new();

    /// <summary>Whether Kafka is selected (case-insensitive "kafka").</summary>
    public bool UsesKafka => string.Equals(Kind, "kafka", StringComparison.OrdinalIgnoreCase);

    /// <summary>Returns what is invalid, or null.</summary>
    public string? Validate() =>
        UsesKafka ? Kafka.Validate()
        : string.Equals(Kind, "embedded", StringComparison.OrdinalIgnoreCase) ? Embedded.Validate()
        : $"Transport:Kind must be 'embedded' or 'kafka', got '{Kind}'.";
}

/// <summary>Validates <see cref="TransportOptions"/> at start-up (with <c>ValidateOnStart</c>).</summary>
internal sealed class TransportOptionsValidator : IValidateOptions<TransportOptions>
{
    public ValidateOptionsResult Validate(string? name, TransportOptions options) =>
        options.Validate() is { } error ? ValidateOptionsResult.Fail(error) : ValidateOptionsResult.Success;
}
