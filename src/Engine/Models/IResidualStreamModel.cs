using Attribution.Engine.Autograd;
using Tensor = Attribution.Engine.Tensors.Tensor;

namespace Attribution.Engine.Models;

/// <summary>
/// A model whose hidden layers form a residual stream that the rest of the network reads: the frozen tail from a hidden
/// layer can be run on a (steered) copy of that layer's output. What STRIDE's residual-form operators need
/// (shared/docs/stride.md §3: ẑ_ℓ = z_ℓ + a_k·B(z_ℓ), then the frozen layers ℓ+1 … L and the head).
/// </summary>
public interface IResidualStreamModel : IHiddenStateModel
{
    /// <summary>
    /// Builds the tail on <paramref name="graph"/>: <paramref name="hidden"/> [Count, SequenceLength, width] is taken as
    /// hidden layer <paramref name="layer"/>'s output (what <see cref="IHiddenStateModel.LogitsAndHidden"/> returns for it),
    /// and the layers after it and the head run on it; returns logits [Count, SequenceLength, classes]. With a recording
    /// graph and a <paramref name="hidden"/> that carries a gradient, backward gives its gradient.
    /// </summary>
    Tensor LogitsFrom(Graph graph, Tensor hidden, int layer);
}
