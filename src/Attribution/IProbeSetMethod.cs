using Attribution.Contracts;
using Attribution.Engine.Models;

namespace Attribution.Attribution;

/// <summary>A named tensor of a method's shared (not per-unit) state, laid out as <see cref="Layout"/> says.</summary>
/// <param name="Layout">Name, rows, columns and rank (0 = full row-major; r &gt; 0 = U [rows, r] then Vt [r, cols]).</param>
/// <param name="Values">The tensor's <see cref="ProbeTensor.FactorCount"/> values.</param>
public sealed record StateTensor(ProbeTensor Layout, float[] Values);

/// <summary>
/// A method's precomputed state as named tensors: what a probe set carries (one block of floats per example unit and
/// per source unit, every block of a subject laid out by the same tensor list) plus tensors shared by all units. The
/// Simulator publishes it as <see cref="InfluenceProbe"/> events; the Scorer rebuilds the method from it
/// (<see cref="IProbeSetMethod.ImportState"/>) and scores with the very object <c>attribute</c> and <c>eval</c> use.
/// </summary>
public sealed class ProbeSetState
{
    /// <summary>The model's architecture string (<see cref="IModel.Architecture"/>).</summary>
    public required string Architecture { get; init; }

    /// <summary>The tensors of every example unit's block, in order.</summary>
    public required IReadOnlyList<ProbeTensor> ExampleTensors { get; init; }

    /// <summary>One block per example unit (Σ <see cref="ProbeTensor.FactorCount"/> of <see cref="ExampleTensors"/> floats each).</summary>
    public required IReadOnlyList<float[]> Examples { get; init; }

    /// <summary>The tensors of every source unit's block.</summary>
    public required IReadOnlyList<ProbeTensor> SourceTensors { get; init; }

    /// <summary>One block per source unit, sources in index order.</summary>
    public required IReadOnlyList<float[]> Sources { get; init; }

    /// <summary>Tensors shared by every unit (e.g. an operator's matrices); empty for forward-only.</summary>
    public IReadOnlyList<StateTensor> Shared { get; init; } = [];

    /// <summary>
    /// The same state with its example blocks repeated <paramref name="factor"/> times (blocks shared, not copied): a
    /// probe set of factor·n examples for measuring cost against n without simulating more.
    /// </summary>
    public ProbeSetState WithExamplesRepeated(int factor)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(factor, 1);
        return new ProbeSetState
        {
            Architecture = Architecture,
            ExampleTensors = ExampleTensors,
            Examples = [.. Enumerable.Repeat(Examples, factor).SelectMany(b => b)],
            SourceTensors = SourceTensors,
            Sources = Sources,
            Shared = Shared,
        };
    }

    /// <summary>Floats in one unit block of <paramref name="tensors"/>.</summary>
    public static long FloatsPerUnit(IReadOnlyList<ProbeTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return tensors.Sum(t => t.FactorCount);
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless every block has its tensors' size (what to fix in the message).</summary>
    public void Validate()
    {
        Check("example", ExampleTensors, Examples);
        Check("source", SourceTensors, Sources);
        foreach (var s in Shared)
        {
            if (s.Values.Length != s.Layout.FactorCount)
            {
                throw new ArgumentException($"shared tensor '{s.Layout.Name}' has {s.Values.Length} values; {s.Layout.Rows}x{s.Layout.Cols} at rank {s.Layout.Rank} needs {s.Layout.FactorCount}.");
            }
        }
    }

    private static void Check(string subject, IReadOnlyList<ProbeTensor> tensors, IReadOnlyList<float[]> blocks)
    {
        long floats = FloatsPerUnit(tensors);
        for (int u = 0; u < blocks.Count; u++)
        {
            if (blocks[u] is null || blocks[u].Length != floats)
            {
                throw new ArgumentException($"{subject} unit {u} has {blocks[u]?.Length ?? 0} floats; its tensors need {floats}.");
            }
        }
    }
}

/// <summary>
/// What scoring needs besides a method's state, with no training data: the model at the checkpoint and which source
/// each example unit belongs to.
/// </summary>
/// <param name="CreateModel">A fresh model of the trained architecture (its parameters are overwritten).</param>
/// <param name="Theta">The checkpoint's parameters θ*.</param>
/// <param name="ExampleSources">The source index (0..<paramref name="SourceCount"/>−1) of every example unit, in unit order.</param>
/// <param name="SourceCount">Number of source units.</param>
public sealed record ServedModel(Func<IModel> CreateModel, float[] Theta, int[] ExampleSources, int SourceCount)
{
    /// <summary>The serving form of a problem (its model, θ* and sources; the training rows are not needed).</summary>
    public static ServedModel Of(AttributionProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return new ServedModel(() => problem.CreateModel(), problem.Theta, problem.SourceIds, problem.SourceCount);
    }
}

/// <summary>
/// A method whose precomputed state travels as a probe set: it exports its per-unit and shared state as named tensors
/// (<see cref="ExportState"/>, after <see cref="IAttributionMethod.Precompute"/>) and rebuilds a ready-to-score method
/// from them (<see cref="ImportState"/>, instead of Precompute). A method object created with the same options,
/// imported from an exported state, scores exactly as the one that precomputed it.
/// </summary>
public interface IProbeSetMethod : IAttributionMethod
{
    /// <summary>The precomputed state as named tensors. Requires Precompute (or ImportState).</summary>
    ProbeSetState ExportState();

    /// <summary>Makes the method ready to score from <paramref name="state"/> and the served model (no training data).</summary>
    /// <exception cref="ArgumentException">The state does not fit this method, its options or the model (says what differs).</exception>
    void ImportState(ServedModel model, ProbeSetState state);
}
