using System.Collections.Concurrent;
using System.Globalization;
using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Forward-only simulated influence (Ma &amp; Nyarko 2025; docs/forward-only-attribution.md) for any model (the MLP, a
/// GPT with documents as units). Precompute simulates each training unit's response
/// <c>r_b ≈ −H_λ⁻¹[I − (I − ηH_λ)^K] ∇ℓ_b</c> (<see cref="ForwardOnlySimulator"/>) and every source's (simulated as
/// one unit, or the sum of its units' responses), and keeps them as per-layer factors over the model's linear layers
/// (<see cref="ResponseSet"/>: examples at the options' rank, sources in full when the linear layers are the whole
/// model). Scoring is forward-only: the directional derivative of each query's output along every response,
/// <c>s(q, b) = ∂f_q(θ* + t r_b)/∂t</c> (positive = helpful), from the model's forward-mode gradient factors of the
/// queries (<see cref="IModel.ForwardModeGradients"/>), or by the two-forward-pass finite difference
/// (<see cref="ForwardOnlyReadout"/>). The same object scores in attribute, eval and the Scorer (built from a probe set
/// by <see cref="ImportState"/>).
/// </summary>
public sealed class ForwardOnlyMethod : IProbeSetMethod, IPreparedScoring
{
    private readonly ForwardOnlyOptions _options;
    private AttributionProblem? _problem; // set by Precompute (null when served from responses or a probe set)
    private ServedModel? _served; // what scoring reads
    private string? _architecture;
    private int _inputWidth; // the float input width a served classifier takes (0: not checked)
    private ResponseSet? _examples;
    private ForwardPropagation? _propagation; // what the last Precompute used (the options', or the model's default)
    private ResponseSetReadout? _readout;
    private readonly ConcurrentBag<IModel> _models = [];

    /// <summary>Creates the method; <paramref name="options"/> null uses the defaults (two-trajectory).</summary>
    public ForwardOnlyMethod(ForwardOnlyOptions? options = null)
    {
        _options = options ?? new ForwardOnlyOptions();
        _options.Validate();
    }

    /// <summary>
    /// Builds a ready-to-score method from responses simulated elsewhere (e.g. <c>attribute --probes</c> reading a probe
    /// file). <paramref name="examples"/> has one unit per training example.
    /// </summary>
    public static ForwardOnlyMethod FromResponses(AttributionProblem problem, ResponseSet examples, ForwardOnlyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Units != problem.Count || examples.ParameterCount != problem.ParameterCount)
        {
            throw new ArgumentException($"responses for {examples.Units} examples of {examples.ParameterCount} parameters do not match a problem of {problem.Count} examples and {problem.ParameterCount} parameters.");
        }

        var method = new ForwardOnlyMethod(options);
        method.Serve(problem, ServedModel.Of(problem), problem.Architecture, examples);
        return method;
    }

    /// <summary>
    /// The serving form for an MLP: a method built from a probe set (the model's θ and every example's response), with
    /// no training data. <paramref name="exampleSources"/> gives each example's source in [0, <paramref name="sourceCount"/>):
    /// a source's score is the sum of its examples' scores (<see cref="ScoreMatrix.SourceScores"/>).
    /// <see cref="ScoreAll"/> is the Scorer's scoring.
    /// </summary>
    public static ForwardOnlyMethod FromResponses(MlpLayout layout, float[] theta, ResponseSet examples, int[] exampleSources, int sourceCount, ForwardOnlyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(theta);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(exampleSources);
        if (theta.Length != layout.ParameterCount || examples.ParameterCount != layout.ParameterCount)
        {
            throw new ArgumentException($"θ ({theta.Length}) and the responses ({examples.ParameterCount}) must both have the {layout.ParameterCount} parameters of {string.Join('-', layout.Widths)}.");
        }

        if (exampleSources.Length != examples.Units || exampleSources.Any(s => (uint)s >= (uint)sourceCount))
        {
            throw new ArgumentException($"{exampleSources.Length} example sources for {examples.Units} examples; each must be in [0, {sourceCount}).", nameof(exampleSources));
        }

        var method = new ForwardOnlyMethod(options);
        var mlp = new Mlp(layout);
        method.Serve(null, new ServedModel(() => new Mlp(layout), theta, exampleSources, sourceCount), mlp.Architecture, examples);
        return method;
    }

    // Makes the method score from these sets (the input basis applied as the options say).
    private void Serve(AttributionProblem? problem, ServedModel served, string architecture, ResponseSet examples)
    {
        _problem = problem;
        _served = served;
        _architecture = architecture;
        _inputWidth = examples.Layers.Count > 0 && architecture.StartsWith("mlp:", StringComparison.Ordinal) ? examples.Layers[0].In : 0;
        _examples = examples;
        _readout = new ResponseSetReadout(examples, served, _options.Readout == ForwardReadout.FiniteDifference ? _options.ReadoutEpsilon ?? _options.Epsilon : null);
        _models.Clear();
        InputBasis = null;
        if (_options.InputBasisEnergy > 0 && examples.Layers.Count > 0 && examples.Ranks[0] > 0 && examples.BasisDims[0] == 0 && _inputWidth > 0)
        {
            // The classifier's input layer (784-wide for FashionMNIST) whose responses live in the span of the training inputs.
            var basis = examples.ShareInputBasis(0, _options.InputBasisEnergy);
            InputBasis = examples.BasisDims[0] > 0 ? basis : null;
        }
    }

    /// <inheritdoc />
    public string Name => _options.TwoTrajectory ? "forward-only" : "forward-only-single";

    /// <summary>The options in use.</summary>
    public ForwardOnlyOptions Options => _options;

    /// <summary>Step size used by the simulation (after Precompute).</summary>
    public float StepSize { get; private set; }

    /// <summary>|h_max| estimated by power iteration or the operator's Lanczos (0 when the step size was given).</summary>
    public double TopEigenvalue { get; private set; }

    /// <summary>Training examples the spectral operator was fitted on in the last Precompute (0 without one).</summary>
    public int OperatorSampleSize { get; private set; }

    /// <summary>Seconds spent simulating in the last Precompute.</summary>
    public double SimulationSeconds { get; private set; }

    /// <summary>
    /// ‖r_b‖ per training unit from the last Precompute (before compression). Negative curvature along a trajectory
    /// makes responses grow geometrically (spec §6): outliers here flag units whose horizon or damping is unsafe.
    /// </summary>
    public float[] ResponseNorms { get; private set; } = [];

    /// <summary>Per-example (per-unit) responses (after Precompute or ImportState).</summary>
    public ResponseSet ExampleResponses => _examples ?? throw NotReady();

    /// <inheritdoc />
    public long StateBytes => _examples?.Bytes ?? 0;

    /// <inheritdoc />
    public string Describe() => Describe(_propagation ?? _options.Propagation);

    private string Describe(ForwardPropagation? propagation) => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({_architecture ?? "not precomputed"}): K={HorizonText(propagation)}, eps={_options.Epsilon:G3}, eta={(StepSize > 0 ? StepSize.ToString("G4", CultureInfo.InvariantCulture) : "1/h_max")}, lambda={_options.Damping:G3}, batch={_options.BatchSize}, seed={_options.Seed}, rank={(_examples is { DirectionCount: > 0 } e ? $"exact (gradient factors + {e.DirectionCount} Ritz coefficients)" : _options.Rank == 0 ? "full" : _options.Rank.ToString(CultureInfo.InvariantCulture))}, readout={_options.Readout}{(propagation == ForwardPropagation.Tangent ? ", propagation=tangent" : "")}{(propagation == ForwardPropagation.Spectral ? $", propagation=spectral (operator rank {_options.OperatorRank}, sample {(OperatorSampleSize > 0 ? OperatorSampleSize.ToString(CultureInfo.InvariantCulture) : _options.OperatorSample == 0 ? "visited" : _options.OperatorSample.ToString(CultureInfo.InvariantCulture))}, segments {_options.OperatorSegments}, complement probes {_options.OperatorComplementProbes})" : "")}{(InputBasis is { } b ? $", input basis {b.Dimension} (energy {b.EnergyKept:F4})" : _options.InputBasisEnergy > 0 ? $", input basis energy {_options.InputBasisEnergy:G4}" : "")}");

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        if (_options.RankGiven && problem.HasMlpLayout && _options.PropagationFor(true) == ForwardPropagation.Spectral)
        {
            throw new MethodOptionException($"forward-only: rank={_options.Rank} has no effect with spectral propagation on an MLP ({problem.Architecture}): its responses are stored exactly (gradient factors plus Ritz coefficients), not truncated to a rank. Drop rank=, or store rank-r factors of the simulated responses with propagation=trajectory or propagation=tangent.");
        }

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var simulator = new ForwardOnlySimulator(problem, _options, cancellationToken);
        _propagation = simulator.Propagation;
        StepSize = simulator.StepSize;
        Horizon = simulator.Horizon;
        TopEigenvalue = simulator.TopEigenvalue;
        OperatorSampleSize = simulator.OperatorSampleSize;
        int n = problem.Count;
        var norms = new float[n];
        var examples = simulator.SimulateResponses([.. Enumerable.Range(0, n)], LinearLayers(problem), _options.Rank, _options.Seed, norms, cancellationToken);

        Serve(problem, ServedModel.Of(problem), problem.Architecture, examples);
        ResponseNorms = norms;
        SimulationSeconds = watch.Elapsed.TotalSeconds;
    }

    // The horizon as used (K steps, and the epochs they came from), or as configured before a Precompute.
    private string HorizonText(ForwardPropagation? propagation)
    {
        var inv = CultureInfo.InvariantCulture;
        if (_options.Horizon > 0)
        {
            return _options.Horizon.ToString(inv);
        }

        string epochs = _options.HorizonEpochs is { } e ? e.ToString("G4", inv) + " epochs"
            : propagation is null or ForwardPropagation.Spectral ? $"{ForwardOnlyOptions.DefaultHorizonEpochs.ToString("G4", inv)} epochs (default{(propagation is null ? " for spectral" : "")})"
            : null!;
        return Horizon > 0
            ? epochs is null ? string.Create(inv, $"{Horizon} (default)") : string.Create(inv, $"{Horizon} ({epochs})")
            : epochs ?? string.Create(inv, $"{ForwardOnlyOptions.DefaultHorizonSteps} (default)");
    }

    /// <summary>The horizon K in steps the last Precompute simulated (0 before one, and when served from a probe set).</summary>
    public int Horizon { get; private set; }

    /// <summary>The model's linear layers (offsets and shapes) a response set covers, from the model's own factors of one training row.</summary>
    public static IReadOnlyList<LinearFactors> LinearLayers(AttributionProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return problem.CreateModel().PerExampleGradients(ForwardOnlySimulator.Rows(problem.Training, problem.Count > 0 ? [0] : []), ModelOutput.Loss).Layers;
    }

    /// <inheritdoc />
    public ProbeSetState ExportState()
    {
        var served = _served ?? throw NotReady();
        return ForwardOnlyState.Export(served.CreateModel(), ExampleResponses);
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

        if (model.Theta.Length != probe.ParameterCount || state.Examples.Count != model.ExampleSources.Length || state.Sources.Count != 0
            || model.ExampleSources.Any(s => (uint)s >= (uint)model.SourceCount))
        {
            throw new ArgumentException($"a {Name} state of {state.Examples.Count} example and {state.Sources.Count} source units (it has no source units: a source's score is the sum of its examples') does not fit a served model with θ of {model.Theta.Length} values ({probe.ParameterCount} expected), {model.ExampleSources.Length} examples and {model.SourceCount} sources.", nameof(state));
        }

        var examples = ForwardOnlyState.Load(probe, state.ExampleTensors, state.Examples, state.Shared, _options.Seed);
        Serve(null, model, state.Architecture, examples);
        StepSize = 0;
        Horizon = 0;
        TopEigenvalue = 0;
        OperatorSampleSize = 0;
    }

    /// <summary>Dimension of the input layer's shared basis and the energy it kept, when <see cref="ForwardOnlyOptions.InputBasisEnergy"/> is on.</summary>
    public (int Dimension, double EnergyKept)? InputBasis { get; private set; }

    /// <summary>
    /// Scores a batch against every example; <see cref="ScoreMatrix.SourceScores"/> (and so
    /// <see cref="IAttributionMethod.ScoreSources"/>) sums them per source, the one definition of a source's score.
    /// </summary>
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default) => Readout.Score(Prepare(queries, cancellationToken), cancellationToken);

    /// <summary>
    /// The fixed part of a query: its output's gradient factors at θ* (forward mode where the model has it); with the
    /// finite-difference readout the queries themselves (that readout runs the model per document).
    /// </summary>
    public PreparedQueries Prepare(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        _ = _served ?? throw NotReady();
        _problem?.CheckQueries(queries);
        if (_inputWidth > 0 && queries.InputWidth != _inputWidth)
        {
            throw new ArgumentException($"queries have width {queries.InputWidth}; the model takes {_inputWidth}.", nameof(queries));
        }

        cancellationToken.ThrowIfCancellationRequested();
        return _options.Readout == ForwardReadout.FiniteDifference ? new PreparedQueries(queries.Count, queries)
            : new PreparedQueries(queries.Count, queries.Count > 0 ? QueryFactors(queries) : null);
    }

    /// <summary>The per-document part: every stored response read against the prepared queries (<see cref="ResponseSetReadout"/>).</summary>
    public IDocumentReadout Readout => _readout ?? throw NotReady();

    /// <inheritdoc />
    public IDocumentReadout RepeatedReadout(int factor)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(factor, 1);
        var served = _served ?? throw NotReady();
        var copy = new ForwardOnlyMethod(_options);
        copy.ImportState(served with { ExampleSources = [.. Enumerable.Repeat(served.ExampleSources, factor).SelectMany(s => s)] }, ExportState().WithExamplesRepeated(factor));
        return copy.Readout;
    }

    /// <summary>The per-source sums of <see cref="Score"/> ([queries, sources] row-major), as for every method.</summary>
    public float[] ScoreSources(QueryBatch queries, CancellationToken cancellationToken = default) => Score(queries, cancellationToken).SourceScores;

    /// <summary>
    /// Scores a batch against every example and every source ([queries, sources] row-major: the per-source sums of
    /// the example scores) in one readout. Safe to call from several threads at once.
    /// </summary>
    public (ScoreMatrix Examples, float[] Sources) ScoreAll(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        var examples = Score(queries, cancellationToken);
        return (examples, examples.SourceScores);
    }

    /// <summary>The class an MLP predicts for each input (the label whose margin a served query attributes).</summary>
    public int[] Predict(float[] inputs, int count)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var model = Rent();
        try
        {
            var mlp = model as Mlp ?? throw new InvalidOperationException($"Predict takes a classifier (an MLP); this method serves {_architecture}.");
            var classes = new int[count];
            mlp.Predict(inputs, count, classes);
            return classes;
        }
        finally
        {
            _models.Add(model);
        }
    }

    // The queries' output gradient factors at θ*, in forward mode where the model has it (the readout never runs a
    // backward pass on an MLP).
    private GradientFactors QueryFactors(QueryBatch queries)
    {
        var model = Rent();
        try
        {
            return model.ForwardModeGradients(queries.Batch, queries.Output);
        }
        finally
        {
            _models.Add(model);
        }
    }

    // Models hold work buffers: one per concurrent caller, reused.
    private IModel Rent()
    {
        if (_models.TryTake(out var model))
        {
            return model;
        }

        var served = _served ?? throw NotReady();
        model = served.CreateModel();
        model.LoadFrom(served.Theta);
        return model;
    }

    private static InvalidOperationException NotReady() => new("Call Precompute before scoring.");
}
