namespace Attribution.Engine.Models;

/// <summary>
/// Greedy decoding: the model's own completion of a prompt, one most-likely token at a time (ties: the lowest id). Each
/// step runs <see cref="Gpt.Logits(ReadOnlySpan{int}, int, int)"/> over the last <see cref="GptConfig.Context"/> tokens; no sampling, so the same
/// model and prompt always give the same completion. Optionally no n-gram repeats: a token that would complete an
/// n-gram already present in the prompt or the completion so far is skipped for the next most likely one (the usual
/// guard against a small model's loops, "the server the server"; still deterministic).
/// </summary>
public static class GreedyDecoder
{
    /// <summary>
    /// Up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/> (which starts with the tokenizer's
    /// document start); stops before the first token in <paramref name="stop"/> (e.g. end of document). With
    /// <paramref name="noRepeatNgram"/> = n ≥ 2 no n-gram occurs twice in prompt + completion (0 = plain greedy).
    /// </summary>
    public static int[] Complete(Gpt model, ReadOnlySpan<int> prompt, int maxTokens, ReadOnlySpan<int> stop, int noRepeatNgram = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 0);
        if (noRepeatNgram == 1 || noRepeatNgram < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(noRepeatNgram), noRepeatNgram, "noRepeatNgram must be 0 (off) or at least 2 (a 1-gram ban would forbid every token already used).");
        }

        if (prompt.IsEmpty)
        {
            throw new ArgumentException("The prompt needs at least one token (the document start).", nameof(prompt));
        }

        int context = model.Config.Context, vocab = model.Config.VocabSize;
        var tokens = new List<int>(prompt.Length + maxTokens);
        tokens.AddRange(prompt);
        var completion = new List<int>(maxTokens);
        for (int step = 0; step < maxTokens; step++)
        {
            int window = Math.Min(tokens.Count, context);
            var input = tokens.GetRange(tokens.Count - window, window).ToArray();
            var logits = model.Logits(input, 1, window).AsSpan((window - 1) * vocab, vocab);
            var banned = Banned(tokens, noRepeatNgram);
            int best = -1;
            for (int v = 0; v < vocab; v++)
            {
                if (!banned.Contains(v) && (best < 0 || logits[v] > logits[best]))
                {
                    best = v;
                }
            }

            best = Math.Max(best, 0);

            if (stop.Contains(best))
            {
                break;
            }

            tokens.Add(best);
            completion.Add(best);
        }

        return [.. completion];
    }

    // Tokens that follow an earlier occurrence of the last n − 1 tokens.
    private static HashSet<int> Banned(List<int> tokens, int n)
    {
        var banned = new HashSet<int>();
        if (n < 2 || tokens.Count < n - 1)
        {
            return banned;
        }

        int tail = tokens.Count - (n - 1);
        for (int start = 0; start + n - 1 < tokens.Count; start++)
        {
            bool match = true;
            for (int j = 0; j < n - 1 && match; j++)
            {
                match = tokens[start + j] == tokens[tail + j];
            }

            if (match)
            {
                banned.Add(tokens[start + n - 1]);
            }
        }

        return banned;
    }
}
