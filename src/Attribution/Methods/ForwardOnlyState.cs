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
            Shared = examples.DirectionCount == 0 ? []
                : [new StateTensor(new Contracts.ProbeTensor(ResponseSet.DirectionsTensor, examples.DirectionCount, examples.ParameterCount, 0), examples.Directions())],
        };
    }

    /// <summary>
    /// A response set rebuilt from one subject's tensors and blocks (no SVD) and the state's shared tensors (the shared
    /// directions, <see cref="ResponseSet.DirectionsTensor"/> [m, p], when the blocks carry coefficients on them, and
    /// nothing else); throws <see cref="ArgumentException"/> when a tensor is not the model's.
    /// </summary>
    public static ResponseSet Load(IModel model, IReadOnlyList<Contracts.ProbeTensor> tensors, IReadOnlyList<float[]> blocks, IReadOnlyList<StateTensor> shared, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(shared);
        var (layers, ranks) = ResponseSet.LayersOf(tensors, model.Tensors);
        int m = ResponseSet.DirectionCountOf(tensors);
        var directions = shared.Where(t => t.Layout.Name == ResponseSet.DirectionsTensor).ToArray();
        if (shared.Count != directions.Length || directions.Length > 1 || (m > 0) != (directions.Length == 1)
            || (m > 0 && directions[0].Layout is var d && (d.Rows != m || d.Cols != model.ParameterCount || d.Rank != 0)))
        {
            throw new ArgumentException($"a forward-only state's units carry coefficients on {m} shared directions, and its shared tensors must then be exactly '{ResponseSet.DirectionsTensor}' [{m}x{model.ParameterCount}] in full (none when m = 0); it has {(shared.Count == 0 ? "none" : string.Join(", ", shared.Select(t => $"'{t.Layout.Name}' [{t.Layout.Rows}x{t.Layout.Cols}] rank {t.Layout.Rank}")))}. Re-simulate the probe set with this build.");
        }

        var set = new ResponseSet(model.ParameterCount, layers, blocks.Count, ranks, m > 0 ? directions[0].Values : [], m, seed);
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
