using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Forward-only's probe-set state for any model: the example and source <see cref="ResponseSet"/>s as named tensor
/// blocks (<see cref="ResponseSet.Tensors"/> named after the model's tensors, one <see cref="ResponseSet.GetFactors"/>
/// block per unit) and back.
/// </summary>
public static class ForwardOnlyState
{
    /// <summary>The state of <paramref name="examples"/> and <paramref name="sources"/>, responses of <paramref name="model"/>'s parameters.</summary>
    public static ProbeSetState Export(IModel model, ResponseSet examples, ResponseSet sources)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(sources);
        return new ProbeSetState
        {
            Architecture = model.Architecture,
            ExampleTensors = examples.Tensors(model.Tensors),
            Examples = Blocks(examples),
            SourceTensors = sources.Tensors(model.Tensors),
            Sources = Blocks(sources),
        };
    }

    /// <summary>A response set rebuilt from one subject's tensors and blocks (no SVD); throws <see cref="ArgumentException"/> when a tensor is not the model's.</summary>
    public static ResponseSet Load(IModel model, IReadOnlyList<Contracts.ProbeTensor> tensors, IReadOnlyList<float[]> blocks, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(blocks);
        var (layers, ranks) = ResponseSet.LayersOf(tensors, model.Tensors);
        var set = new ResponseSet(model.ParameterCount, layers, blocks.Count, ranks, seed);
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
