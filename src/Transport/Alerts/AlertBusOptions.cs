namespace Attribution.Transport.Alerts;

/// <summary>Alert/control bus options (configuration section <c>Transport:AlertBus</c>).</summary>
public sealed class AlertBusOptions
{
    /// <summary>"in-memory" (one process, default) or "rabbitmq".</summary>
    public string Kind { get; set; } = "in-memory";

    /// <summary>RabbitMQ broker settings, used when <see cref="Kind"/> is "rabbitmq".</summary>
    public RabbitMqOptions RabbitMq { get; set; } = new();

    /// <summary>Whether RabbitMQ is selected (case-insensitive "rabbitmq").</summary>
    public bool UsesRabbitMq => string.Equals(Kind, "rabbitmq", StringComparison.OrdinalIgnoreCase);

    /// <summary>Returns what is invalid, or null.</summary>
    public string? Validate()
    {
        if (!UsesRabbitMq && !string.Equals(Kind, "in-memory", StringComparison.OrdinalIgnoreCase))
        {
            return $"Transport:AlertBus:Kind must be 'in-memory' or 'rabbitmq', got '{Kind}'.";
        }

        return UsesRabbitMq ? RabbitMq.Validate() : null;
    }
}

/// <summary>RabbitMQ connection settings.</summary>
public sealed class RabbitMqOptions
{
    /// <summary>Broker host name.</summary>
    public string Host { get; set; } = "localhost";

    /// <summary>AMQP port.</summary>
    public int Port { get; set; } = 5672;

    /// <summary>Virtual host.</summary>
    public string VirtualHost { get; set; } = "/";

    /// <summary>User name (guest works only from localhost).</summary>
    public string Username { get; set; } = "guest";

    /// <summary>Password.</summary>
    public string Password { get; set; } = "guest";

    /// <summary>Returns what is invalid, or null.</summary>
    public string? Validate() =>
        string.IsNullOrWhiteSpace(Host) ? "Transport:AlertBus:RabbitMq:Host is required (e.g. 'localhost')."
        : Port is < 1 or > 65535 ? $"Transport:AlertBus:RabbitMq:Port must be 1..65535, got {Port}."
        : string.IsNullOrEmpty(VirtualHost) ? "Transport:AlertBus:RabbitMq:VirtualHost is required (default '/')."
        : string.IsNullOrEmpty(Username) ? "Transport:AlertBus:RabbitMq:Username is required."
        : null;
}
