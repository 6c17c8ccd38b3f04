using System.Globalization;
using System.Text;
using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Transport;

namespace Attribution.Scorer;

/// <summary>A query that cannot be attributed (key and id disagree, wrong input kind or width, non-finite features, a text query its language model cannot read); dead-lettered with this message.</summary>
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
            throw new QueryRejectedException($"query '{query.QueryId}' is a language-model query (prompt and completion); this model is an image classifier and takes features ({width} float32 values in 'features').");
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

    /// <summary>
    /// The language-model query <paramref name="query"/> carries, as the model reads it: its tokenizer must be
    /// <paramref name="tokenizer"/> (the model's), the completion must have at least one token and at most
    /// <paramref name="context"/>, prompt and completion together must fit the context (the prompt gets the tokenizer's
    /// document start first, which the context holds besides), and every id must be in the model's vocabulary of
    /// <paramref name="vocabSize"/>.
    /// </summary>
    /// <exception cref="QueryRejectedException">Features instead of text, no or another tokenizer, an empty or too long completion, a prompt too long for the context, an id outside the vocabulary.</exception>
    public static CompletionQuery ValidateText(ModelQuery query, ITokenizer tokenizer, int vocabSize, int context)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var id = query.QueryId;
        if (!query.IsText)
        {
            throw new QueryRejectedException($"query '{id}' carries features; this model is a language model: send 'prompt' and 'completion' text (or 'token_ids' and 'completion_token_ids') with 'tokenizer' = '{tokenizer.Name}'.");
        }

        if (query.Tokenizer is not { Length: > 0 } name)
        {
            throw new QueryRejectedException($"query '{id}' names no tokenizer; set 'tokenizer' to '{tokenizer.Name}' (the tokenizer of this model).");
        }

        if (!Tokenizers.Names.Contains(name))
        {
            throw new QueryRejectedException($"query '{id}' names an unknown tokenizer '{Shown(name)}'; known: {string.Join(", ", Tokenizers.Names)} (this model reads '{tokenizer.Name}').");
        }

        if (name != tokenizer.Name)
        {
            throw new QueryRejectedException($"query '{id}' is tokenized for '{name}' but this model reads '{tokenizer.Name}'; send text with 'tokenizer' = '{tokenizer.Name}', or ids of that tokenizer.");
        }

        CompletionQuery completion;
        if (query.Completion is { } text)
        {
            var ids = tokenizer.Encode(text);
            if (ids.Length == 0)
            {
                throw new QueryRejectedException($"query '{id}' has an empty completion; the attributed output is the completion's log-likelihood, so it needs at least one token.");
            }

            completion = new CompletionQuery([tokenizer.DocumentStart, .. tokenizer.Encode(query.Prompt ?? "")], ids);
        }
        else
        {
            var ids = query.CompletionTokenIds ?? [];
            if (ids.Count == 0)
            {
                throw new QueryRejectedException($"query '{id}' has an empty completion ('completion_token_ids' or 'completion'); the attributed output is the completion's log-likelihood, so it needs at least one token.");
            }

            completion = new CompletionQuery([tokenizer.DocumentStart, .. Ids(id, "token_ids", query.TokenIds ?? [], vocabSize)], Ids(id, "completion_token_ids", ids, vocabSize));
        }

        if (completion.Completion.Length > context)
        {
            throw new QueryRejectedException($"query '{id}' has a completion of {completion.Completion.Length} tokens; this model's context is {context} tokens. Send a shorter completion.");
        }

        // The model reads the document start, the prompt and the completion but the last token in one window: the
        // query is attributed as sent or not at all (cutting the prompt would explain an output nobody asked about).
        if (completion.Prompt.Length + completion.Completion.Length > context + 1)
        {
            throw new QueryRejectedException($"query '{id}': its prompt ({completion.Prompt.Length - 1} tokens) and completion ({completion.Completion.Length}) do not fit this model's context of {context} tokens (prompt + completion ≤ {context}); send a shorter prompt (keep its last {context - completion.Completion.Length} tokens).");
        }

        foreach (var t in completion.Completion)
        {
            if ((uint)t >= (uint)vocabSize)
            {
                throw new QueryRejectedException($"query '{id}': completion token {t} is outside this model's vocabulary of {vocabSize}.");
            }
        }

        return completion;
    }

    private static int[] Ids(string queryId, string column, IReadOnlyList<long> ids, int vocabSize)
    {
        var result = new int[ids.Count];
        for (int i = 0; i < result.Length; i++)
        {
            if (ids[i] < 0 || ids[i] >= vocabSize)
            {
                throw new QueryRejectedException($"query '{queryId}': {column}[{i}] = {ids[i].ToString(CultureInfo.InvariantCulture)} is outside this model's vocabulary (ids 0..{vocabSize - 1}).");
            }

            result[i] = (int)ids[i];
        }

        return result;
    }

    private static string Shown(string text) => text.Length <= ShownKeyLength ? text : text[..ShownKeyLength] + "…";

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
