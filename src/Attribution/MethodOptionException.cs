namespace Attribution.Attribution;

/// <summary>
/// A method request that cannot be honoured: an unknown method or option, an option that has no effect in the chosen
/// configuration, or a request the problem cannot satisfy (more models than were trained, TracIn without training
/// checkpoints). Commands exit 2 with the message: nothing is ever silently dropped.
/// </summary>
public sealed class MethodOptionException(string message) : ArgumentException(message);
