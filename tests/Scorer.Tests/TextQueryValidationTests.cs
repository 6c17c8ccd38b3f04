using Attribution.Contracts;
using Attribution.Engine.Data;

namespace Attribution.Scorer.Tests;

/// <summary>
/// A language-model query as its model reads it (<see cref="QueryValidator.ValidateText"/>): the prompt behind the
/// document start, the completion whose log-likelihood is attributed; everything the model cannot read is rejected with
/// what to fix (the pipeline dead-letters it).
/// </summary>
public sealed class TextQueryValidationTests
{
    private const int Vocab = ByteTokenizer.Size;
    private const int Context = 8;
    private static readonly DateTimeOffset T0 = DateTimeOffset.UnixEpoch;

    private static string Reject(ModelQuery query) =>
        Assert.Throws<QueryRejectedException>(() => QueryValidator.ValidateText(query, ByteTokenizer.Instance, Vocab, Context)).Message;

    [Fact]
    public void Text_and_ids_give_the_same_prompt_behind_the_document_start_and_the_same_completion()
    {
        var text = QueryValidator.ValidateText(ModelQuery.FromText("t", "v", "bytes", "Hi", "!\n", T0), ByteTokenizer.Instance, Vocab, Context);
        var ids = QueryValidator.ValidateText(ModelQuery.FromTokens("i", "v", "bytes", [72, 105], [33, 10], T0), ByteTokenizer.Instance, Vocab, Context);
        Assert.Equal([ByteTokenizer.Bos, 72, 105], text.Prompt);
        Assert.Equal([33, 10], text.Completion);
        Assert.Equal(text.Prompt, ids.Prompt);
        Assert.Equal(text.Completion, ids.Completion);
        // No prompt is the empty prompt: the document start alone predicts the first completion token.
        Assert.Equal([ByteTokenizer.Bos], QueryValidator.ValidateText(ModelQuery.FromText("e", "v", "bytes", null!, "x", T0), ByteTokenizer.Instance, Vocab, Context).Prompt);
    }

    [Fact]
    public void A_missing_unknown_or_foreign_tokenizer_is_rejected_naming_the_models_own()
    {
        Assert.Contains("names no tokenizer; set 'tokenizer' to 'bytes'", Reject(ModelQuery.FromText("a", "v", "bytes", "p", "c", T0) with { Tokenizer = null }), StringComparison.Ordinal);
        Assert.Contains("unknown tokenizer 'llama'; known: bytes, gpt2 (this model reads 'bytes')", Reject(ModelQuery.FromText("a", "v", "llama", "p", "c", T0)), StringComparison.Ordinal);
        Assert.Contains("tokenized for 'gpt2' but this model reads 'bytes'", Reject(ModelQuery.FromTokens("a", "v", "gpt2", [464], [3290], T0)), StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_completion_is_rejected_as_text_and_as_ids()
    {
        Assert.Contains("has an empty completion", Reject(ModelQuery.FromText("a", "v", "bytes", "prompt only", "", T0)), StringComparison.Ordinal);
        Assert.Contains("has an empty completion", Reject(ModelQuery.FromTokens("a", "v", "bytes", [72], [], T0)), StringComparison.Ordinal);
        Assert.Contains("has an empty completion", Reject(new ModelQuery("a", "v", null, [72], T0) { Tokenizer = "bytes" }), StringComparison.Ordinal);
    }

    [Fact]
    public void A_completion_longer_than_the_context_or_a_prompt_the_context_cannot_hold_beside_it_is_rejected()
    {
        Assert.Contains("completion of 9 tokens; this model's context is 8 tokens", Reject(ModelQuery.FromText("a", "v", "bytes", "", "123456789", T0)), StringComparison.Ordinal);
        // The context holds the document start, the prompt and the completion but its last token: 3 + 5 fit in 8 …
        var fits = QueryValidator.ValidateText(ModelQuery.FromText("a", "v", "bytes", "ppp", "12345", T0), ByteTokenizer.Instance, Vocab, Context);
        Assert.Equal(8, fits.Rows(Context).Inputs.Length);
        Assert.Equal([ByteTokenizer.Bos, 112, 112, 112], fits.Prompt);
        // … one more prompt token does not: the query is dead-lettered rather than attributed with a cut prompt.
        var tooLong = Reject(ModelQuery.FromText("a", "v", "bytes", "pppp", "12345", T0));
        Assert.Contains("prompt (4 tokens) and completion (5) do not fit this model's context of 8 tokens", tooLong, StringComparison.Ordinal);
        Assert.Contains("send a shorter prompt (keep its last 3 tokens)", tooLong, StringComparison.Ordinal);
        Assert.Contains("do not fit this model's context", Reject(ModelQuery.FromTokens("a", "v", "bytes", [.. Enumerable.Repeat(112L, 50)], [33], T0)), StringComparison.Ordinal);
    }

    [Fact]
    public void Ids_outside_the_vocabulary_are_rejected_with_their_column_and_position()
    {
        Assert.Contains("completion_token_ids[1] = 259 is outside this model's vocabulary (ids 0..258)", Reject(ModelQuery.FromTokens("a", "v", "bytes", [72], [33, 259], T0)), StringComparison.Ordinal);
        Assert.Contains("token_ids[0] = -1 is outside", Reject(ModelQuery.FromTokens("a", "v", "bytes", [-1], [33], T0)), StringComparison.Ordinal);
        Assert.Contains("token_ids[0] = 9223372036854775807 is outside", Reject(ModelQuery.FromTokens("a", "v", "bytes", [long.MaxValue], [33], T0)), StringComparison.Ordinal);
    }

    [Fact]
    public void A_feature_query_to_a_language_model_is_rejected_saying_what_to_send()
    {
        Assert.Contains("carries features; this model is a language model: send 'prompt' and 'completion'", Reject(new ModelQuery("a", "v", [1f], null, T0)), StringComparison.Ordinal);
    }
}
