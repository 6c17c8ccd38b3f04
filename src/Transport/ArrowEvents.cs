using System.Globalization;
using Attribution.Contracts;

namespace Attribution.Transport;

/// <summary>Pipeline events on the log: one Arrow IPC stream per record value, with the standard headers.</summary>
public static class ArrowEvents
{
    /// <summary>The content-type, schema-version and event-type headers of an event type (shared, read-only).</summary>
    public static IReadOnlyList<EventHeader> Headers<T>() where T : IArrowEvent<T> => HeaderCache<T>.Value;

    /// <summary>An event encoded as one Arrow IPC stream, keyed by <paramref name="key"/>, with <see cref="Headers{T}"/>.</summary>
    public static EventMessage Message<T>(string key, T value) where T : IArrowEvent<T> =>
        EventMessage.Create(key, EventCodec<T>.Instance.Encode(value), Headers<T>());

    private static class HeaderCache<T> where T : IArrowEvent<T>
    {
        public static readonly EventHeader[] Value =
        [
            EventHeader.Utf8(EventHeaders.ContentType, EventHeaders.ArrowStreamContentType),
            EventHeader.Utf8(EventHeaders.SchemaVersion, T.SchemaVersion.ToString(CultureInfo.InvariantCulture)),
            EventHeader.Utf8(EventHeaders.EventType, T.EventType),
        ];
    }
}
