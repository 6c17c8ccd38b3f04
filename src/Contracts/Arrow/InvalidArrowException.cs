namespace Attribution.Contracts.Arrow;

/// <summary>
/// Bytes that are not a readable Arrow IPC stream or file: truncated, malformed metadata, a buffer outside its
/// message body, a hostile length or count, bytes after the end-of-stream marker. The message says what and at
/// which byte. <see cref="EventCodec{T}"/> turns it into an <see cref="EventContractException"/>.
/// </summary>
public sealed class InvalidArrowException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InvalidArrowException() { }

    /// <summary>Creates the exception with a message.</summary>
    public InvalidArrowException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public InvalidArrowException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Byte offset in the input where the problem was found, when known.</summary>
    public long? Offset { get; init; }

    internal static InvalidArrowException At(long offset, string what) => new($"Malformed Arrow input at byte {offset}: {what}.") { Offset = offset };
}
