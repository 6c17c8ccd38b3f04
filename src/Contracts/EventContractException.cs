namespace Attribution.Contracts;

/// <summary>
/// An event's bytes are not a valid instance of its contract: not an Arrow stream, a missing or
/// mistyped column, a null where a value is required, a broken domain rule (e.g. ids and scores
/// of different lengths), or an unsupported schema version. Such input is poison: dead-letter it.
/// </summary>
public sealed class EventContractException : Exception
{
    /// <summary>Creates the exception.</summary>
    public EventContractException() { }

    /// <summary>Creates the exception with a message.</summary>
    public EventContractException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public EventContractException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception for an event type, optional column and row.</summary>
    public EventContractException(string eventType, string? column, int? row, string problem, Exception? inner = null)
        : base($"{eventType} event{(row is null ? "" : $" row {row}")}{(column is null ? "" : $", column '{column}'")}: {problem}", inner)
    {
        EventType = eventType;
        Column = column;
        Row = row;
    }

    /// <summary>The event type being decoded.</summary>
    public string? EventType { get; }

    /// <summary>The offending column, when known.</summary>
    public string? Column { get; }

    /// <summary>The offending row, when known.</summary>
    public int? Row { get; }
}
