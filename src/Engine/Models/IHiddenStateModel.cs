namespace Attribution.Engine.Models;

/// <summary>
/// A model that exposes one hidden layer's activation beside its logits in the same forward pass: what an
/// activation-space method (STRIDE's steering operators) reads. A row is one scored position: a classifier example, or
/// one position of a language model's sequence (the logits there predict the next token). Hidden layers are numbered
/// 0.. in forward order.
/// </summary>
public interface IHiddenStateModel : IModel
{
    /// <summary>Number of hidden layers (layers whose output is an activation, not the logits).</summary>
    int HiddenLayerCount { get; }

    /// <summary>
    /// The layer an activation-space method reads when none is chosen: a classifier's last hidden layer; a transformer's
    /// block at about 0.6 of its depth (STRIDE's released operators read block 8 of 12).
    /// </summary>
    int DefaultHiddenLayer { get; }

    /// <summary>Width of hidden layer <paramref name="layer"/>'s output.</summary>
    int HiddenWidth(int layer);

    /// <summary>Number of classes (logits per row: a classifier's classes, a language model's vocabulary).</summary>
    int Classes { get; }

    /// <summary>
    /// One forward pass over <paramref name="batch"/>: the logits [Count·SequenceLength, classes] and the output of hidden
    /// layer <paramref name="layer"/> [Count·SequenceLength, width] as the next layer reads it (a classifier's
    /// post-activation; a transformer block's residual stream), row r = example r / SequenceLength, position
    /// r % SequenceLength.
    /// </summary>
    void LogitsAndHidden(in ModelBatch batch, int layer, Span<float> logits, Span<float> hidden);
}
