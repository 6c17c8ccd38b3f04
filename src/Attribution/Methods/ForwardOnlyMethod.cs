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
public sealed class ForwardOnlyMethod : IProbeSetMethod
{
    private readonly ForwardOnlyOptions _options;
    private AttributionProblem? _problem; // set by Precompute (null when served from responses or a probe set)
    private ServedModel? _served; // what scoring reads
    private string? _architecture;
    private int _inputWidth; // the float input width a served classifier takes (0: not checked)
    private ResponseSet? _examples;
    private ResponseSet? _sources;
    private readonly ConcurrentBag<IModel> _models = [];

    /// <summary>Creates the method; <paramref name="options"/> null uses the defaults (two-trajectory).</summary>
    public ForwardOnlyMethod(ForwardOnlyOptions? options = null)
    {
        _options = options ?? new ForwardOnlyOptions();
        _options.Validate();
    }

    /// <summary>
    /// Builds a ready-to-score method from responses simulated elsewhere (e.g. <c>attribute --probes</c> reading a probe
    /// file). <paramref name="examples"/> has one unit per training example, <paramref name="sources"/> one per source.
    /// </summary>
    public static ForwardOnlyMethod FromResponses(AttributionProblem problem, ResponseSet examples, ResponseSet sources, ForwardOnlyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(sources);
        if (examples.Units != problem.Count || sources.Units != problem.SourceCount
            || examples.ParameterCount != problem.ParameterCount || sources.ParameterCount != problem.ParameterCount)
        {
            throw new ArgumentException($"responses for {examples.Units} examples / {sources.Units} sources do not match a problem of {problem.Count} examples / {problem.SourceCount} sources and {problem.ParameterCount} parameters.");
        }

        var method = new ForwardOnlyMethod(options);
        method.Serve(problem, ServedModel.Of(problem), problem.Architecture, examples, sources);
        return method;
    }

    /// <summary>
    /// The serving form for an MLP: a method built from a probe set (the model's θ, every example's and every source's
    /// response), with no training data. <see cref="ScoreAll"/> is the Scorer's scoring; the per-source sums of
    /// <see cref="ScoreMatrix.SourceScores"/> are empty (the set does not say which source an example belongs to).
    /// </summary>
    public static ForwardOnlyMethod FromResponses(MlpLayout layout, float[] theta, ResponseSet examples, ResponseSet sources, ForwardOnlyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(theta);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(sources);
        if (theta.Length != layout.ParameterCount || examples.ParameterCount != layout.ParameterCount || sources.ParameterCount != layout.ParameterCount)
        {
            throw new ArgumentException($"θ ({theta.Length}) and the responses ({examples.ParameterCount}, {sources.ParameterCount}) must all have the {layout.ParameterCount} parameters of {string.Join('-', layout.Widths)}.");
        }

        var method = new ForwardOnlyMethod(options);
        var mlp = new Mlp(layout);
        method.Serve(null, new ServedModel(() => new Mlp(layout), theta, [], sources.Units), mlp.Architecture, examples, sources, examples.Units);
        return method;
    }

    // Makes the method score from these sets (the input basis applied as the options say).
    private void Serve(AttributionProblem? problem, ServedModel served, string architecture, ResponseSet examples, ResponseSet sources, int? exampleCount = null)
    {
        _problem = problem;
        _served = served;
        _architecture = architecture;
        _inputWidth = examples.Layers.Count > 0 && architecture.StartsWith("mlp:", StringComparison.Ordinal) ? examples.Layers[0].In : 0;
        _examples = examples;
        _sources = sources;
        _exampleCount = exampleCount ?? served.ExampleSources.Length;
        _models.Clear();
        InputBasis = null;
        if (_options.InputBasisEnergy > 0 && examples.Layers.Count > 0 && examples.Ranks[0] > 0 && examples.BasisDims[0] == 0 && _inputWidth > 0)
        {
            // The classifier's input layer (784-wide for FashionMNIST) whose responses live in the span of the training inputs.
            var basis = examples.ShareInputBasis(0, _options.InputBasisEnergy);
            InputBasis = examples.BasisDims[0] > 0 ? basis : null;
        }
    }

    private int _exampleCount;

    /// <inheritdoc />
    public string Name => _options.TwoTrajectory ? "forward-only" : "forward-only-single";

    /// <summary>The options in use.</summary>
    public ForwardOnlyOptions Options => _options;

    /// <summary>Step size used by the simulation (after Precompute).</summary>
    public float StepSize { get; private set; }

    /// <summary>|h_max| estimated by power iteration or the operator's Lanczos (0 when the step size was given).</summary>
    public double TopEigenvalue { get; private set; }

    /// <summary>Seconds spent simulating in the last Precompute.</summary>
    public double SimulationSeconds { get; private set; }

    /// <summary>
    /// ‖r_b‖ per training unit from the last Precompute (before compression). Negative curvature along a trajectory
    /// makes responses grow geometrically (spec §6): outliers here flag units whose horizon or damping is unsafe.
    /// </summary>
    public float[] ResponseNorms { get; private set; } = [];

    /// <summary>Per-example (per-unit) responses (after Precompute or ImportState).</summary>
    public ResponseSet ExampleResponses => _examples ?? throw NotReady();

    /// <summary>Per-source responses (after Precompute or ImportState).</summary>
    public ResponseSet SourceResponses => _sources ?? throw NotReady();

    /// <inheritdoc />
    public long StateBytes => (_examples?.Bytes ?? 0) + (_sources?.Bytes ?? 0);

    /// <inheritdoc />
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Name} ({_architecture ?? "not precomputed"}): K={_options.Horizon}, eps={_options.Epsilon:G3}, eta={(StepSize > 0 ? StepSize.ToString("G4", CultureInfo.InvariantCulture) : "1/h_max")}, lambda={_options.Damping:G3}, batch={_options.BatchSize}, seed={_options.Seed}, rank={(_options.Rank == 0 ? "full" : _options.Rank.ToString(CultureInfo.InvariantCulture))}, sources={_options.Sources}, readout={_options.Readout}{(_options.Propagation == ForwardPropagation.Spectral ? $", propagation=spectral (operator rank {_options.OperatorRank}, sample {_options.OperatorSample}, segments {_options.OperatorSegments}, complement probes {_options.OperatorComplementProbes})" : "")}{(InputBasis is { } b ? $", input basis {b.Dimension} (energy {b.EnergyKept:F4})" : _options.InputBasisEnergy > 0 ? $", input basis energy {_options.InputBasisEnergy:G4}" : "")}");

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var simulator = new ForwardOnlySimulator(problem, _options, cancellationToken);
        StepSize = simulator.StepSize;
        TopEigenvalue = simulator.TopEigenvalue;
        int n = problem.Count, m = problem.SourceCount, p = problem.ParameterCount;
        var layers = LinearLayers(problem);
        var examples = new ResponseSet(p, layers, n, _options.Rank, _options.Seed);
        // A source is one of few units: kept in full where the linear layers are the whole model (the MLP, as the
        // Simulator publishes it); a language model's sources at the examples' rank (its full response would be p floats).
        bool whole = layers.Sum(l => (long)l.Out * l.In + (l.BiasOffset >= 0 ? l.Out : 0)) == p;
        var sources = new ResponseSet(p, layers, m, whole ? 0 : _options.Rank, _options.Seed);
        var sums = _options.Sources == SourceResponse.SumOfExamples ? new double[(long)m * p] : null;
        var norms = new float[n];
        var units = new int[n][];
        for (int i = 0; i < n; i++)
        {
            units[i] = [i];
        }

        simulator.Simulate(units, (unit, response) =>
        {
            norms[unit] = MathF.Sqrt(System.Numerics.Tensors.TensorPrimitives.Dot(response, response));
            examples.Set(unit, response);
            if (sums is not null)
            {
                var dst = sums.AsSpan(problem.SourceIds[unit] * p, p);
                for (int j = 0; j < p; j++)
                {
                    dst[j] += response[j];
                }
            }
        }, cancellationToken);

        if (sums is null)
        {
            simulator.Simulate(SourceUnits(problem), (s, response) => sources.Set(s, response), cancellationToken);
        }
        else
        {
            var row = new float[p];
            for (int s = 0; s < m; s++)
            {
                for (int j = 0; j < p; j++)
                {
                    row[j] = (float)sums[(long)s * p + j];
                }

                sources.Set(s, row);
            }
        }

        Serve(problem, ServedModel.Of(problem), problem.Architecture, examples, sources);
        ResponseNorms = norms;
        SimulationSeconds = watch.Elapsed.TotalSeconds;
    }

    /// <summary>The model's linear layers (offsets and shapes) a response set covers, from the model's own factors of one training row.</summary>
    public static IReadOnlyList<LinearFactors> LinearLayers(AttributionProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return problem.CreateModel().PerExampleGradients(ForwardOnlySimulator.Rows(problem.Training, problem.Count > 0 ? [0] : []), ModelOutput.Loss).Layers;
    }

    /// <summary>
    /// The training-example indices of every source (unit s = the examples whose source is s, ascending): what a source
    /// is when it is simulated as one unit, here and in the Simulator service.
    /// </summary>
    public static int[][] SourceUnits(AttributionProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var members = new List<int>[problem.SourceCount];
        for (int s = 0; s < members.Length; s++)
        {
            members[s] = [];
        }

        for (int i = 0; i < problem.Count; i++)
        {
            members[problem.SourceIds[i]].Add(i);
        }

        return [.. members.Select(m => m.ToArray())];
    }

    /// <inheritdoc />
    public ProbeSetState ExportState()
    {
        var served = _served ?? throw NotReady();
        return ForwardOnlyState.Export(served.CreateModel(), ExampleResponses, SourceResponses);
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

        var examples = ForwardOnlyState.Load(probe, state.ExampleTensors, state.Examples, _options.Seed);
        var sources = ForwardOnlyState.Load(probe, state.SourceTensors, state.Sources, _options.Seed);
        Serve(null, model, state.Architecture, examples, sources);
        StepSize = 0;
        TopEigenvalue = 0;
    }

    /// <summary>Dimension of the input layer's shared basis and the energy it kept, when <see cref="ForwardOnlyOptions.InputBasisEnergy"/> is on.</summary>
    public (int Dimension, double EnergyKept)? InputBasis { get; private set; }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default) => Read(queries, true, false, cancellationToken).Examples!;

    /// <inheritdoc />
    public float[] ScoreSources(QueryBatch queries, CancellationToken cancellationToken = default) => Read(queries, false, true, cancellationToken).Sources!;

    /// <summary>
    /// Scores a batch against every example and every source ([queries, sources] row-major). The queries' forward pass
    /// and gradient factors are computed once and shared by both sets. Safe to call from several threads at once.
    /// </summary>
    public (ScoreMatrix Examples, float[] Sources) ScoreAll(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        var (examples, sources) = Read(queries, true, true, cancellationToken);
        return (examples!, sources!);
    }

    private (ScoreMatrix? Examples, float[]? Sources) Read(QueryBatch queries, bool withExamples, bool withSources, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var served = _served ?? throw NotReady();
        _problem?.CheckQueries(queries);
        if (_inputWidth > 0 && queries.InputWidth != _inputWidth)
        {
            throw new ArgumentException($"queries have width {queries.InputWidth}; the model takes {_inputWidth}.", nameof(queries));
        }

        cancellationToken.ThrowIfCancellationRequested();
        var sets = new List<(ResponseSet Set, float[] Scores)>();
        var examples = withExamples ? new float[(long)queries.Count * ExampleResponses.Units] : null;
        var sources = withSources ? new float[(long)queries.Count * SourceResponses.Units] : null;
        if (examples is not null)
        {
            sets.Add((ExampleResponses, examples));
        }

        if (sources is not null)
        {
            sets.Add((SourceResponses, sources));
        }

        if (_options.Readout == ForwardReadout.FiniteDifference)
        {
            float eps = _options.ReadoutEpsilon ?? _options.Epsilon;
            foreach (var (set, scores) in sets)
            {
                ForwardOnlyReadout.FiniteDifference(served.CreateModel(), served.Theta, queries, set, eps, scores, cancellationToken);
            }
        }
        else if (queries.Count > 0)
        {
            var readout = Readout(queries);
            foreach (var (set, scores) in sets)
            {
                set.JacobianScores(readout, scores);
            }
        }

        var sourceIds = served.ExampleSources.Length == _exampleCount ? served.ExampleSources : null;
        return (examples is null ? null : new ScoreMatrix(examples, queries.Count, _exampleCount, sourceIds, served.SourceCount), sources);
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
    private GradientFactors Readout(QueryBatch queries)
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
