namespace Attribution.Engine.Models;

/// <summary>
/// A classifier that exposes one hidden layer's activation beside its logits in the same forward pass: what an
/// activation-space method (STRIDE's steering operators) reads. Hidden layers are numbered 0.. in forward order.
/// </summary>
public interface IHiddenStateModel : IModel
{
    /// <summary>Number of hidden layers (layers whose output is an activation, not the logits).</summary>
    int HiddenLayerCount { get; }

    /// <summary>Width of hidden layer <paramref name="layer"/>'s output.</summary>
    int HiddenWidth(int layer);

    /// <summary>Number of classes (logits per example).</summary>
    int Classes { get; }

    /// <summary>
    /// One forward pass over <paramref name="batch"/> rows of <paramref name="inputs"/>: the logits [batch, classes] and
    /// the output of hidden layer <paramref name="layer"/> [batch, width] as the next layer reads it (post-activation).
    /// </summary>
    void LogitsAndHidden(ReadOnlySpan<float> inputs, int batch, int layer, Span<float> logits, Span<float> hidden);
}
