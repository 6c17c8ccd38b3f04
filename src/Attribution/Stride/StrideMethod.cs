using System.Diagnostics;
using System.Globalization;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Stride;

/// <summary>
/// STRIDE (shared/docs/stride.md) as an attribution method. Precompute: draw the K-subset design, run the frozen model
/// once over the training set, train the steering operators. Score: one forward pass per query batch gives every
/// query's K measurements; the Lasso turns them into per-example scores (plus a small dense tie-break); per-source scores
/// are sums. Optionally combined with a partner method (forward-only) as a Lasso prior or a calibrated sum.
/// </summary>
public sealed class StrideMethod : IAttributionMethod
{
    private readonly StrideOptions _options;
    private readonly IAttributionMethod? _partner;
    private AttributionProblem? _problem;
    private SubsetDesign? _design;
    private LassoRecovery? _recovery;
    private SteeringOperators? _operators;

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
            StrideCombination.Sum => $", + {_partner!.Describe()} calibrated sum (weight {_options.CombineWeight.ToString(CultureInfo.InvariantCulture)})",
            _ => "",
        };
        return string.Create(CultureInfo.InvariantCulture,
            $"STRIDE (K = {_options.Subsets}, d = {_options.Degree}, rank {s.Rank}, layer {(_operators is { } op ? op.Layer.ToString(CultureInfo.InvariantCulture) : s.Layer < 0 ? "default" : s.Layer.ToString(CultureInfo.InvariantCulture))}, {s.Steps} steps, β = {s.Stability}, κ = {s.Linearity}, measure {(_operators?.MeasuredOutput ?? s.Measure)?.ToString().ToLowerInvariant() ?? "default"}, {rule}, dense {_options.Dense}{combine})");
    }

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var model = HiddenModel(problem);
        var clock = Stopwatch.StartNew();
        var design = SubsetDesign.Create(problem.Count, _options.Subsets, _options.Degree, _options.DesignSeed);
        var operators = SteeringTrainer.Train(model, problem.Training, design, _options.Steering, cancellationToken);
        TrainingSeconds = clock.Elapsed.TotalSeconds;
        _partner?.Precompute(problem, cancellationToken);
        _problem = problem;
        _design = design;
        _recovery = new LassoRecovery(design, _options.Lasso);
        _operators = operators;
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var problem = _problem ?? throw NotReady();
        problem.CheckQueries(queries);

        int q = queries.Count, n = problem.Count, kk = _options.Subsets;
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

        return new ScoreMatrix(scores, q, n, problem.SourceIds, problem.SourceCount);
    }

    /// <summary>The K measurements of every query, [q, K] (one batched forward pass, no gradients).</summary>
    public float[] Measurements(QueryBatch queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var problem = _problem ?? throw NotReady();
        var y = new float[(long)queries.Count * _options.Subsets];
        Operators.Measure(HiddenModel(problem), queries.Batch, y);
        return y;
    }

    /// <inheritdoc />
    public long StateBytes => (_operators?.Bytes ?? 0) + 8L * (_design?.Examples ?? 0) * _options.Degree + (_partner?.StateBytes ?? 0);

    // One query: Lasso (with the partner's prior when asked), dense tie-break, calibrated sum when asked.
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

        if (_options.Combine == StrideCombination.Sum)
        {
            var a = Standardised(w);
            var b = Standardised(partner);
            for (int j = 0; j < n; j++)
            {
                row[j] = (float)(a[j] + _options.CombineWeight * b[j]);
            }

            return;
        }

        for (int j = 0; j < n; j++)
        {
            row[j] = (float)w[j];
        }
    }

    private static double[] Standardised(ReadOnlySpan<double> v)
    {
        double mean = 0, sq = 0;
        foreach (double x in v)
        {
            mean += x;
        }

        mean /= Math.Max(v.Length, 1);
        foreach (double x in v)
        {
            sq += (x - mean) * (x - mean);
        }

        double sd = Math.Sqrt(sq / Math.Max(v.Length, 1));
        var r = new double[v.Length];
        for (int j = 0; j < v.Length; j++)
        {
            r[j] = sd > 0 ? (v[j] - mean) / sd : 0;
        }

        return r;
    }

    private static double[] Standardised(ReadOnlySpan<float> v)
    {
        var d = new double[v.Length];
        for (int j = 0; j < v.Length; j++)
        {
            d[j] = v[j];
        }

        return Standardised(d);
    }

    private static IHiddenStateModel HiddenModel(AttributionProblem problem) => problem.CreateModel() as IHiddenStateModel
        ?? throw new NotSupportedException($"stride needs a model that exposes a hidden activation (IHiddenStateModel: the MLP, the GPT); {problem.Architecture} does not.");

    private static InvalidOperationException NotReady() => new("stride: call Precompute before scoring.");
}
