using Attribution.Engine.Models;

namespace Attribution.Engine.Tests;

/// <summary>Greedy decoding picks the most likely next token at every step, over the last context window, and stops before a stop token.</summary>
public sealed class GreedyDecoderTests
{
    private static readonly GptConfig Config = new(VocabSize: 20, Context: 6, DModel: 8, Heads: 2, Layers: 1);

    private static int Argmax(Gpt model, int[] tokens)
    {
        int window = Math.Min(tokens.Length, Config.Context);
        var logits = model.Logits(tokens[^window..], 1, window).AsSpan((window - 1) * Config.VocabSize, Config.VocabSize);
        int best = 0;
        for (int v = 1; v < logits.Length; v++)
        {
            best = logits[v] > logits[best] ? v : best;
        }

        return best;
    }

    [Fact]
    public void Every_token_is_the_argmax_given_the_prompt_and_the_tokens_before_it_even_past_the_context()
    {
        var model = new Gpt(Config, seed: 11);
        int[] prompt = [1, 2, 3];
        var completion = GreedyDecoder.Complete(model, prompt, maxTokens: 9, stop: []);
        Assert.Equal(9, completion.Length); // 3 + 9 tokens: the last steps see only the newest 6
        var seen = prompt.ToList();
        foreach (var t in completion)
        {
            Assert.Equal(Argmax(model, [.. seen]), t);
            seen.Add(t);
        }
    }

    [Fact]
    public void Decoding_stops_before_a_stop_token()
    {
        var model = new Gpt(Config, seed: 11);
        int first = Argmax(model, [1, 2, 3]);
        Assert.Empty(GreedyDecoder.Complete(model, [1, 2, 3], maxTokens: 5, stop: [first]));
        Assert.Throws<ArgumentException>(() => GreedyDecoder.Complete(model, [], 5, []));
    }

    [Fact]
    public void With_no_repeat_ngrams_no_ngram_occurs_twice_and_each_token_is_the_best_allowed_one()
    {
        var model = new Gpt(Config, seed: 11);
        int[] prompt = [1, 2, 3];
        var plain = GreedyDecoder.Complete(model, prompt, maxTokens: 30, stop: []);
        var guarded = GreedyDecoder.Complete(model, prompt, maxTokens: 30, stop: [], noRepeatNgram: 2);
        int[] all = [.. prompt, .. guarded];
        var pairs = Enumerable.Range(0, all.Length - 1).Select(i => (all[i], all[i + 1])).ToList();
        Assert.Equal(pairs.Count, pairs.Distinct().Count());

        // A random 20-token model loops within 30 greedy steps (some bigram repeats), so the guard changed something.
        int[] loop = [.. prompt, .. plain];
        Assert.NotEqual(loop.Length - 1, Enumerable.Range(0, loop.Length - 1).Select(i => (loop[i], loop[i + 1])).Distinct().Count());

        // Every token is the most likely one among those not completing an earlier bigram.
        var seen = prompt.ToList();
        foreach (var t in guarded)
        {
            int window = Math.Min(seen.Count, Config.Context);
            var logits = model.Logits([.. seen.TakeLast(window)], 1, window).AsSpan((window - 1) * Config.VocabSize, Config.VocabSize);
            var banned = Enumerable.Range(0, seen.Count - 1).Where(i => seen[i] == seen[^1]).Select(i => seen[i + 1]).ToHashSet();
            Assert.DoesNotContain(t, banned);
            for (int v = 0; v < Config.VocabSize; v++)
            {
                Assert.True(banned.Contains(v) || logits[v] <= logits[t], $"token {v} was allowed and more likely than {t}");
            }

            seen.Add(t);
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => GreedyDecoder.Complete(model, prompt, 5, [], noRepeatNgram: 1));
    }
}
