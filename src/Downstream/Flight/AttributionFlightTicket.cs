using System.Text.Json;
using System.Text.Json.Serialization;

namespace Attribution.Downstream.Flight;

/// <summary>
/// What a Flight DoGet asks for, as the ticket's JSON bytes, e.g. <c>{"model":"run@5","source":3,"from":"beginning"}</c>.
/// Every field is optional: no filter streams every attribution; <c>from</c> is "latest" (default: only events appended
/// after the call) or "beginning" (every retained event first, then live).
/// </summary>
/// <param name="Model">Only attributions of this model version.</param>
/// <param name="Source">Only attributions in which this source carries positive attribution mass.</param>
/// <param name="From">"latest" or "beginning".</param>
public sealed record AttributionFlightTicket(
    [property: JsonPropertyName("model")] string? Model = null,
    [property: JsonPropertyName("source")] long? Source = null,
    [property: JsonPropertyName("from")] string? From = null)
{
    /// <summary>Whether the stream starts at the first retained event.</summary>
    [JsonIgnore]
    public bool FromBeginning => string.Equals(From, "beginning", StringComparison.OrdinalIgnoreCase);

    /// <summary>The ticket's bytes.</summary>
    public byte[] ToBytes() => JsonSerializer.SerializeToUtf8Bytes(this);

    /// <summary>Parses ticket bytes; an empty ticket asks for everything from now on.</summary>
    /// <exception cref="FormatException">Not a JSON object of this shape, or <c>from</c> is neither "latest" nor "beginning".</exception>
    public static AttributionFlightTicket Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return new AttributionFlightTicket();
        }

        AttributionFlightTicket? ticket;
        try
        {
            ticket = JsonSerializer.Deserialize<AttributionFlightTicket>(bytes);
        }
        catch (JsonException e)
        {
            throw new FormatException($"Flight ticket is not JSON like {{\"model\":\"run@5\",\"source\":3,\"from\":\"beginning\"}}: {e.Message}", e);
        }

        if (ticket is null || ticket.From is not (null or "latest" or "beginning"))
        {
            throw new FormatException($"Flight ticket 'from' must be \"latest\" or \"beginning\", got \"{ticket?.From}\".");
        }

        return ticket;
    }

    /// <summary>Whether <paramref name="e"/> passes the filters.</summary>
    public bool Matches(Contracts.AttributionResult e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (Model is not null && !string.Equals(e.ModelVersion, Model, StringComparison.Ordinal))
        {
            return false;
        }

        if (Source is { } s)
        {
            for (int i = 0; i < e.SourceIds.Count; i++)
            {
                if (e.SourceIds[i] == s)
                {
                    return e.SourceScores[i] > 0;
                }
            }

            return false;
        }

        return true;
    }
}
