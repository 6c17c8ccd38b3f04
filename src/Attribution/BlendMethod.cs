using System.Globalization;

namespace Attribution.Attribution;

/// <summary>How <see cref="BlendMethod"/> puts each part's per-query scores on one scale before blending.</summary>
public enum BlendScale
{
    /// <summary>Centred and divided by the population standard deviation over the training examples (z-scores).</summary>
    Standardise,

    /// <summary>
    /// Replaced by their ranks over the training examples (ties share their mean rank), then standardised: only each
    /// part's ordering counts, so one part's few extreme scores cannot outweigh the other's whole ranking.
    /// </summary>
    Rank,
}

/// <summary>
/// A convex blend of two methods' per-query standardised scores: for every query each part's scores are put on one
/// scale over the training examples (<see cref="BlendScale"/>: z-scores by default, or standardised ranks), and the blend
/// is (1 − w)·z₁ + w·z₂ (w = the second part's share, 0 = the first alone, 1 = the second alone). With a weight given,
/// that weight; with weight <c>auto</c>, Precompute chooses w from a grid that contains 0 and 1 by the objective of the
/// problem's calibration queries (<see cref="AttributionProblem.Calibration"/>), so on those queries the blend is at
/// least as good as the better part alone. Source scores are the sums of the examples' blended scores. Any two methods
/// blend (<c>blend:a=trak,b=forward-only,...</c> in <see cref="MethodFactory"/>); when both parts are probe-set methods
/// the blend is one too (<see cref="ProbeSetBlendMethod"/>: served at a fixed weight).
/// </summary>
public class BlendMethod : IAttributionMethod
{
    private readonly IAttributionMethod _first;
    private readonly IAttributionMethod _second;
    private readonly double? _weight;
    private readonly double[] _grid;
    private ServedModel? _served;
    private List<(double Weight, double Objective)> _calibration = [];
    private string _calibrationDescription = "";

    /// <summary>The weights <c>auto</c> compares by default: 0, 0.1, …, 1.</summary>
    public static IReadOnlyList<double> DefaultGrid { get; } = [.. Enumerable.Range(0, 11).Select(i => i / 10.0)];

    /// <summary>
    /// A blend of <paramref name="first"/> and <paramref name="second"/>; <paramref name="weight"/> in [0, 1] is the second
    /// part's share (null = chosen in Precompute on the calibration queries, over <paramref name="grid"/>, default
    /// <see cref="DefaultGrid"/>; the grid must hold 0 and 1); <paramref name="scale"/> puts the parts on one scale.
    /// </summary>
    public BlendMethod(IAttributionMethod first, IAttributionMethod second, double? weight, IReadOnlyList<double>? grid = null, BlendScale scale = BlendScale.Standardise)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        if (weight is { } w && !(w is >= 0 and <= 1))
        {
            throw new ArgumentException($"blend weight {w} must lie in [0, 1] (the second method's share).", nameof(weight));
        }

        _grid = [.. (grid ?? DefaultGrid).Distinct().Order()];
        if (_grid.Length < 2 || _grid[0] != 0 || _grid[^1] != 1 || _grid.Any(g => !(g is >= 0 and <= 1)))
        {
            throw new ArgumentException($"blend grid {string.Join(", ", _grid)} must lie in [0, 1] and hold 0 and 1 (each part alone).", nameof(grid));
        }

        (_first, _second, _weight, Scale) = (first, second, weight, scale);
        Weight = weight ?? double.NaN;
    }

    /// <summary>How the parts' scores are put on one scale.</summary>
    public BlendScale Scale { get; }

    /// <summary>The first part (w = 0).</summary>
    protected IAttributionMethod First => _first;

    /// <summary>The second part (w = 1).</summary>
    protected IAttributionMethod Second => _second;

    /// <summary>The served model once precomputed or imported (null before).</summary>
    protected ServedModel? Served { get => _served; set => _served = value; }

    /// <inheritdoc />
    public string Name => $"{_first.Name}+{_second.Name}";

    /// <summary>The second part's share in use (NaN until an <c>auto</c> weight is calibrated).</summary>
    public double Weight { get; private set; }

    /// <summary>The calibration objective of every grid weight (empty for a given weight).</summary>
    public IReadOnlyList<(double Weight, double Objective)> Calibration => _calibration;

    /// <inheritdoc />
    public long StateBytes => _first.StateBytes + _second.StateBytes;

    /// <inheritdoc />
    public string Describe()
    {
        var inv = CultureInfo.InvariantCulture;
        string weight = _weight is { } w ? string.Create(inv, $"weight {w:G4}")
            : _calibration.Count == 0 ? "weight auto (not calibrated yet)"
            : string.Create(inv, $"weight {Weight:G4} chosen on {_calibrationDescription} (objective {string.Join(", ", _calibration.Select(c => $"{c.Weight:G2}: {c.Objective:F3}"))})");
        return $"blend of {(Scale == BlendScale.Rank ? "standardised ranks" : "standardised scores")}, (1 − w)·[{_first.Describe()}] + w·[{_second.Describe()}], {weight}";
    }

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        if (_weight is null && problem.Calibration is null)
        {
            throw new InvalidOperationException("blend weight auto is chosen on calibration queries with ground truth, and this problem has none: "
                + "run it in ./pipeline eval (validation split, --tune-fraction) or bench lm-lds --calibration-fraction, or give the weight (combine-weight=0..1).");
        }

        _first.Precompute(problem, cancellationToken);
        _second.Precompute(problem, cancellationToken);
        Served = ServedModel.Of(problem);
        if (_weight is null)
        {
            Calibrate(problem.Calibration!, cancellationToken);
        }
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var served = Served ?? throw NotReady();
        var (a, b) = (_first.Score(queries, cancellationToken), _second.Score(queries, cancellationToken));
        return new ScoreMatrix(Blend(a, b, Weight, Scale), queries.Count, a.ExampleCount, served.ExampleSources, served.SourceCount);
    }

    /// <summary>
    /// Every query's blend (1 − w)·z(a) + w·z(b) of two score matrices over the same examples, z = per-query
    /// standardisation over the examples (of the scores, or of their ranks with <see cref="BlendScale.Rank"/>; a constant
    /// row standardises to zeros).
    /// </summary>
    public static float[] Blend(ScoreMatrix a, ScoreMatrix b, double weight, BlendScale scale = BlendScale.Standardise)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.QueryCount != b.QueryCount || a.ExampleCount != b.ExampleCount)
        {
            throw new ArgumentException($"blend parts disagree: {a.QueryCount}x{a.ExampleCount} vs {b.QueryCount}x{b.ExampleCount} scores.");
        }

        int n = a.ExampleCount;
        var result = new float[(long)a.QueryCount * n];
        for (int q = 0; q < a.QueryCount; q++)
        {
            ReadOnlySpan<float> ra = scale == BlendScale.Rank ? Ranks(a.Row(q)) : a.Row(q);
            ReadOnlySpan<float> rb = scale == BlendScale.Rank ? Ranks(b.Row(q)) : b.Row(q);
            var ((ma, sa), (mb, sb)) = (Moments(ra), Moments(rb));
            var dst = result.AsSpan(q * n, n);
            for (int i = 0; i < n; i++)
            {
                double za = sa > 0 ? (ra[i] - ma) / sa : 0, zb = sb > 0 ? (rb[i] - mb) / sb : 0;
                dst[i] = (float)(((1 - weight) * za) + (weight * zb));
            }
        }

        return result;
    }

    // Chooses w on the calibration queries: both parts score them once, every grid weight is blended and judged.
    private void Calibrate(CalibrationSet calibration, CancellationToken cancellationToken)
    {
        var (a, b) = (_first.Score(calibration.Queries, cancellationToken), _second.Score(calibration.Queries, cancellationToken));
        var table = new List<(double Weight, double Objective)>();
        foreach (double w in _grid)
        {
            var blended = new ScoreMatrix(Blend(a, b, w, Scale), a.QueryCount, a.ExampleCount, null, 0);
            table.Add((w, calibration.Objective(blended)));
        }

        // The best objective (NaN never wins); ties keep the smaller share of the second part.
        var defined = table.Where(t => !double.IsNaN(t.Objective)).ToArray();
        if (defined.Length == 0)
        {
            throw new InvalidOperationException($"blend calibration: every weight's objective is undefined on {calibration.Description} (constant scores?).");
        }

        (_calibration, _calibrationDescription, Weight) = (table, calibration.Description, defined.MaxBy(t => t.Objective).Weight);
    }

    private static (double Mean, double Sd) Moments(ReadOnlySpan<float> v)
    {
        double mean = 0, sq = 0;
        foreach (float x in v)
        {
            mean += x;
        }

        mean /= Math.Max(v.Length, 1);
        foreach (float x in v)
        {
            sq += (x - mean) * (x - mean);
        }

        return (mean, Math.Sqrt(sq / Math.Max(v.Length, 1)));
    }

    // Ranks 1..n of a row (ties share their mean rank), as floats.
    private static float[] Ranks(ReadOnlySpan<float> v)
    {
        var order = new int[v.Length];
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        var keys = v.ToArray();
        Array.Sort((float[])keys.Clone(), order);
        var ranks = new float[v.Length];
        for (int start = 0; start < order.Length;)
        {
            int end = start + 1;
            while (end < order.Length && keys[order[end]] == keys[order[start]])
            {
                end++;
            }

            float mean = (start + end + 1) / 2f; // ranks start + 1 .. end, averaged
            for (int j = start; j < end; j++)
            {
                ranks[order[j]] = mean;
            }

            start = end;
        }

        return ranks;
    }

    /// <summary>The error for scoring (or exporting) before Precompute or ImportState.</summary>
    protected InvalidOperationException NotReady() => new($"{Name}: call Precompute (or ImportState) before scoring.");
}
