using System.Diagnostics;
using System.Globalization;
using Attribution.Contracts;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Stride;

/// <summary>
/// STRIDE (shared/docs/stride.md) as an attribution method. Precompute: draw the K-subset design, run the frozen model
/// once over the training set, train the steering operators. Score: one forward pass per query batch gives every
/// query's K measurements; the Lasso turns them into per-example scores (plus a small dense tie-break); per-source scores
/// are sums. Optionally a partner method (forward-only) enters the recovery as a Lasso prior or a prior mean (the blend
/// of the two methods' scores is <see cref="BlendMethod"/>).
/// </summary>
public sealed class StrideMethod : IProbeSetMethod
{
    private readonly StrideOptions _options;
    private readonly IAttributionMethod? _partner;
    private ServedModel? _served;
    private IHiddenStateModel? _model;
    private SubsetDesign? _design;
    private LassoRecovery? _recovery;
    private SteeringOperators? _operators;
    private SubsetFineTunes? _fineTunes;

    /// <summary>A method with <paramref name="options"/>; <paramref name="partner"/> is required exactly when the options combine.</summary>
    public StrideMethod(StrideOptions? options = null, IAttributionMethod? partner = null)
    {
        _options = options ?? new StrideOptions();
        _options.Validate();
        if ((_options.Combine == StrideCombination.None) != (partner is null))
        {
            throw new ArgumentException($"StrideMethod: combine = {_options.Combine} {(partner is null ? "needs" : "takes no")} partner method.");
        }

        _partner = partner;
    }

    /// <inheritdoc />
    public string Name => "stride";

    /// <summary>The trained operators (after <see cref="Precompute"/>).</summary>
    public SteeringOperators Operators => _operators ?? throw NotReady();

    /// <summary>Seconds the operator training took in <see cref="Precompute"/> (the offline cost, without the partner's).</summary>
    public double TrainingSeconds { get; private set; }

    /// <inheritdoc />
    public string Describe()
    {
        var s = _options.Steering;
        var l = _options.Lasso;
        string rule = l.Rule == LambdaRule.FixedFraction ? $"λ = {l.FixedFraction.ToString(CultureInfo.InvariantCulture)}·λmax" : $"λ by {l.Folds}-fold held-out subsets";
        string combine = _options.Combine switch
        {
            StrideCombination.Prior => $", + {_partner!.Describe()} as Lasso prior (floor {_options.PriorFloor.ToString(CultureInfo.InvariantCulture)})",
            StrideCombination.Residual => $", + {_partner!.Describe()} as prior mean, STRIDE recovering the residual",
            _ => "",
        };
        string measured = _options.Measurements == StrideMeasurements.FineTune
            ? string.Create(CultureInfo.InvariantCulture, $"measurements from fine-tunes on every subset ({_options.FineTuneSteps} steps, lr {(_fineTunes?.LearningRate ?? _options.FineTuneLearningRate)}; diagnostic), ")
            : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"STRIDE ({measured}{(s.Form == SteeringForm.Residual ? "residual form, " : "")}K = {(_design is { } design ? design.Subsets.ToString(CultureInfo.InvariantCulture) : _options.Subsets > 0 ? _options.Subsets.ToString(CultureInfo.InvariantCulture) : "2n in [1000, 10000]")}, d = {_options.Degree}, rank {s.Rank}, layer {(_operators is { } op ? op.Layer.ToString(CultureInfo.InvariantCulture) : s.Layer < 0 ? "default" : s.Layer.ToString(CultureInfo.InvariantCulture))}, {s.Steps} steps, β = {s.Stability}, κ = {s.Linearity}, measure {(_operators?.MeasuredOutput ?? s.Measure)?.ToString().ToLowerInvariant() ?? "default"}, {rule}, dense {_options.Dense}{combine})");
    }

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var model = HiddenModel(problem);
        var clock = Stopwatch.StartNew();
        var design = SubsetDesign.Create(problem.Count, _options.SubsetsFor(problem.Count), _options.Degree, _options.DesignSeed);
        SteeringOperators? operators = null;
        if (_options.Measurements == StrideMeasurements.FineTune)
        {
            float lr = _options.FineTuneLearningRate > 0 ? _options.FineTuneLearningRate : problem.TrainingLearningRate > 0 ? problem.TrainingLearningRate : 0.05f;
            _fineTunes = SubsetFineTunes.Train(problem.CreateModel(), problem.Training, design, _options.FineTuneSteps, lr, cancellationToken);
        }
        else
        {
            operators = SteeringTrainer.Train(model, problem.Training, design, _options.Steering, cancellationToken);
        }

        TrainingSeconds = clock.Elapsed.TotalSeconds;
        _partner?.Precompute(problem, cancellationToken);
        _served = ServedModel.Of(problem);
        _model = model;
        _design = design;
        _recovery = new LassoRecovery(design, _options.Lasso);
        _operators = operators;
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var served = _served ?? throw NotReady();
        int q = queries.Count, n = served.ExampleSources.Length, kk = _design!.Subsets;
        var y = Measurements(queries);
        float[]? partner = _partner?.Score(queries, cancellationToken).Scores;
        var scores = new float[(long)q * n];
        Parallel.For(0, q, new ParallelOptions { CancellationToken = cancellationToken }, i =>
        {
            var row = scores.AsSpan(i * n, n);
            var yi = y.AsSpan(i * kk, kk);
            var p = partner is null ? default : partner.AsSpan(i * n, n);
            Recover(yi, p, row);
        });

        return new ScoreMatrix(scores, q, n, served.ExampleSources, served.SourceCount);
    }

    /// <summary>
    /// The K measurements of every query, [q, K] (one batched forward pass, no gradients). Queries the model cannot read
    /// (token rows for a classifier, float rows for a language model, a wrong width) are refused by the model.
    /// </summary>
    public float[] Measurements(QueryBatch queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var model = _model ?? throw NotReady();
        var y = new float[(long)queries.Count * _design!.Subsets];
        if (_fineTunes is { } fineTunes)
        {
            fineTunes.Measure(model, queries.Batch, queries.Output, y);
        }
        else
        {
            Operators.Measure(model, queries.Batch, y);
        }

        return y;
    }

    /// <summary>
    /// The state as named tensors: per example its d subset ids (<c>stride.subsets</c>, 1 × d, exact in float); no
    /// per-source block (a source's score is the sum of its examples'); shared: the basis <c>stride.basis</c> [r, H], the
    /// per-subset matrices <c>stride.matrices</c> [r·K, S] (the operators' [r, K·S] in the same memory order, rows of
    /// one steered width S, the classes or, in the residual form, the hidden width, so the Simulator's chunks split between rows even for a large vocabulary) and <c>stride.readout</c> [1, 3] = (hidden layer, measurement:
    /// 0 margin, 1 loss; form: 0 logit, 1 residual; a [1, 2] readout from before the residual form is the logit form). A combination's partner state does not travel: combined STRIDE is not served.
    /// </summary>
    public ProbeSetState ExportState()
    {
        var served = _served ?? throw NotReady();
        if (_partner is not null)
        {
            throw new NotSupportedException($"stride: combine={_options.Combine.ToString().ToLowerInvariant()} is not served from a probe set (the partner's state does not travel with the operators); serve stride alone or forward-only.");
        }

        if (_fineTunes is not null)
        {
            throw new NotSupportedException("stride: operators=finetune is a diagnostic (K fine-tuned parameter changes); it is not served.");
        }

        var design = _design!;
        var op = Operators;
        var examples = new float[design.Examples][];
        for (int i = 0; i < examples.Length; i++)
        {
            var ids = design.SubsetsOf(i);
            examples[i] = new float[ids.Length];
            for (int j = 0; j < ids.Length; j++)
            {
                examples[i][j] = ids[j];
            }
        }

        return new ProbeSetState
        {
            Architecture = _model!.Architecture,
            ExampleTensors = [new ProbeTensor(SubsetsTensor, 1, design.Degree, 0)],
            Examples = examples,
            SourceTensors = [],
            Sources = [.. Enumerable.Range(0, served.SourceCount).Select(_ => Array.Empty<float>())],
            Shared =
            [
                new StateTensor(new ProbeTensor(BasisTensor, op.Rank, op.Width, 0), op.Basis),
                new StateTensor(new ProbeTensor(MatricesTensor, op.Rank * op.Subsets, op.ShiftWidth, 0), op.Matrices),
                new StateTensor(new ProbeTensor(ReadoutTensor, 1, 3, 0), [op.Layer, op.MeasuredOutput == ModelOutput.Loss ? 1f : 0f, op.Form == SteeringForm.Residual ? 1f : 0f]),
            ],
        };
    }

    /// <summary>
    /// Ready to score from an exported state: the design is the shipped memberships (d distinct ids in 0..K−1 per
    /// example, examples in the served model's order, which may differ from the exporter's); the operators' shapes must
    /// match this method's options and the served model.
    /// </summary>
    public void ImportState(ServedModel model, ProbeSetState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(state);
        state.Validate();
        if (_partner is not null || _options.Measurements == StrideMeasurements.FineTune)
        {
            throw new ArgumentException(_partner is not null
                ? $"stride: combine={_options.Combine.ToString().ToLowerInvariant()} cannot be served from a probe set; configure stride without combine."
                : "stride: operators=finetune is a diagnostic and is not served; configure stride without it.");
        }

        var created = model.CreateModel();
        created.LoadFrom(model.Theta);
        var hidden = created as IHiddenStateModel ?? throw new ArgumentException($"stride: the served model {created.Architecture} exposes no hidden activation.");
        int n = model.ExampleSources.Length, kk = _options.SubsetsFor(model.ExampleSources.Length), d = _options.Degree;
        Require(state.Architecture == hidden.Architecture, $"the state is for {state.Architecture}; the served model is {hidden.Architecture}");
        Require(state.Examples.Count == n, $"the state has {state.Examples.Count} example blocks; the served model has {n} examples");
        Require(state.ExampleTensors is [{ Name: SubsetsTensor, Rows: 1, Rank: 0 } t] && t.Cols == d, $"the example tensors must be [{SubsetsTensor} 1 x {d}] (d = {d})");
        var basis = Shared(state, BasisTensor);
        var matrices = Shared(state, MatricesTensor);
        var readout = Shared(state, ReadoutTensor);
        int layer = (int)readout.Values[0], rank = basis.Layout.Rows, classes = hidden.Classes;
        Require(readout.Layout is { Rows: 1, Cols: 2 or 3 } && layer >= 0 && layer < hidden.HiddenLayerCount && readout.Values[1] is 0f or 1f
            && (readout.Layout.Cols == 2 || readout.Values[2] is 0f or 1f),
            $"{ReadoutTensor} must hold a hidden layer of {hidden.Architecture} (0..{hidden.HiddenLayerCount - 1}), a measurement 0 or 1 and a form 0 (logit) or 1 (residual)");
        var form = readout.Layout.Cols == 3 && readout.Values[2] == 1f ? SteeringForm.Residual : SteeringForm.Logit;
        Require(form == _options.Steering.Form, $"the state holds {form.ToString().ToLowerInvariant()}-form operators; this method is configured for form={_options.Steering.Form.ToString().ToLowerInvariant()}");
        int shift = form == SteeringForm.Residual ? hidden.HiddenWidth(layer) : classes;
        Require(rank == _options.Steering.Rank && basis.Layout.Cols == hidden.HiddenWidth(layer), $"{BasisTensor} is {rank} x {basis.Layout.Cols}; rank {_options.Steering.Rank} on layer {layer} needs {_options.Steering.Rank} x {hidden.HiddenWidth(layer)}");
        Require(matrices.Layout.Rows == (long)rank * kk && matrices.Layout.Cols == shift, $"{MatricesTensor} is {matrices.Layout.Rows} x {matrices.Layout.Cols}; K = {kk} operators of rank {rank} steering {shift} values need {(long)rank * kk} x {shift}");
        // The design is the one shipped (the examples may come in any order, e.g. by id in the Scorer).
        var memberships = new int[(long)n * d];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < d; j++)
            {
                float id = state.Examples[i][j];
                Require(id == MathF.Round(id) && id >= 0 && id < kk, $"example {i}'s subset id {id} is not an integer in 0..{kk - 1} (K = {kk})");
                memberships[(i * d) + j] = (int)id;
            }
        }

        SubsetDesign design;
        try
        {
            design = SubsetDesign.FromMemberships(kk, d, _options.DesignSeed, memberships);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException("stride: " + e.Message, e);
        }

        _operators = new SteeringOperators(layer, basis.Layout.Cols, rank, classes, kk, readout.Values[1] == 1f ? ModelOutput.Loss : ModelOutput.Margin,
            (float[])basis.Values.Clone(), (float[])matrices.Values.Clone(), form);
        _design = design;
        _recovery = new LassoRecovery(design, _options.Lasso);
        _model = hidden;
        _served = model;
    }

    /// <inheritdoc />
    public long StateBytes => (_operators?.Bytes ?? 0) + (_fineTunes?.Bytes ?? 0) + 8L * (_design?.Examples ?? 0) * _options.Degree + (_partner?.StateBytes ?? 0);

    // One query: Lasso (with the partner's prior or on the residual after the partner's fit, when asked), dense tie-break.
    private void Recover(ReadOnlySpan<float> y, ReadOnlySpan<float> partner, Span<float> row)
    {
        var design = _design!;
        int n = design.Examples;
        double[]? omega = null;
        if (_options.Combine == StrideCombination.Prior)
        {
            double max = 0;
            foreach (float s in partner)
            {
                max = Math.Max(max, Math.Abs(s));
            }

            omega = new double[n];
            for (int j = 0; j < n; j++)
            {
                omega[j] = 1.0 / (_options.PriorFloor + (max > 0 ? Math.Abs(partner[j]) / max : 0));
            }
        }

        double alpha = 0;
        if (_options.Combine == StrideCombination.Residual)
        {
            (alpha, y) = Residual(y, partner);
        }

        var w = _recovery!.Recover(y, omega).Weights;
        if (_options.Dense > 0)
        {
            double mean = 0;
            foreach (float v in y)
            {
                mean += v;
            }

            mean /= y.Length;
            var centred = new double[y.Length];
            for (int k = 0; k < y.Length; k++)
            {
                centred[k] = y[k] - mean;
            }

            var adjoint = new double[n];
            design.MultiplyTransposed(centred, adjoint);
            for (int j = 0; j < n; j++)
            {
                w[j] += _options.Dense * adjoint[j] / design.Degree;
            }
        }

        for (int j = 0; j < n; j++)
        {
            row[j] = (float)(w[j] + (alpha * (partner.IsEmpty ? 0 : partner[j])));
        }
    }

    // The partner's scores s in measurement units: α = max(0, cov(M·s, y) / var(M·s)) over the K subsets, and y − α·M·s.
    private (double Alpha, float[] Residual) Residual(ReadOnlySpan<float> y, ReadOnlySpan<float> partner)
    {
        var design = _design!;
        var s = new double[partner.Length];
        for (int j = 0; j < s.Length; j++)
        {
            s[j] = partner[j];
        }

        var m = new double[y.Length];
        design.Multiply(s, m);
        double my = 0, mm = 0;
        for (int k = 0; k < y.Length; k++)
        {
            my += y[k];
            mm += m[k];
        }

        my /= y.Length;
        mm /= y.Length;
        double cov = 0, var = 0;
        for (int k = 0; k < y.Length; k++)
        {
            cov += (m[k] - mm) * (y[k] - my);
            var += (m[k] - mm) * (m[k] - mm);
        }

        double alpha = var > 0 ? Math.Max(0, cov / var) : 0;
        var r = new float[y.Length];
        for (int k = 0; k < r.Length; k++)
        {
            r[k] = (float)(y[k] - (alpha * m[k]));
        }

        return (alpha, r);
    }

    private const string SubsetsTensor = "stride.subsets";
    private const string BasisTensor = "stride.basis";
    private const string MatricesTensor = "stride.matrices";
    private const string ReadoutTensor = "stride.readout";

    private static StateTensor Shared(ProbeSetState state, string name) =>
        state.Shared.SingleOrDefault(t => t.Layout.Name == name && t.Layout.Rank == 0)
        ?? throw new ArgumentException($"stride: the state has no full-rank shared tensor '{name}'.");

    private static void Require(bool ok, string message)
    {
        if (!ok)
        {
            throw new ArgumentException("stride: " + message + ".");
        }
    }

    private static IHiddenStateModel HiddenModel(AttributionProblem problem) => problem.CreateModel() as IHiddenStateModel
        ?? throw new NotSupportedException($"stride needs a model that exposes a hidden activation (IHiddenStateModel: the MLP, the GPT); {problem.Architecture} does not.");

    private static InvalidOperationException NotReady() => new("stride: call Precompute before scoring.");
}
