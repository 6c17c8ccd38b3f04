using System.Collections.Concurrent;
using System.Globalization;
using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Forward-only simulated influence (Ma &amp; Nyarko 2025; docs/forward-only-attribution.md). Precompute simulates each
/// training example's response <c>r_b ≈ −H_λ⁻¹[I − (I − ηH_λ)^K] ∇ℓ_b</c> (compressed per layer by truncated SVD) and
/// every source's response <c>r_S = Σ_{b∈S} r_b</c> in full precision. Scoring is forward-only: the directional
/// derivative of each query's margin along every response, <c>s(q, b) = g_qᵀ r_b</c> (positive = helpful), from the
/// model's forward-mode gradient factors of the queries, or by the two-forward-pass finite difference.
/// </summary>
public sealed class ForwardOnlyMethod : IProbeSetMethod
{
    private readonly ForwardOnlyOptions _options;
    private Served? _problem;
    private ResponseSet? _examples;
    private ResponseSet? _sources;
    private readonly ConcurrentBag<Mlp> _models = [];
    private ModelForwardOnlyMethod? _generic;

    /// <summary>Creates the method; <paramref name="options"/> null uses the defaults (two-trajectory).</summary>
    public ForwardOnlyMethod(ForwardOnlyOptions? options = null)
    {
        _options = options ?? new ForwardOnlyOptions();
        _options.Validate();
    }

    /// <summary>
    /// Builds a ready-to-score method from responses simulated elsewhere (e.g. the Scorer service rebuilding its index
    /// from probes). <paramref name="examples"/> has one unit per training example, <paramref name="sources"/> one per source.
    /// </summary>
    public static ForwardOnlyMethod FromResponses(AttributionProblem problem, ResponseSet examples, ResponseSet sources, ForwardOnlyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(sources);
        if (examples.Units != problem.Count || sources.Units != problem.SourceCount
            || examples.ParameterCount != problem.Layout.ParameterCount || sources.ParameterCount != problem.Layout.ParameterCount)
        {
            throw new ArgumentException($"responses for {examples.Units} examples / {sources.Units} sources do not match a problem of {problem.Count} examples / {problem.SourceCount} sources and {problem.Layout.ParameterCount} parameters.");
        }

        var method = new ForwardOnlyMethod(options) { _problem = Served.Of(problem), _examples = examples, _sources = sources };
        method.ShareBasis();
        return method;
    }

    /// <summary>
    /// The serving form: a method built from a probe set (the model's θ, every example's and every source's response),
    /// with no training data. <see cref="ScoreAll"/> is the Scorer's scoring; the per-source sums of
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

        var method = new ForwardOnlyMethod(options) { _problem = new Served(layout, theta, examples.Units, null, sources.Units), _examples = examples, _sources = sources };
        method.ShareBasis();
        return method;
    }

    // What scoring needs of the problem: the model at θ*, and the example→source map when there is one.
    private sealed record Served(MlpLayout Layout, float[] Theta, int Count, int[]? SourceIds, int SourceCount)
    {
        public static Served Of(AttributionProblem problem) => new(problem.Layout, problem.Theta, problem.Count, problem.SourceIds, problem.SourceCount);

        public int InputWidth => Layout.Widths[0];
    }

    /// <inheritdoc />
    public string Name => _options.TwoTrajectory ? "forward-only" : "forward-only-single";

    /// <summary>The options in use.</summary>
    public ForwardOnlyOptions Options => _options;

    /// <summary>Step size used by the simulation (after Precompute).</summary>
    public float StepSize { get; private set; }

    /// <summary>|h_max| estimated by power iteration (0 when the step size was given).</summary>
    public double TopEigenvalue { get; private set; }

    /// <summary>Seconds spent simulating in the last Precompute.</summary>
    public double SimulationSeconds { get; private set; }

    /// <summary>
    /// ‖r_b‖ per training example from the last Precompute (before compression). Negative curvature along a trajectory
    /// makes responses grow geometrically (spec §6): outliers here flag units whose horizon or damping is unsafe.
    /// </summary>
    public float[] ResponseNorms { get; private set; } = [];

    /// <summary>The model-generic path (<see cref="ModelForwardOnlyMethod"/>) when the last problem was not an MLP, else null.</summary>
    public ModelForwardOnlyMethod? ModelPath => _generic;

    /// <summary>Per-example responses (after Precompute).</summary>
    public ResponseSet ExampleResponses => _examples ?? throw NotReady();

    /// <summary>Per-source responses (after Precompute).</summary>
    public ResponseSet SourceResponses => _sources ?? throw NotReady();

    /// <inheritdoc />
    public long StateBytes => _generic?.StateBytes ?? (_examples?.Bytes ?? 0) + (_sources?.Bytes ?? 0);

    /// <inheritdoc />
    public string Describe() => _generic?.Describe() ?? string.Create(CultureInfo.InvariantCulture,
        $"{Name}: K={_options.Horizon}, eps={_options.Epsilon:G3}, eta={(StepSize > 0 ? StepSize.ToString("G4", CultureInfo.InvariantCulture) : "1/h_max")}, lambda={_options.Damping:G3}, batch={_options.BatchSize}, seed={_options.Seed}, rank={(_options.Rank == 0 ? "full" : _options.Rank.ToString(CultureInfo.InvariantCulture))}, readout={_options.Readout}{(_options.Propagation == ForwardPropagation.Spectral ? $", propagation=spectral (operator rank {_options.OperatorRank}, sample {_options.OperatorSample}, segments {_options.OperatorSegments}, complement probes {_options.OperatorComplementProbes})" : "")}{(InputBasis is { } b ? $", input basis {b.Dimension} (energy {b.EnergyKept:F4})" : _options.InputBasisEnergy > 0 ? $", input basis energy {_options.InputBasisEnergy:G4}" : "")}");

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        _generic = null;
        if (!problem.HasMlpLayout)
        {
            // Any other model (a GPT): simulation and probes through IModel.
            _generic = new ModelForwardOnlyMethod(_options);
            _generic.Precompute(problem, cancellationToken);
            (StepSize, TopEigenvalue, SimulationSeconds) = (_generic.StepSize, _generic.TopEigenvalue, watch.Elapsed.TotalSeconds);
            return;
        }

        var simulator = new ForwardOnlySimulator(problem, _options, cancellationToken);
        StepSize = simulator.StepSize;
        TopEigenvalue = simulator.TopEigenvalue;
        int n = problem.Count, m = problem.SourceCount, p = problem.Layout.ParameterCount;
        var examples = new ResponseSet(problem.Layout, n, _options.Rank, _options.Seed);
        var sourceSums = new double[(long)m * p];
        var units = new int[n][];
        for (int i = 0; i < n; i++)
        {
            units[i] = [i];
        }

        var norms = new float[n];
        simulator.Simulate(units, (unit, response) =>
        {
            norms[unit] = MathF.Sqrt(System.Numerics.Tensors.TensorPrimitives.Dot(response, response));
            examples.Set(unit, response);
            var dst = sourceSums.AsSpan(problem.SourceIds[unit] * p, p);
            for (int j = 0; j < p; j++)
            {
                dst[j] += response[j];
            }
        }, cancellationToken);

        var sources = new ResponseSet(problem.Layout, m, 0);
        if (_options.Sources == SourceResponse.Simulated)
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
                    row[j] = (float)sourceSums[(long)s * p + j];
                }

                sources.Set(s, row);
            }
        }

        _problem = Served.Of(problem);
        _examples = examples;
        _sources = sources;
        ShareBasis();
        ResponseNorms = norms;
        SimulationSeconds = watch.Elapsed.TotalSeconds;
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
        if (_generic is not null)
        {
            return _generic.ExportState();
        }

        var problem = _problem ?? throw NotReady();
        return ForwardOnlyState.Export(new Mlp(problem.Layout), ExampleResponses, SourceResponses);
    }

    /// <inheritdoc />
    public void ImportState(ServedModel model, ProbeSetState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(state);
        _generic = null;
        if (!state.Architecture.StartsWith("mlp:", StringComparison.Ordinal))
        {
            _generic = new ModelForwardOnlyMethod(_options);
            _generic.ImportState(model, state);
            return;
        }

        state.Validate();
        MlpLayout layout;
        try
        {
            layout = new MlpLayout(Probes.ProbeCodec.ParseMlp(state.Architecture));
        }
        catch (Probes.ProbeFormatException e)
        {
            throw new ArgumentException(e.Message, nameof(state), e);
        }

        if (model.Theta.Length != layout.ParameterCount || state.Examples.Count != model.ExampleSources.Length || state.Sources.Count != model.SourceCount
            || state.Shared.Count != 0 || model.ExampleSources.Any(s => (uint)s >= (uint)model.SourceCount))
        {
            throw new ArgumentException($"a {Name} state of {state.Examples.Count} example and {state.Sources.Count} source units ({state.Shared.Count} shared tensors; it has none) does not fit θ of {model.Theta.Length} values ({layout.ParameterCount} for {state.Architecture}), {model.ExampleSources.Length} examples and {model.SourceCount} sources.", nameof(state));
        }

        var examples = Load(layout, state.ExampleTensors, state.Examples, _options.Seed);
        var sources = Load(layout, state.SourceTensors, state.Sources, _options.Seed);
        _problem = new Served(layout, model.Theta, examples.Units, model.ExampleSources, sources.Units);
        _examples = examples;
        _sources = sources;
        _models.Clear();
        InputBasis = null;
        ShareBasis();

        static ResponseSet Load(MlpLayout layout, IReadOnlyList<Contracts.ProbeTensor> tensors, IReadOnlyList<float[]> blocks, ulong seed)
        {
            int rank = tensors.Count == 0 ? 0 : tensors.Max(t => t.Rank);
            var expected = ResponseSet.RanksFor(ResponseSet.LayersOf(layout), rank);
            var set = ForwardOnlyState.Load(new Mlp(layout), tensors, blocks, seed);
            if (!set.Ranks.SequenceEqual(expected) || set.Layers.Count != layout.LayerCount || set.Layers.Any(l => l.BiasOffset < 0))
            {
                throw new ArgumentException($"the units' tensors [{string.Join(", ", tensors.Select(t => $"{t.Name} {t.Rows}x{t.Cols} r{t.Rank}"))}] are not those of {string.Join('-', layout.Widths)} at rank {rank}.", nameof(tensors));
            }

            return set;
        }
    }

    /// <summary>Dimension of the input layer's shared basis and the energy it kept, when <see cref="ForwardOnlyOptions.InputBasisEnergy"/> is on.</summary>
    public (int Dimension, double EnergyKept)? InputBasis { get; private set; }

    private void ShareBasis()
    {
        if (_options.InputBasisEnergy > 0 && _examples is { } examples && examples.Ranks[0] > 0 && examples.BasisDims[0] == 0)
        {
            var basis = examples.ShareInputBasis(0, _options.InputBasisEnergy);
            InputBasis = examples.BasisDims[0] > 0 ? basis : null;
        }
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default) =>
        _generic?.Score(queries, cancellationToken) ?? Read(queries, true, false, cancellationToken).Examples!;

    /// <inheritdoc />
    public float[] ScoreSources(QueryBatch queries, CancellationToken cancellationToken = default) =>
        _generic?.ScoreSources(queries, cancellationToken) ?? Read(queries, false, true, cancellationToken).Sources!;

    /// <summary>
    /// Scores a batch against every example and every source ([queries, sources] row-major). The queries' forward pass
    /// and gradient factors are computed once and shared by both sets. Safe to call from several threads at once.
    /// </summary>
    public (ScoreMatrix Examples, float[] Sources) ScoreAll(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        if (_generic is not null)
        {
            return _generic.ScoreAll(queries, cancellationToken);
        }

        var (examples, sources) = Read(queries, true, true, cancellationToken);
        return (examples!, sources!);
    }

    private (ScoreMatrix? Examples, float[]? Sources) Read(QueryBatch queries, bool withExamples, bool withSources, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var problem = _problem ?? throw NotReady();
        CheckWidth(problem.InputWidth, queries);
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
                ForwardOnlyReadout.FiniteDifference(new Mlp(problem.Layout), problem.Theta, queries, set, eps, scores, cancellationToken);
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

        return (examples is null ? null : new ScoreMatrix(examples, queries.Count, problem.Count, problem.SourceIds, problem.SourceCount), sources);
    }

    /// <summary>The class the model predicts for each input (the label whose margin a served query attributes).</summary>
    public int[] Predict(float[] inputs, int count)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var model = Rent();
        try
        {
            var classes = new int[count];
            model.Predict(inputs, count, classes);
            return classes;
        }
        finally
        {
            _models.Add(model);
        }
    }

    // The queries' margin gradient factors at θ*, in forward mode (the readout never runs a backward pass).
    private GradientFactors Readout(QueryBatch queries)
    {
        var model = Rent();
        try
        {
            return model.ForwardModeGradients(queries.Inputs, queries.Labels, queries.Count, ModelOutput.Margin);
        }
        finally
        {
            _models.Add(model);
        }
    }

    // Models hold work buffers: one per concurrent caller, reused.
    private Mlp Rent()
    {
        if (_models.TryTake(out var model))
        {
            return model;
        }

        var problem = _problem ?? throw NotReady();
        model = new Mlp(problem.Layout);
        model.LoadFrom(problem.Theta);
        return model;
    }

    private static void CheckWidth(int inputWidth, QueryBatch queries)
    {
        if (queries.InputWidth != inputWidth)
        {
            throw new ArgumentException($"queries have width {queries.InputWidth}; the model takes {inputWidth}.", nameof(queries));
        }
    }

    private static InvalidOperationException NotReady() => new("Call Precompute before scoring.");
}
