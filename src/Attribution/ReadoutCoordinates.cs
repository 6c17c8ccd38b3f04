using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Attribution;

/// <summary>The parameter coordinates a stored response covers: the weights and biases of its linear layers.</summary>
internal static class ReadoutCoordinates
{
    /// <summary>A mask over the model's parameters and the covered coordinates' indices in parameter order.</summary>
    public static (bool[] Mask, int[] Indices) Of(IModel probe, IReadOnlyList<Contracts.ProbeTensor> tensors)
    {
        var (layers, _) = ResponseSet.LayersOf(tensors, probe.Tensors);
        var mask = new bool[probe.ParameterCount];
        foreach (var l in layers)
        {
            mask.AsSpan(l.WeightOffset, l.Out * l.In).Fill(true);
            if (l.BiasOffset >= 0)
            {
                mask.AsSpan(l.BiasOffset, l.Out).Fill(true);
            }
        }

        var indices = new int[mask.Count(m => m)];
        for (int i = 0, j = 0; i < mask.Length; i++)
        {
            if (mask[i])
            {
                indices[j++] = i;
            }
        }

        return (mask, indices);
    }
}
