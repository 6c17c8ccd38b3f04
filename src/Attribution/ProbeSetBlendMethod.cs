using Attribution.Contracts;

namespace Attribution.Attribution;

/// <summary>
/// A <see cref="BlendMethod"/> of two probe-set methods, itself a probe-set method: its state is the parts' probe sets
/// side by side (tensor names prefixed <c>0/</c> and <c>1/</c>), so a deployment serves the blend at a fixed weight
/// (<c>stride:combine=blend,combine-weight=w</c>).
/// </summary>
public sealed class ProbeSetBlendMethod : BlendMethod, IProbeSetMethod
{
    private const string SourcesTensor = "blend.sources";

    /// <summary>A blend of two probe-set methods (see <see cref="BlendMethod(IAttributionMethod, IAttributionMethod, double?, IReadOnlyList{double}?, BlendScale)"/>).</summary>
    public ProbeSetBlendMethod(IProbeSetMethod first, IProbeSetMethod second, double? weight, IReadOnlyList<double>? grid = null, BlendScale scale = BlendScale.Standardise)
        : base(first, second, weight, grid, scale)
    {
    }

    private new IProbeSetMethod First => (IProbeSetMethod)base.First;

    private new IProbeSetMethod Second => (IProbeSetMethod)base.Second;

    /// <summary>
    /// The parts' states side by side: example (and source) blocks are the first part's floats then the second's, tensor
    /// names prefixed <c>0/</c> and <c>1/</c>; shared tensors likewise, plus <c>blend.sources</c> [1, 2] saying which part
    /// has source blocks. The weight is not in the state: it is the served spec's option.
    /// </summary>
    public ProbeSetState ExportState()
    {
        _ = Served ?? throw NotReady();
        var (a, b) = (First.ExportState(), Second.ExportState());
        if (a.Architecture != b.Architecture || a.Examples.Count != b.Examples.Count)
        {
            throw new InvalidOperationException($"blend parts export different states ({a.Architecture}, {a.Examples.Count} examples vs {b.Architecture}, {b.Examples.Count}).");
        }

        int sources = Math.Max(a.Sources.Count, b.Sources.Count);
        return new ProbeSetState
        {
            Architecture = a.Architecture,
            ExampleTensors = [.. Prefixed(a.ExampleTensors, 0), .. Prefixed(b.ExampleTensors, 1)],
            Examples = [.. a.Examples.Select((block, i) => (float[])[.. block, .. b.Examples[i]])],
            SourceTensors = [.. Prefixed(a.SourceTensors, 0), .. Prefixed(b.SourceTensors, 1)],
            Sources = [.. Enumerable.Range(0, sources).Select(s => (float[])[.. a.Sources.Count > 0 ? a.Sources[s] : [], .. b.Sources.Count > 0 ? b.Sources[s] : []])],
            Shared =
            [
                .. a.Shared.Select(t => t with { Layout = Prefixed(t.Layout, 0) }),
                .. b.Shared.Select(t => t with { Layout = Prefixed(t.Layout, 1) }),
                new StateTensor(new ProbeTensor(SourcesTensor, 1, 2, 0), [a.Sources.Count > 0 ? 1f : 0f, b.Sources.Count > 0 ? 1f : 0f]),
            ],
        };
    }

    /// <inheritdoc />
    public void ImportState(ServedModel model, ProbeSetState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(state);
        state.Validate();
        var flags = state.Shared.SingleOrDefault(t => t.Layout is { Name: SourcesTensor, Rows: 1, Cols: 2, Rank: 0 })
            ?? throw new ArgumentException($"{Name}: the state has no '{SourcesTensor}' tensor; it is not a blend's state (serve the method the Simulator publishes).");
        First.ImportState(model, Part(state, 0, flags.Values[0] == 1f));
        Second.ImportState(model, Part(state, 1, flags.Values[1] == 1f));
        Served = model;
    }

    private static ProbeSetState Part(ProbeSetState state, int part, bool hasSources)
    {
        var prefix = $"{part}/";
        var (exampleTensors, exampleOffset) = Slice(state.ExampleTensors, prefix, "example");
        var (sourceTensors, sourceOffset) = Slice(state.SourceTensors, prefix, "source");
        long exampleFloats = ProbeSetState.FloatsPerUnit(exampleTensors), sourceFloats = ProbeSetState.FloatsPerUnit(sourceTensors);
        return new ProbeSetState
        {
            Architecture = state.Architecture,
            ExampleTensors = [.. exampleTensors.Select(t => t with { Name = t.Name[prefix.Length..] })],
            Examples = [.. state.Examples.Select(b => b.AsSpan((int)exampleOffset, (int)exampleFloats).ToArray())],
            SourceTensors = [.. sourceTensors.Select(t => t with { Name = t.Name[prefix.Length..] })],
            Sources = hasSources ? [.. state.Sources.Select(b => b.AsSpan((int)sourceOffset, (int)sourceFloats).ToArray())] : [],
            Shared = [.. state.Shared.Where(t => t.Layout.Name.StartsWith(prefix, StringComparison.Ordinal)).Select(t => t with { Layout = t.Layout with { Name = t.Layout.Name[prefix.Length..] } })],
        };
    }

    // The tensors of one part (contiguous, in order) and the float offset of the first in a unit block.
    private static (ProbeTensor[] Tensors, long Offset) Slice(IReadOnlyList<ProbeTensor> tensors, string prefix, string subject)
    {
        var mine = tensors.Select((t, i) => (t, i)).Where(p => p.t.Name.StartsWith(prefix, StringComparison.Ordinal)).ToArray();
        if (mine.Length > 0 && mine[^1].i - mine[0].i != mine.Length - 1)
        {
            throw new ArgumentException($"blend state: the {subject} tensors of part {prefix} are not contiguous.");
        }

        long offset = mine.Length == 0 ? 0 : ProbeSetState.FloatsPerUnit([.. tensors.Take(mine[0].i)]);
        return ([.. mine.Select(p => p.t)], offset);
    }

    private static IEnumerable<ProbeTensor> Prefixed(IEnumerable<ProbeTensor> tensors, int part) => tensors.Select(t => Prefixed(t, part));

    private static ProbeTensor Prefixed(ProbeTensor t, int part) => t with { Name = $"{part}/{t.Name}" };
}
