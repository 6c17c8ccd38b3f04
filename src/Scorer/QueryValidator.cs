using System.Globalization;
using System.Text;
using Attribution.Contracts;
using Attribution.Transport;

namespace Attribution.Scorer;

/// <summary>A query that cannot be attributed (key and id disagree, wrong input kind or width, non-finite features); dead-lettered with this message.</summary>
public sealed class QueryRejectedException(string message) : Exception(message);

/// <summary>
/// A query's identity and shape, checked before it is scored (pure: no I/O). Identity is defined once: the record's
/// key must equal the payload's query id; a record without a key takes the id from the payload. The id's home is the
/// partition it hashes to (Kafka's murmur2 partitioner), on the queries and the attributions topic alike.
/// </summary>
public static class QueryValidator
{
    /// <summary>Keys longer than this are cut in error messages.</summary>
    private const int ShownKeyLength = 80;

    /// <summary>
    /// The query id of <paramref name="record"/>: its key when the key equals the payload's id, the payload's id when the
    /// record has no key.
    /// </summary>
    /// <exception cref="QueryRejectedException">The id is empty, or the key names another id.</exception>
    public static string Identify(EventRecord record, ModelQuery query)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(query);
        if (string.IsNullOrEmpty(query.QueryId))
        {
            throw new QueryRejectedException($"query at {record} has an empty query id; set 'query_id' in the payload (and the message key to the same id).");
        }

        if (record.Key.Length == 0 || record.Key.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(query.QueryId)))
        {
            return query.QueryId;
        }

        throw new QueryRejectedException($"message key '{Show(record.Key)}' does not match the payload's query id '{Show(Encoding.UTF8.GetBytes(query.QueryId))}' at {record}; " +
            "key each query by its own query id (or send it without a key).");
    }

    /// <summary>The partition (of <paramref name="partitions"/>) that is the home of <paramref name="queryId"/>.</summary>
    public static int Home(string queryId, int partitions) => Partitioner.ForKey(Encoding.UTF8.GetBytes(queryId), partitions);

    /// <summary>Checks that <paramref name="query"/> carries <paramref name="width"/> finite features.</summary>
    /// <exception cref="QueryRejectedException">It carries token ids, another width, or a non-finite value.</exception>
    public static void Validate(ModelQuery query, int width)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (query.Features is null)
        {
            throw new QueryRejectedException($"query '{query.QueryId}' carries token ids; this model takes features ({width} float32 values in 'features').");
        }

        if (query.Features.Count != width)
        {
            throw new QueryRejectedException($"query '{query.QueryId}' has {query.Features.Count} features; the model takes {width}. Send the full input vector.");
        }

        for (int i = 0; i < query.Features.Count; i++)
        {
            if (!float.IsFinite(query.Features[i]))
            {
                throw new QueryRejectedException($"query '{query.QueryId}' has a non-finite value ({query.Features[i].ToString(CultureInfo.InvariantCulture)}) at feature {i}; features must be finite.");
            }
        }
    }

    /// <summary>Printable form of key bytes: UTF-8 with control and invalid characters escaped, cut at 80 characters.</summary>
    private static string Show(byte[] bytes)
    {
        var text = Encoding.UTF8.GetString(bytes);
        var sb = new StringBuilder();
        foreach (var c in text)
        {
            if (sb.Length >= ShownKeyLength)
            {
                sb.Append('…');
                break;
            }

            sb.Append(char.IsControl(c) || c == '\uFFFD' ? $"\\u{(int)c:x4}" : c);
        }

        return sb.ToString();
    }
}
