using Attribution.Engine.Autograd;
using Attribution.Engine.Data;

namespace Attribution.Engine.Models;

/// <summary>
/// A language-model query: a prompt and a completion, as token ids. The prompt starts with the tokenizer's
/// <see cref="ITokenizer.DocumentStart"/> (as every training document does), so the first completion token is always
/// predicted from at least one position. The output function of a query is <see cref="OutputFunction"/>.
/// </summary>
/// <param name="Prompt">Prompt ids, <see cref="ITokenizer.DocumentStart"/> first; at least one id.</param>
/// <param name="Completion">Completion ids; at least one.</param>
public sealed record CompletionQuery(int[] Prompt, int[] Completion)
{
    /// <summary>What a query's output (its score, gradient, probe readout) is a function of, stated in events.</summary>
    public const string OutputFunction = "completion log-likelihood: sum over the completion tokens of ln p(token | document start, prompt, earlier completion tokens), nats";

    /// <summary>A query from text: <paramref name="prompt"/> after the document-start id, then <paramref name="completion"/>.</summary>
    public static CompletionQuery FromText(ITokenizer tokenizer, string prompt, string completion)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(completion);
        var completionIds = tokenizer.Encode(completion);
        if (completionIds.Length == 0)
        {
            throw new ArgumentException("The completion is empty: a query needs at least one completion token.", nameof(completion));
        }

        return new CompletionQuery([tokenizer.DocumentStart, .. tokenizer.Encode(prompt)], completionIds);
    }

    /// <summary>
    /// The model's input and target rows for this query within <paramref name="context"/> positions: inputs are prompt +
    /// completion without its last token, targets are -1 (ignored) on prompt positions and the completion tokens after.
    /// A prompt too long for the context loses its oldest tokens; a completion that alone exceeds the context is an error.
    /// </summary>
    public (int[] Inputs, int[] Targets) Rows(int context)
    {
        if (Prompt.Length == 0 || Completion.Length == 0)
        {
            throw new ArgumentException("A query needs at least one prompt id (the document start) and one completion id.");
        }

        if (Completion.Length > context)
        {
            throw new ArgumentException($"The completion has {Completion.Length} tokens, more than the model's context of {context}.");
        }

        int keepPrompt = Math.Min(Prompt.Length, context + 1 - Completion.Length);
        var all = Prompt[^keepPrompt..].Concat(Completion).ToArray();
        var inputs = all[..^1];
        var targets = new int[inputs.Length];
        Array.Fill(targets, -1, 0, keepPrompt - 1);
        Completion.CopyTo(targets, keepPrompt - 1);
        return (inputs, targets);
    }

    /// <summary>The completion log-likelihood under <paramref name="model"/> (no gradients).</summary>
    public double LogLikelihood(Gpt model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (inputs, targets) = Rows(model.Config.Context);
        return -(double)model.Loss(inputs, targets, 1, inputs.Length) * Completion.Length;
    }

    /// <summary>
    /// The completion log-likelihood, accumulating its gradient (d log-likelihood / dθ) into every
    /// <see cref="Parameter.Grad"/> of <paramref name="model"/>.
    /// </summary>
    public double LogLikelihoodAndBackward(Gpt model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (inputs, targets) = Rows(model.Config.Context);
        var graph = new Graph();
        var loss = graph.CrossEntropy(model.Forward(graph, inputs, 1, inputs.Length), targets, ignoreIndex: -1);
        double value = -(double)loss.Item() * Completion.Length;
        // The loss is the mean NLL over the completion tokens: the sum of log-probabilities is -count times it.
        graph.Backward(loss, [-(float)Completion.Length]);
        return value;
    }
}
