using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Forward-only's probe-set state for any model: the example <see cref="ResponseSet"/> as named tensor
/// blocks (<see cref="ResponseSet.Tensors"/> named after the model's tensors, one <see cref="ResponseSet.GetFactors"/>
/// block per unit) and back.
/// </summary>
public static class ForwardOnlyState
{
    /// <summary>
    /// The state of <paramref name="examples"/>, responses of <paramref name="model"/>'s parameters. It has no source
    /// units: a source's score is the sum of its examples' scores.
    /// </summary>
    public static ProbeSetState Export(IModel model, ResponseSet examples)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(examples);
        return new ProbeSetState
        {
            Architecture = model.Architecture,
            ExampleTensors = examples.Tensors(model.Tensors),
            Examples = Blocks(examples),
            SourceTensors = [],
            Sources = [],
            Shared = examples.DirectionTensors(model.Tensors),
        };
    }

    /// <summary>
    /// A response set rebuilt from one subject's tensors and blocks (no SVD) and the state's shared tensors (the shared
    /// directions, <see cref="ResponseSet.DirectionTensors"/>, when the blocks carry coefficients on them, and nothing
    /// else); throws <see cref="ArgumentException"/> when a tensor is not the model's.
    /// </summary>
    public static ResponseSet Load(IModel model, IReadOnlyList<Contracts.ProbeTensor> tensors, IReadOnlyList<float[]> blocks, IReadOnlyList<StateTensor> shared, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(shared);
        var (layers, ranks) = ResponseSet.LayersOf(tensors, model.Tensors);
        int m = ResponseSet.DirectionCountOf(tensors);
        var directions = ResponseSet.DirectionsFrom(shared, layers, m, model.ParameterCount, model.Tensors);
        var set = new ResponseSet(model.ParameterCount, layers, blocks.Count, ranks, directions, m, seed);
        for (int u = 0; u < blocks.Count; u++)
        {
            set.SetFactors(u, blocks[u]);
        }

        return set;
    }

    private static float[][] Blocks(ResponseSet set)
    {
        var blocks = new float[set.Units][];
        for (int u = 0; u < blocks.Length; u++)
        {
            set.GetFactors(u, blocks[u] = new float[set.FloatsPerUnit]);
        }

        return blocks;
    }
}
