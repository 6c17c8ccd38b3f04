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
    /// forward-only(-single): horizon, eps, eta, lambda, batch, seed, block, rank, power-iterations, readout (jacobian|jvp|fd), readout-eps, basis (input-layer shared basis energy, default 0.99; 0 = off);
    /// trak: k, projector (gaussian|sjlt), sjlt-nonzeros, damping, seed, models;
    /// tracin / grad-dot: weights (comma-separated, tracin only);
    /// if: lambda, solver (auto|exact|cg), iterations, tolerance.
    /// </summary>
    public static IAttributionMethod Create(string name, IReadOnlyDictionary<string, string>? options = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        var o = new Options(options ?? new Dictionary<string, string>());
        IAttributionMethod method = name.Trim().ToLowerInvariant() switch
        {
            "forward-only" or "forward-only-single" => new ForwardOnlyMethod(new ForwardOnlyOptions
            {
                TwoTrajectory = name.Trim().Equals("forward-only", StringComparison.OrdinalIgnoreCase),
                Horizon = o.Int("horizon", 50),
                Epsilon = o.Float("eps", 1e-3f),
                StepSize = o.Has("eta") ? o.Float("eta", 0f) : null,
                Damping = o.Float("lambda", 0f),
                BatchSize = o.Int("batch", 100),
                Seed = (ulong)o.Int("seed", 1),
                UnitsPerBlock = o.Int("block", 100),
                Rank = o.Int("rank", 8),
                PowerIterations = o.Int("power-iterations", 20),
                Readout = o.Choice("readout", "jacobian", "jacobian", "jvp", "fd") switch
                {
                    "fd" => ForwardReadout.FiniteDifference,
                    "jvp" => ForwardReadout.Jvp,
                    _ => ForwardReadout.Jacobian,
                },
                ReadoutEpsilon = o.Has("readout-eps") ? o.Float("readout-eps", 0f) : null,
                InputBasisEnergy = o.Has("basis") ? o.Float("basis", 0f) : 0.99,
            }),
            "trak" => new TrakMethod(new TrakOptions
            {
                ProjectionDim = o.Int("k", 2048),
                Projector = o.Choice("projector", "gaussian", "gaussian", "sjlt") == "sjlt" ? TrakProjector.Sjlt : TrakProjector.Gaussian,
                SjltNonzeros = o.Int("sjlt-nonzeros", 4),
                RelativeDamping = o.Float("damping", 1e-6f),
                Seed = (ulong)o.Int("seed", 7),
                Models = o.Int("models", 0),
            }),
            "tracin" => new TracInMethod(false, o.Has("weights") ? o.FloatList("weights") : null),
            "grad-dot" => new TracInMethod(true),
            "if" => new InfluenceFunctionMethod(new InfluenceOptions
            {
                Damping = o.Float("lambda", 1e-2f),
                Solver = o.Choice("solver", "auto", "auto", "exact", "cg") switch
                {
                    "exact" => InfluenceSolver.Exact,
                    "cg" => InfluenceSolver.ConjugateGradient,
                    _ => InfluenceSolver.Auto,
                },
                MaxIterations = o.Int("iterations", 100),
                Tolerance = o.Float("tolerance", 1e-5f),
            }),
            _ => throw new ArgumentException($"Unknown attribution method '{name}'. Valid methods: {string.Join(", ", Names)}.", nameof(name)),
        };
        o.ThrowIfUnused(name);
        return method;
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

        public float[] FloatList(string key) => _values[key].Split(',').Select(s =>
            float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw Bad(key, "comma-separated numbers")).ToArray();

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
                throw new ArgumentException($"Unknown option(s) {string.Join(", ", unknown)} for method '{method}'. Valid: {string.Join(", ", _known.Order())}.");
            }
        }

        private ArgumentException Bad(string key, string what) => new($"Option '{key}' = '{_values[key]}' must be {what}.");
    }
}
