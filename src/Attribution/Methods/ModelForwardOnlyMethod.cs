using System.Globalization;
using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Forward-only simulated influence for any <see cref="IModel"/> (a GPT with documents as units; the MLP has its own
/// stacked path, <see cref="ForwardOnlyMethod"/>, which hands non-MLP problems to this class). Precompute simulates
/// every unit's response through the model (<see cref="ModelSimulator"/>) and every source's (simulated as one unit, or
/// the sum of its units' responses) and keeps them as compact per-layer low-rank probes over the model's linear layers
/// (<see cref="ResponseSet"/>). Scoring reads all units at once: the queries' per-position layer inputs and output
/// sensitivities (the model's <see cref="IModel.PerExampleGradients"/> of the query output, e.g. the completion
/// log-likelihood) contracted with every unit's factors, <c>s(q, u) = ∂f_q(θ* + t r_u)/∂t</c> (positive = helpful);
/// or, as the reference, two forward passes per unit (<see cref="ForwardReadout.FiniteDifference"/>).
/// </summary>
public sealed class ModelForwardOnlyMethod : IProbeSetMethod
{
    private readonly ForwardOnlyOptions _options;
    private AttributionProblem? _problem; // set by Precompute (null after ImportState)
    private ServedModel? _served; // what scoring reads: set by Precompute or ImportState
    private string? _architecture;
    private ResponseSet? _examples;
    private ResponseSet? _sources;

    /// <summary>Creates the method; <paramref name="options"/> null uses the defaults.</summary>
    public ModelForwardOnlyMethod(ForwardOnlyOptions? options = null)
    {
        _options = options ?? new ForwardOnlyOptions();
        _options.Validate();
    }

    /// <inheritdoc />
    public string Name => _options.TwoTrajectory ? "forward-only" : "forward-only-single";

    /// <summary>Step size used by the simulation (after Precompute).</summary>
    public float StepSize { get; private set; }

    /// <summary>|h_max| estimated by power iteration (0 when the step size was given).</summary>
    public double TopEigenvalue { get; private set; }

    /// <summary>Per-unit responses (after Precompute).</summary>
    public ResponseSet ExampleResponses => _examples ?? throw NotReady();

    /// <summary>Per-source responses (after Precompute).</summary>
    public ResponseSet SourceResponses => _sources ?? throw NotReady();

    /// <inheritdoc />
    public long StateBytes => (_examples?.Bytes ?? 0) + (_sources?.Bytes ?? 0);

    /// <inheritdoc />
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} (model-generic, {_architecture ?? "not precomputed"}): K={_options.Horizon}, eps={_options.Epsilon:G3}, eta={(StepSize > 0 ? StepSize.ToString("G4", CultureInfo.InvariantCulture) : "1/h_max")}, lambda={_options.Damping:G3}, batch={_options.BatchSize}, seed={_options.Seed}, rank={(_options.Rank == 0 ? "full" : _options.Rank.ToString(CultureInfo.InvariantCulture))} over the linear layers, sources={_options.Sources}, readout={_options.Readout}{(_options.Propagation == ForwardPropagation.Spectral ? $", propagation=spectral (operator rank {_options.OperatorRank}, sample {_options.OperatorSample})" : "")}");

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var simulator = new ModelSimulator(problem, _options, cancellationToken);
        StepSize = simulator.StepSize;
        TopEigenvalue = simulator.TopEigenvalue;
        int n = problem.Count, m = problem.SourceCount, p = problem.ParameterCount;
        var layers = LinearLayers(problem);
        var examples = new ResponseSet(p, layers, n, _options.Rank, _options.Seed);
        var sources = new ResponseSet(p, layers, m, _options.Rank, _options.Seed);
        var members = new List<int>[m];
        for (int s = 0; s < m; s++)
        {
            members[s] = [];
        }

        for (int i = 0; i < n; i++)
        {
            members[problem.SourceIds[i]].Add(i);
        }

        var sums = _options.Sources == SourceResponse.SumOfExamples ? new float[m][] : null;
        simulator.Simulate(Enumerable.Range(0, n).Select(i => new[] { i }).ToArray(), (u, r) =>
        {
            examples.Set(u, r);
            if (sums is not null)
            {
                var sum = sums[problem.SourceIds[u]] ??= new float[p];
                System.Numerics.Tensors.TensorPrimitives.Add(sum, r, sum);
            }
        }, cancellationToken);
        if (sums is not null)
        {
            for (int s = 0; s < m; s++)
            {
                sources.Set(s, sums[s] ?? new float[p]);
            }
        }
        else
        {
            simulator.Simulate(members.Select(x => x.ToArray()).ToArray(), (s, r) => sources.Set(s, r), cancellationToken);
        }

        _problem = problem;
        _served = ServedModel.Of(problem);
        _architecture = problem.Architecture;
        _examples = examples;
        _sources = sources;
    }

    /// <inheritdoc />
    public ProbeSetState ExportState()
    {
        var examples = ExampleResponses;
        var sources = SourceResponses;
        return ForwardOnlyState.Export(_served!.CreateModel(), examples, sources);
    }

    /// <inheritdoc />
    public void ImportState(ServedModel model, ProbeSetState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(state);
        state.Validate();
        var probe = model.CreateModel();
        if (probe.Architecture != state.Architecture)
        {
            throw new ArgumentException($"the state is of {state.Architecture}; the served model is {probe.Architecture}.", nameof(state));
        }

        if (model.Theta.Length != probe.ParameterCount || state.Examples.Count != model.ExampleSources.Length || state.Sources.Count != model.SourceCount
            || state.Shared.Count != 0 || model.ExampleSources.Any(s => (uint)s >= (uint)model.SourceCount))
        {
            throw new ArgumentException($"a {Name} state of {state.Examples.Count} example and {state.Sources.Count} source units ({state.Shared.Count} shared tensors; it has none) does not fit a served model with θ of {model.Theta.Length} values ({probe.ParameterCount} expected), {model.ExampleSources.Length} examples and {model.SourceCount} sources.", nameof(state));
        }

        _examples = ForwardOnlyState.Load(probe, state.ExampleTensors, state.Examples, _options.Seed);
        _sources = ForwardOnlyState.Load(probe, state.SourceTensors, state.Sources, _options.Seed);
        _problem = null;
        _served = model;
        _architecture = state.Architecture;
        StepSize = 0;
        TopEigenvalue = 0;
    }

    /// <summary>The model's linear layers (offsets and shapes) a probe covers, from the model's own factors of one training row.</summary>
    public static IReadOnlyList<LinearFactors> LinearLayers(AttributionProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return problem.CreateModel().PerExampleGradients(ModelSimulator.Select(problem.Training, problem.Count > 0 ? [0] : []), ModelOutput.Loss).Layers;
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default) => ScoreAll(queries, cancellationToken).Examples;

    /// <inheritdoc />
    public float[] ScoreSources(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var served = _served ?? throw NotReady();
        _problem?.CheckQueries(queries);
        var sources = new float[(long)queries.Count * SourceResponses.Units];
        Read(served, queries, _options.Readout == ForwardReadout.Jacobian ? Factors(served, queries) : null, SourceResponses, sources, cancellationToken);
        return sources;
    }

    /// <summary>Scores a batch against every unit and every source; the queries' factors are computed once for both.</summary>
    public (ScoreMatrix Examples, float[] Sources) ScoreAll(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var served = _served ?? throw NotReady();
        _problem?.CheckQueries(queries);
        var factors = _options.Readout == ForwardReadout.Jacobian ? Factors(served, queries) : null;
        var examples = new float[(long)queries.Count * ExampleResponses.Units];
        var sources = new float[(long)queries.Count * SourceResponses.Units];
        Read(served, queries, factors, ExampleResponses, examples, cancellationToken);
        Read(served, queries, factors, SourceResponses, sources, cancellationToken);
        return (new ScoreMatrix(examples, queries.Count, served.ExampleSources.Length, served.ExampleSources, served.SourceCount), sources);
    }

    private static GradientFactors? Factors(ServedModel served, QueryBatch queries) =>
        queries.Count == 0 ? null : Model(served).PerExampleGradients(queries.Batch, queries.Output);

    private static IModel Model(ServedModel served)
    {
        var model = served.CreateModel();
        model.LoadFrom(served.Theta);
        return model;
    }

    private void Read(ServedModel served, QueryBatch queries, GradientFactors? factors, ResponseSet set, float[] scores, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (queries.Count == 0)
        {
            return;
        }

        if (factors is not null)
        {
            set.JacobianScores(factors, scores);
            return;
        }

        ForwardOnlyReadout.FiniteDifference(served.CreateModel(), served.Theta, queries, set, _options.ReadoutEpsilon ?? _options.Epsilon, scores, cancellationToken);
    }

    private static InvalidOperationException NotReady() => new("Call Precompute before scoring.");
}
