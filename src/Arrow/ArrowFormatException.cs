namespace Attribution.Arrow;

/// <summary>
/// The one exception the codec throws for malformed, unsupported or over-limit input. The message
/// says what is wrong and where (stream byte offset, message index, field path).
/// </summary>
public sealed class ArrowFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ArrowFormatException() { }

    /// <summary>Creates the exception with a message.</summary>
    public ArrowFormatException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public ArrowFormatException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Byte offset in the stream where the problem was found, or -1 when unknown.</summary>
    public long StreamOffset { get; init; } = -1;
}
