namespace Attribution.Engine.Models;

/// <summary>
/// Greedy decoding: the model's own completion of a prompt, one most-likely token at a time (ties: the lowest id). Each
/// step runs <see cref="Gpt.Logits"/> over the last <see cref="GptConfig.Context"/> tokens; no sampling, so the same
/// model and prompt always give the same completion.
/// </summary>
public static class GreedyDecoder
{
    /// <summary>
    /// Up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/> (which starts with the tokenizer's
    /// document start); stops before the first token in <paramref name="stop"/> (e.g. end of document).
    /// </summary>
    public static int[] Complete(Gpt model, ReadOnlySpan<int> prompt, int maxTokens, ReadOnlySpan<int> stop)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 0);
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
            int best = 0;
            for (int v = 1; v < vocab; v++)
            {
                if (logits[v] > logits[best])
                {
                    best = v;
                }
            }

            if (stop.Contains(best))
            {
                break;
            }

            tokens.Add(best);
            completion.Add(best);
        }

        return [.. completion];
    }
}
