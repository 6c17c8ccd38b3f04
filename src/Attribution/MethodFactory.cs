using System.Globalization;
using Attribution.Attribution.Methods;

namespace Attribution.Attribution;

/// <summary>
/// Creates attribution methods by their command-line name with string options (<c>key=value</c>, keys
/// case-insensitive). Unknown names and unknown option keys fail with a message that lists the valid ones.
/// </summary>
public static class MethodFactory
{
    /// <summary>Valid method names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["forward-only", "forward-only-single", "trak", "tracin", "grad-dot", "if"];

    /// <summary>
    /// Creates a method. Options per method:
    /// every method: models (independently trained models averaged over, default 1: TRAK ensembles with one shared
    /// projection, the others through <see cref="EnsembleMethod"/>; the problem must hold that many models);
    /// forward-only(-single): horizon, eps, eta, lambda, batch, seed, block, rank, power-iterations, readout (jacobian|fd), readout-eps, sources (simulated|sum), basis (input-layer shared basis energy, default 0.99; 0 = off);
    /// trak: k, projector (gaussian|sjlt), sjlt-nonzeros, damping, seed;
    /// tracin: weights (one per training checkpoint, separated by '/' on a command line, e.g. weights=0.5/1/2, or by commas); grad-dot: none;
    /// if: lambda, solver (auto|exact|cg), iterations, tolerance.
    /// An option that would have no effect in the chosen configuration is refused (<see cref="MethodOptionException"/>).
    /// </summary>
    public static IAttributionMethod Create(string name, IReadOnlyDictionary<string, string>? options = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        var o = new Options(options ?? new Dictionary<string, string>());
        var key = name.Trim().ToLowerInvariant();
        int models = o.Int("models", 1);
        if (models < 1)
        {
            throw new MethodOptionException($"Option 'models' = {models} for method '{name}' must be at least 1.");
        }

        Func<IAttributionMethod> create;
        switch (key)
        {
            case "forward-only" or "forward-only-single":
                var forward = ForwardOnly(o, key == "forward-only");
                create = () => new ForwardOnlyMethod(forward);
                break;
            case "trak":
                var trak = Trak(o, models);
                create = () => new TrakMethod(trak);
                break;
            case "tracin":
                var weights = o.Has("weights") ? o.FloatList("weights") : null;
                create = () => new TracInMethod(false, weights);
                break;
            case "grad-dot":
                create = () => new TracInMethod(true);
                break;
            case "if":
                var influence = Influence(o);
                create = () => new InfluenceFunctionMethod(influence);
                break;
            default:
                throw new MethodOptionException($"Unknown attribution method '{name}'. Valid methods: {string.Join(", ", Names)}.");
        }

        o.ThrowIfUnused(name);
        return models > 1 && key != "trak" ? new EnsembleMethod(models, create) : create();
    }

    // Every fallback is the options type's own default: one default per setting.
    private static ForwardOnlyOptions ForwardOnly(Options o, bool twoTrajectory)
    {
        var d = new ForwardOnlyOptions();
        Refuse(o, "power-iterations", o.Has("eta"), "eta is given, so h_max is not estimated; drop one of them");
        Refuse(o, "readout-eps", o.Has("readout") ? o.Choice("readout", "jacobian", "jacobian", "fd") != "fd" : d.Readout != ForwardReadout.FiniteDifference,
            "it applies to readout=fd only");
        Refuse(o, "basis", o.Has("rank") && o.Int("rank", d.Rank) == 0 && o.Float("basis", 0f) > 0, "the shared input basis needs low-rank responses (rank > 0)");
        return new ForwardOnlyOptions
        {
            TwoTrajectory = twoTrajectory,
            Horizon = o.Int("horizon", d.Horizon),
            Epsilon = o.Float("eps", d.Epsilon),
            StepSize = o.Has("eta") ? o.Float("eta", 0f) : d.StepSize,
            Damping = o.Float("lambda", d.Damping),
            BatchSize = o.Int("batch", d.BatchSize),
            Seed = o.Has("seed") ? (ulong)o.Int("seed", 0) : d.Seed,
            UnitsPerBlock = o.Int("block", d.UnitsPerBlock),
            Rank = o.Int("rank", d.Rank),
            PowerIterations = o.Int("power-iterations", d.PowerIterations),
            Readout = o.Choice("readout", "jacobian", "jacobian", "fd") == "fd" ? ForwardReadout.FiniteDifference : ForwardReadout.Jacobian,
            ReadoutEpsilon = o.Has("readout-eps") ? o.Float("readout-eps", 0f) : d.ReadoutEpsilon,
            InputBasisEnergy = o.Has("basis") ? o.Float("basis", 0f) : d.InputBasisEnergy,
            Sources = o.Has("sources")
                ? o.Choice("sources", "simulated", "simulated", "sum") == "sum" ? SourceResponse.SumOfExamples : SourceResponse.Simulated
                : d.Sources,
        };
    }

    private static TrakOptions Trak(Options o, int models)
    {
        var d = new TrakOptions();
        Refuse(o, "sjlt-nonzeros", o.Choice("projector", "gaussian", "gaussian", "sjlt") != "sjlt", "it applies to projector=sjlt only");
        return new TrakOptions
        {
            ProjectionDim = o.Int("k", d.ProjectionDim),
            Projector = o.Choice("projector", "gaussian", "gaussian", "sjlt") == "sjlt" ? TrakProjector.Sjlt : d.Projector,
            SjltNonzeros = o.Int("sjlt-nonzeros", d.SjltNonzeros),
            RelativeDamping = o.Has("damping") ? o.Float("damping", 0f) : d.RelativeDamping,
            Seed = o.Has("seed") ? (ulong)o.Int("seed", 0) : d.Seed,
            Models = models,
        };
    }

    private static InfluenceOptions Influence(Options o)
    {
        var d = new InfluenceOptions();
        bool cgOptions = o.Has("iterations") | o.Has("tolerance");
        var solver = o.Choice("solver", "auto", "auto", "exact", "cg");
        Refuse(o, o.Has("iterations") ? "iterations" : "tolerance", cgOptions && solver == "exact", "the exact solver does not iterate; use solver=cg");
        return new InfluenceOptions
        {
            Damping = o.Has("lambda") ? o.Float("lambda", 0f) : d.Damping,
            Solver = solver switch
            {
                "exact" => InfluenceSolver.Exact,
                "cg" => InfluenceSolver.ConjugateGradient,
                _ when cgOptions => InfluenceSolver.ConjugateGradient, // iterations / tolerance only mean something for CG
                _ => d.Solver,
            },
            MaxIterations = o.Int("iterations", d.MaxIterations),
            Tolerance = o.Has("tolerance") ? o.Float("tolerance", 0f) : d.Tolerance,
        };
    }

    private static void Refuse(Options o, string key, bool noEffect, string why)
    {
        if (noEffect && o.Has(key))
        {
            throw new MethodOptionException($"Option '{key}' would have no effect here: {why}.");
        }
    }

    private sealed class Options(IReadOnlyDictionary<string, string> values)
    {
        private readonly Dictionary<string, string> _values = values.ToDictionary(kv => kv.Key.Trim().ToLowerInvariant(), kv => kv.Value.Trim());
        private readonly HashSet<string> _known = [];

        public bool Has(string key)
        {
            _known.Add(key);
            return _values.ContainsKey(key);
        }

        public int Int(string key, int fallback) => Has(key)
            ? int.TryParse(_values[key], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw Bad(key, "an integer")
            : fallback;

        public float Float(string key, float fallback) => Has(key)
            ? float.TryParse(_values[key], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw Bad(key, "a number")
            : fallback;

        public float[] FloatList(string key) => _values[key].Split([',', '/']).Select(s =>
            float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw Bad(key, "numbers separated by '/' or ','")).ToArray();

        public string Choice(string key, string fallback, params string[] valid)
        {
            if (!Has(key))
            {
                return fallback;
            }

            var v = _values[key].ToLowerInvariant();
            return valid.Contains(v) ? v : throw Bad(key, "one of " + string.Join("|", valid));
        }

        public void ThrowIfUnused(string method)
        {
            var unknown = _values.Keys.Where(k => !_known.Contains(k)).ToArray();
            if (unknown.Length > 0)
            {
                throw new MethodOptionException($"Unknown option(s) {string.Join(", ", unknown)} for method '{method}'. Valid: {string.Join(", ", _known.Order())}.");
            }
        }

        private MethodOptionException Bad(string key, string what) => new($"Option '{key}' = '{_values[key]}' must be {what}.");
    }
}
