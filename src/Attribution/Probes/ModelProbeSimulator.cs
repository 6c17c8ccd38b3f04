using Attribution.Attribution.Kernels;
using Attribution.Attribution.Methods;
using Attribution.Contracts;

namespace Attribution.Attribution.Probes;

/// <summary>
/// Forward-only probes of any model other than the MLP (a GPT: documents as units), unit by unit, for the Simulator:
/// the simulation is <see cref="ForwardOnlySimulator"/> (what <see cref="ForwardOnlyMethod.Precompute"/> runs) and a
/// unit's floats are <see cref="ResponseSet"/>' factors of its response (what
/// <see cref="ForwardOnlyMethod.ExportState"/> writes), with the same rank and sketch seed. A probe set simulated
/// here and imported into a <see cref="ForwardOnlyMethod"/> therefore scores as the method precomputed offline.
/// Every example has one layout (the options' rank); a source's score is the sum of its examples'. Pure compute.
/// </summary>
public sealed class ModelProbeSimulator
{
    private readonly ForwardOnlySimulator _simulator;
    private readonly ResponseSet _unit;
    private readonly Lock _gate = new();

    /// <summary>Resolves the step size and the linear layers; <paramref name="element"/> is the probes' element type.</summary>
    public ModelProbeSimulator(AttributionProblem problem, ForwardOnlyOptions options, ProbePrecision element, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(options);
        if (problem.HasMlpLayout)
        {
            throw new ArgumentException("an MLP problem is simulated by ForwardOnlySimulator (stacked, probes in ProbeFormat); this class serves the other models.", nameof(problem));
        }

        _unit = new ResponseSet(problem.ParameterCount, ForwardOnlyMethod.LinearLayers(problem), 1, options.Rank, options.Seed);
        Layout = new UnitLayout(problem.Architecture, options.Rank, _unit.Tensors(problem.CreateModel().Tensors), element);
        _simulator = new ForwardOnlySimulator(problem, options, cancellationToken);
    }

    /// <summary>The layout this class gives <paramref name="problem"/>'s units at <paramref name="rank"/>, without simulating.</summary>
    public static UnitLayout LayoutOf(AttributionProblem problem, int rank, ProbePrecision element)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var unit = new ResponseSet(problem.ParameterCount, ForwardOnlyMethod.LinearLayers(problem), 0, rank);
        return new UnitLayout(problem.Architecture, rank, unit.Tensors(problem.CreateModel().Tensors), element);
    }

    /// <summary>The step size η the simulation uses.</summary>
    public float StepSize => _simulator.StepSize;

    /// <summary>Every example's probe layout.</summary>
    public UnitLayout Layout { get; }

    /// <summary>
    /// Simulates the training examples <paramref name="examples"/> (row indices) and hands each one's probe floats to
    /// <paramref name="sink"/> as (position in <paramref name="examples"/>, floats); the buffer is reused: copy what you keep.
    /// </summary>
    public void Simulate(IReadOnlyList<int> examples, Action<int, float[]> sink, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var floats = new float[Layout.FloatsPerUnit];
        _simulator.Simulate(examples, (u, response) =>
        {
            lock (_gate)
            {
                _unit.Set(0, response);
                _unit.GetFactors(0, floats);
                sink(u, floats);
            }
        }, cancellationToken);
    }
}
