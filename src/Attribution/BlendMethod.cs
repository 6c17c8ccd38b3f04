using System.Globalization;
using Attribution.Contracts;

namespace Attribution.Attribution;

/// <summary>
/// A convex blend of two methods' per-query standardised scores: for every query each part's scores are centred and
/// scaled to unit variance over the training examples, and the blend is (1 − w)·z₁ + w·z₂ (w = the second part's share,
/// 0 = the first alone, 1 = the second alone). With a weight given, that weight; with weight <c>auto</c>, Precompute
/// chooses w from a grid that contains 0 and 1 by the objective of the problem's calibration queries
/// (<see cref="AttributionProblem.Calibration"/>), so on those queries the blend is at least as good as the better part
/// alone. Source scores are the sums of the examples' blended scores. The state travels as the two parts' probe sets side
/// by side (tensor names prefixed <c>0/</c> and <c>1/</c>), so a deployment serves the blend at a fixed weight.
/// </summary>
public sealed class BlendMethod : IProbeSetMethod
{
    private const string SourcesTensor = "blend.sources";
    private readonly IProbeSetMethod _first;
    private readonly IProbeSetMethod _second;
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
    /// <see cref="DefaultGrid"/>; the grid must hold 0 and 1).
    /// </summary>
    public BlendMethod(IProbeSetMethod first, IProbeSetMethod second, double? weight, IReadOnlyList<double>? grid = null)
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

        (_first, _second, _weight) = (first, second, weight);
        Weight = weight ?? double.NaN;
    }

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
        return $"blend of standardised scores, (1 − w)·[{_first.Describe()}] + w·[{_second.Describe()}], {weight}";
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
        _served = ServedModel.Of(problem);
        if (_weight is null)
        {
            Calibrate(problem.Calibration!, cancellationToken);
        }
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var served = _served ?? throw NotReady();
        var (a, b) = (_first.Score(queries, cancellationToken), _second.Score(queries, cancellationToken));
        return new ScoreMatrix(Blend(a, b, Weight), queries.Count, a.ExampleCount, served.ExampleSources, served.SourceCount);
    }

    /// <summary>
    /// Every query's blend (1 − w)·z(a) + w·z(b) of two score matrices over the same examples, z = per-query
    /// standardisation over the examples (a constant row standardises to zeros).
    /// </summary>
    public static float[] Blend(ScoreMatrix a, ScoreMatrix b, double weight)
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
            var (ma, sa) = Moments(a.Row(q));
            var (mb, sb) = Moments(b.Row(q));
            var ra = a.Row(q);
            var rb = b.Row(q);
            var dst = result.AsSpan(q * n, n);
            for (int i = 0; i < n; i++)
            {
                double za = sa > 0 ? (ra[i] - ma) / sa : 0, zb = sb > 0 ? (rb[i] - mb) / sb : 0;
                dst[i] = (float)(((1 - weight) * za) + (weight * zb));
            }
        }

        return result;
    }

    /// <summary>
    /// The parts' states side by side: example (and source) blocks are the first part's floats then the second's, tensor
    /// names prefixed <c>0/</c> and <c>1/</c>; shared tensors likewise, plus <c>blend.sources</c> [1, 2] saying which part
    /// has source blocks. The weight is not in the state: it is the served spec's option.
    /// </summary>
    public ProbeSetState ExportState()
    {
        _ = _served ?? throw NotReady();
        var (a, b) = (_first.ExportState(), _second.ExportState());
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
        _first.ImportState(model, Part(state, 0, flags.Values[0] == 1f));
        _second.ImportState(model, Part(state, 1, flags.Values[1] == 1f));
        _served = model;
    }

    // Chooses w on the calibration queries: both parts score them once, every grid weight is blended and judged.
    private void Calibrate(CalibrationSet calibration, CancellationToken cancellationToken)
    {
        var (a, b) = (_first.Score(calibration.Queries, cancellationToken), _second.Score(calibration.Queries, cancellationToken));
        var table = new List<(double Weight, double Objective)>();
        foreach (double w in _grid)
        {
            var blended = new ScoreMatrix(Blend(a, b, w), a.QueryCount, a.ExampleCount, null, 0);
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

    private InvalidOperationException NotReady() => new($"{Name}: call Precompute (or ImportState) before scoring.");
}
