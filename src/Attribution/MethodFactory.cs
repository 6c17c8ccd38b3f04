using System.Globalization;
using Attribution.Attribution.Methods;
using Attribution.Attribution.Stride;
using Attribution.Engine.Models;

namespace Attribution.Attribution;

/// <summary>
/// Creates attribution methods by their command-line name with string options (<c>key=value</c>, keys
/// case-insensitive). Unknown names and unknown option keys fail with a message that lists the valid ones.
/// </summary>
public static class MethodFactory
{
    /// <summary>Valid method names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["forward-only", "forward-only-single", "trak", "tracin", "grad-dot", "if", "stride", "bm25", "repsim", "blend"];

    /// <summary>
    /// Creates a method. Options per method:
    /// every method: models (independently trained models averaged over, default 1: TRAK ensembles with one shared
    /// projection, the others through <see cref="EnsembleMethod"/>; the problem must hold that many models; not bm25, repsim, blend,
    /// nor a STRIDE combination: ensemble stride alone); checkpoints (J: J of each model's training checkpoints, spread evenly
    /// over its run and ending at the model, the method precomputed at each (forward-only: simulated and read out there;
    /// stride: operators trained there), scores averaged, like TracIn; J times the precompute, state and query time; with
    /// models=m an ensemble of m such averages, m·J precomputes; not tracin, bm25, repsim, blend (give a-/b-checkpoints),
    /// a STRIDE combination, nor trak with models);
    /// forward-only(-single): horizon (steps K) or horizon-epochs (E: K = ⌈E·n/batch⌉; not both; default
    /// <see cref="ForwardOnlyOptions.DefaultHorizonEpochs"/> epochs for the spectral propagation, 50 steps for the others), eps, eta, lambda, batch, seed, block, rank, power-iterations, readout (jacobian|fd), readout-eps, normalize (none|relative: <see cref="RelativeInfluenceMethod"/>), sketch (k: readout over k-float sketches, <see cref="SketchedReadoutMethod"/>; 0 = off), compress (k: readout over k coefficients of a fitted basis of the responses, <see cref="CompressedReadoutMethod"/>; 0 = off), basis (input-layer shared basis energy, default 0.99; 0 = off), propagation (trajectory|spectral|tangent), operator-rank, operator-sample, operator-segments, operator-complement (probes; 0 = weight decay);
    /// trak: k, projector (gaussian|sjlt), sjlt-nonzeros, damping, seed, compress (k': a fitted basis of the whitened features; 0 = off);
    /// tracin: weights (one per training checkpoint, separated by '/' on a command line, e.g. weights=0.5/1/2, or by commas); grad-dot: none;
    /// if: lambda, solver (auto|exact|cg), iterations, tolerance;
    /// bm25 (language models): ngram (token n-gram length of a term, default 1), k1 (default 1.2), b (default 0.75);
    /// repsim (language models): no options.
    /// stride: k (0 = size-aware, the default: 2n in [1000, 10000]), d, design-seed, rank, layer, steps, lr, stability, linearity, sketch, ridge, linearity-inputs, reference,
    /// measure (margin|loss), seed, lambda (fixed|cv), lambda-fraction, folds, nonnegative (on|off), dense,
    /// operators (steered|finetune: the diagnostic <see cref="SubsetFineTunes"/>), finetune-steps, finetune-lr,
    /// combine (none|prior|residual|blend: with forward-only, configured by fo-&lt;its option&gt;, e.g. fo-horizon=100,fo-propagation=spectral,fo-rank=0;
    /// blend = <see cref="BlendMethod"/>), combine-weight (blend only: forward-only's share 0..1, or auto = chosen on the
    /// problem's calibration queries, the default), combine-scale (blend only: z|rank, <see cref="BlendScale"/>), prior-floor.
    /// blend (<see cref="BlendMethod"/>): a, b (the two parts' method names), a-&lt;key&gt; / b-&lt;key&gt; (their options), weight
    /// (b's share 0..1 or auto, the default), scale (z|rank); e.g. blend:a=trak,a-k=1024,b=forward-only,b-horizon=10.
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

        int checkpoints = o.Int("checkpoints", 1);
        if (checkpoints < 1)
        {
            throw new MethodOptionException($"Option 'checkpoints' = {checkpoints} for method '{name}' must be at least 1 (J: the training checkpoints of each model whose precomputes are averaged).");
        }

        Func<IAttributionMethod> create;
        switch (key)
        {
            case "forward-only" or "forward-only-single":
                var forward = ForwardOnly(o, key == "forward-only");
                bool relative = o.Choice("normalize", "none", "none", RelativeInfluenceMethod.OptionValue) == RelativeInfluenceMethod.OptionValue;
                int sketch = o.Int("sketch", 0);
                if (sketch < 0)
                {
                    throw new MethodOptionException($"Option 'sketch' = {sketch} must be 0 (the full readout) or the sketch size k.");
                }

                int compress = o.Int("compress", 0);
                if (compress < 0 || (compress > 0 && sketch > 0))
                {
                    throw new MethodOptionException($"Option 'compress' = {compress} must be 0 (the full readout) or the basis size k, and cannot be combined with 'sketch' (both replace the readout).");
                }

                create = () =>
                {
                    IProbeSetMethod method = new ForwardOnlyMethod(forward);
                    method = sketch > 0 ? new SketchedReadoutMethod(method, sketch, forward.Seed) : method;
                    method = compress > 0 ? new CompressedReadoutMethod(method, compress) : method;
                    return relative ? new RelativeInfluenceMethod(method) : method;
                };
                break;
            case "trak":
                Refuse(o, "checkpoints", checkpoints > 1 && models > 1,
                    "TRAK ensembles its models inside one method (one shared projection); give models=m or checkpoints=J, not both");
                var trak = Trak(o, models);
                create = () => new TrakMethod(trak);
                break;
            case "tracin":
                Refuse(o, "checkpoints", checkpoints > 1, "tracin already sums over every training checkpoint of the model; drop checkpoints");
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
            case "bm25":
                var (ngram, k1, bm) = (o.Int("ngram", 1), o.Float("k1", 1.2f), o.Float("b", 0.75f));
                create = () => new Bm25Method(ngram, k1, bm);
                break;
            case "repsim":
                create = () => new RepresentationSimilarityMethod();
                break;
            case "stride":
                // An ensemble needs a fresh method per member (each trains operators on its own model); one model, one instance.
                var stride = StrideOf(o);
                Refuse(o, "combine", (models > 1 || checkpoints > 1) && o.Choice("combine", "none", "none", "prior", "residual", "blend") != "none",
                    "a combination is not ensembled; ensemble STRIDE alone (stride:models=m, checkpoints=J) and blend it with blend:a=stride,a-models=m,a-checkpoints=J,b=...");
                create = models > 1 || checkpoints > 1 ? () => StrideOf(o) : () => stride;
                break;
            case "blend":
                var blend = BlendOf(o);
                create = () => blend;
                break;
            default:
                throw new MethodOptionException($"Unknown attribution method '{name}'. Valid methods: {string.Join(", ", Names)}.");
        }

        o.ThrowIfUnused(name);
        if ((models > 1 || checkpoints > 1) && key is "bm25" or "repsim" or "blend")
        {
            throw new MethodOptionException($"{(models > 1 ? $"models={models}" : $"checkpoints={checkpoints}")}: '{key}' is not ensembled over trained models or their checkpoints; drop it{(key == "blend" ? " (ensemble a part: a-models=m, a-checkpoints=J, b-...)" : "")}.");
        }

        // One model's checkpoint ensemble (J precomputes at checkpoints spread over its run), and for models=m an ensemble of
        // m of them (each member model's own checkpoints): m·J precomputes, scores averaged.
        Func<IAttributionMethod> member = checkpoints > 1 ? () => new EnsembleMethod(checkpoints, create, EnsembleMembers.TrainingCheckpoints) : create;
        return models > 1 && key != "trak" ? new EnsembleMethod(models, member) : member();
    }

    /// <summary>Methods the services serve (their state travels as a probe set, <see cref="IProbeSetMethod"/>).</summary>
    public static IReadOnlyList<string> ServedNames { get; } = ["forward-only", "stride"];

    /// <summary>
    /// The method a deployment serves, from its setting (<c>Simulator:Method</c>, <c>Scorer:Method</c>): <c>forward-only</c>
    /// (no options: its simulation knobs are the Simulator's own settings) or <c>stride[:options]</c> without
    /// <c>combine</c> or with <c>combine=blend</c> at a fixed <c>combine-weight</c> (the blend's state is both parts'; the
    /// prior and residual combinations' partner state does not travel with the operators).
    /// </summary>
    /// <exception cref="MethodOptionException">Another method, an option it cannot honour, or an invalid option (says which).</exception>
    public static IProbeSetMethod CreateServed(string spec)
    {
        var (name, options) = ParseSpec(spec ?? throw new ArgumentNullException(nameof(spec)));
        name = name.ToLowerInvariant();
        if (!ServedNames.Contains(name))
        {
            throw new MethodOptionException($"method '{name}' is not served from probes; the services serve {string.Join(" or ", ServedNames)} (other methods run with ./pipeline attribute or eval).");
        }

        if (options.ContainsKey("models"))
        {
            throw new MethodOptionException($"models is not served: a deployment serves one model's probe set; drop models from '{spec}'.");
        }

        if (name == "stride" && options.ContainsKey("checkpoints"))
        {
            throw new MethodOptionException($"stride:checkpoints is not served: a deployment serves one probe set per checkpoint and Scorer:Checkpoints averages forward-only's only; drop checkpoints from '{spec}' (stride:checkpoints=J runs with ./pipeline attribute or eval).");
        }

        if (name == "forward-only" && options.Count > 0)
        {
            throw new MethodOptionException($"forward-only takes no options here ({string.Join(", ", options.Keys)}): the Simulator's own settings (Simulator:Horizon, Rank, Propagation, ...) configure it{(options.ContainsKey("checkpoints") ? "; checkpoints=J is served with Scorer:Checkpoints = J" : "")}.");
        }

        if (options.TryGetValue("combine", out var combine) && !combine.Equals("none", StringComparison.OrdinalIgnoreCase)
            && !combine.Equals("blend", StringComparison.OrdinalIgnoreCase))
        {
            throw new MethodOptionException($"stride:combine={combine} is not served: the partner's state does not travel with the operators; serve stride alone or stride:combine=blend with a fixed combine-weight.");
        }

        if (combine is not null && combine.Equals("blend", StringComparison.OrdinalIgnoreCase)
            && (!options.TryGetValue("combine-weight", out var weight) || weight.Equals("auto", StringComparison.OrdinalIgnoreCase)))
        {
            throw new MethodOptionException("stride:combine=blend is served at a fixed weight: give combine-weight=<0..1> (the weight ./pipeline eval or bench lm-lds chose on calibration queries; auto needs ground truth a service does not have).");
        }

        try
        {
            return (IProbeSetMethod)Create(name, options);
        }
        catch (ArgumentException e)
        {
            throw new MethodOptionException($"method '{spec}': {e.Message}");
        }
    }

    /// <summary>Parses <c>name[:key=value,key=value]</c>, a method as typed on a command line or in a setting (keys case-insensitive).</summary>
    /// <exception cref="MethodOptionException">A part is not key=value.</exception>
    public static (string Name, Dictionary<string, string> Options) ParseSpec(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        var name = (colon < 0 ? spec : spec[..colon]).Trim();
        var dict = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (colon >= 0)
        {
            foreach (var part in spec[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                int eq = part.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    throw new MethodOptionException($"method option '{part}' in '{spec}' is not key=value; write e.g. trak:models=10,k=8192 (lists inside a value use '/', e.g. tracin:weights=0.5/1).");
                }

                dict[part[..eq].Trim()] = part[(eq + 1)..].Trim();
            }
        }

        return (name, dict);
    }

    // Every fallback is the options type's own default: one default per setting.
    private static ForwardOnlyOptions ForwardOnly(Options o, bool twoTrajectory)
    {
        var d = new ForwardOnlyOptions();
        Refuse(o, "power-iterations", o.Has("eta"), "eta is given, so h_max is not estimated; drop one of them");
        if (o.Has("horizon") && o.Has("horizon-epochs"))
        {
            throw new MethodOptionException("Options 'horizon' (steps) and 'horizon-epochs' both set the horizon: give one of them (horizon=K steps, or horizon-epochs=E for K = ceil(E·n/batch)).");
        }

        Refuse(o, "readout-eps", o.Has("readout") ? o.Choice("readout", "jacobian", "jacobian", "fd") != "fd" : d.Readout != ForwardReadout.FiniteDifference,
            "it applies to readout=fd only");
        Refuse(o, "basis", o.Has("rank") && o.Int("rank", d.Rank) == 0 && o.Float("basis", 0f) > 0, "the shared input basis needs low-rank responses (rank > 0)");
        ForwardPropagation? propagation = o.Has("propagation")
            ? o.Choice("propagation", "trajectory", "trajectory", "spectral", "tangent") switch
            {
                "spectral" => ForwardPropagation.Spectral,
                "tangent" => ForwardPropagation.Tangent,
                _ => ForwardPropagation.Trajectory,
            }
            : o.Has("eps") ? ForwardPropagation.Trajectory : d.Propagation;
        // Unset: by model (spectral on an MLP, the trajectory elsewhere; ForwardOnlyOptions.PropagationFor), except that ε,
        // which only the ±ε trajectories have, asks for them. Operator keys are then taken, and refused by the simulator on
        // a model whose default is not spectral.
        bool spectral = propagation == ForwardPropagation.Spectral || (propagation is null && twoTrajectory);
        bool fdReadout = o.Has("readout") && o.Choice("readout", "jacobian", "jacobian", "fd") == "fd";
        Refuse(o, "eps", propagation == ForwardPropagation.Tangent, "propagation=tangent is the trajectory's ε → 0 limit (no ε is used)");
        Refuse(o, "eps", propagation == ForwardPropagation.Spectral && !fdReadout, "propagation=spectral is linear in ε (no ε is used; readout=fd takes readout-eps)");
        foreach (var key in new[] { "operator-rank", "operator-sample", "operator-segments", "operator-complement" })
        {
            Refuse(o, key, !spectral, "it configures the spectral propagator; add propagation=spectral");
        }

        return new ForwardOnlyOptions
        {
            TwoTrajectory = twoTrajectory,
            Horizon = o.Int("horizon", d.Horizon) is var k && (k >= 1 || !o.Has("horizon")) ? k
                : throw new MethodOptionException($"Option 'horizon' = {k} for method '{(twoTrajectory ? "forward-only" : "forward-only-single")}' must be at least 1 step (or give horizon-epochs)."),
            HorizonEpochs = o.Has("horizon-epochs") ? o.Float("horizon-epochs", 0f) : d.HorizonEpochs,
            Epsilon = o.Float("eps", d.Epsilon),
            StepSize = o.Has("eta") ? o.Float("eta", 0f) : d.StepSize,
            Damping = o.Float("lambda", d.Damping),
            BatchSize = o.Int("batch", d.BatchSize),
            Seed = o.Has("seed") ? (ulong)o.Int("seed", 0) : d.Seed,
            UnitsPerBlock = o.Int("block", d.UnitsPerBlock),
            Rank = o.Int("rank", d.Rank),
            RankGiven = o.Has("rank"),
            PowerIterations = o.Int("power-iterations", d.PowerIterations),
            Readout = o.Choice("readout", "jacobian", "jacobian", "fd") == "fd" ? ForwardReadout.FiniteDifference : ForwardReadout.Jacobian,
            ReadoutEpsilon = o.Has("readout-eps") ? o.Float("readout-eps", 0f) : d.ReadoutEpsilon,
            InputBasisEnergy = o.Has("basis") ? o.Float("basis", 0f) : d.InputBasisEnergy,
            Propagation = propagation,
            OperatorRank = o.Int("operator-rank", d.OperatorRank),
            OperatorSample = o.Int("operator-sample", d.OperatorSample),
            OperatorSegments = o.Int("operator-segments", d.OperatorSegments),
            OperatorComplementProbes = o.Int("operator-complement", d.OperatorComplementProbes),
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
            Compress = o.Int("compress", 0) is >= 0 and var c ? c : throw new MethodOptionException("Option 'compress' must be 0 (off) or the basis size."),
        };
    }

    private static IAttributionMethod StrideOf(Options o)
    {
        bool blend = o.Choice("combine", "none", "none", "prior", "residual", "blend") == "blend";
        var options = Stride(o);
        Refuse(o, "combine-weight", !blend, "it is the blend's weight; add combine=blend");
        Refuse(o, "combine-scale", !blend, "it is the blend's scale; add combine=blend");
        var (weight, scale) = (BlendWeight(o, "combine-weight", "forward-only's"), BlendScaleOf(o, "combine-scale"));

        // fo-<key> is forward-only's option <key> for the combination's partner (e.g. fo-horizon=100,fo-propagation=spectral).
        var given = o.Prefixed("fo-");
        var partner = new Options(given);
        if (options.Combine == StrideCombination.None && !blend)
        {
            return partner.IsEmpty ? new StrideMethod(options)
                : throw new ArgumentException($"Option(s) {string.Join(", ", given.Keys.Select(k => "fo-" + k))} set the forward-only partner of a combination; add combine=blend, prior or residual, or drop them.");
        }

        var forward = new ForwardOnlyMethod(ForwardOnly(partner, twoTrajectory: true));
        partner.ThrowIfUnused("stride's forward-only partner (fo-<key>)");
        return blend ? new ProbeSetBlendMethod(new StrideMethod(options), forward, weight, scale: scale) : new StrideMethod(options, forward);
    }

    // blend:a=<method>,b=<method>,a-<key>=..,b-<key>=..,weight=auto|w,scale=z|rank: any two methods; a probe-set blend
    // (servable) when both parts are probe-set methods.
    private static IAttributionMethod BlendOf(Options o)
    {
        var (weight, scale) = (BlendWeight(o, "weight", "b's"), BlendScaleOf(o, "scale"));
        IAttributionMethod Part(string part)
        {
            if (!o.Has(part))
            {
                throw new MethodOptionException($"blend needs both parts: give a=<method> and b=<method> (e.g. blend:a=trak,b=forward-only), their options as a-<key>=value, b-<key>=value.");
            }

            var name = o.Raw(part);
            if (name.Trim().Equals("blend", StringComparison.OrdinalIgnoreCase))
            {
                throw new MethodOptionException("a blend's part cannot be a blend: blend two methods.");
            }

            return Create(name, o.Prefixed(part + "-"));
        }

        var (a, b) = (Part("a"), Part("b"));
        return a is IProbeSetMethod pa && b is IProbeSetMethod pb
            ? new ProbeSetBlendMethod(pa, pb, weight, scale: scale)
            : new BlendMethod(a, b, weight, scale: scale);
    }

    // A blend's weight option: auto (null: chosen on calibration queries, the default) or the share in [0, 1].
    private static double? BlendWeight(Options o, string key, string whose)
    {
        if (!o.Has(key) || o.Raw(key).Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        float w = o.Float(key, 0f);
        return w is >= 0 and <= 1 ? w : throw new MethodOptionException($"Option '{key}' = {w} must be auto or {whose} share in [0, 1].");
    }

    private static BlendScale BlendScaleOf(Options o, string key) =>
        o.Choice(key, "z", "z", "rank") == "rank" ? BlendScale.Rank : BlendScale.Standardise;

    private static StrideOptions Stride(Options o)
    {
        var d = new StrideOptions();
        var s = d.Steering;
        var l = d.Lasso;
        return new StrideOptions
        {
            Subsets = o.Int("k", d.Subsets),
            Degree = o.Int("d", d.Degree),
            DesignSeed = o.Has("design-seed") ? (ulong)o.Int("design-seed", 0) : d.DesignSeed,
            Steering = new SteeringOptions
            {
                Form = o.Choice("form", "logit", "logit", "residual") == "residual" ? SteeringForm.Residual : s.Form,
                Rank = o.Int("rank", s.Rank),
                Layer = o.Int("layer", s.Layer),
                Steps = o.Int("steps", s.Steps),
                LearningRate = o.Float("lr", s.LearningRate),
                Stability = o.Float("stability", s.Stability),
                Linearity = o.Float("linearity", s.Linearity),
                SketchSize = o.Int("sketch", s.SketchSize),
                Ridge = o.Float("ridge", s.Ridge),
                LinearityInputs = o.Int("linearity-inputs", s.LinearityInputs),
                ReferenceSize = o.Int("reference", s.ReferenceSize),
                Measure = o.Has("measure") ? o.Choice("measure", "margin", "margin", "loss") == "loss" ? ModelOutput.Loss : ModelOutput.Margin : s.Measure,
                Seed = o.Has("seed") ? (ulong)o.Int("seed", 0) : s.Seed,
            },
            Lasso = l with
            {
                Rule = o.Has("lambda") ? o.Choice("lambda", "fixed", "fixed", "cv") == "cv" ? LambdaRule.CrossValidation : LambdaRule.FixedFraction : l.Rule,
                FixedFraction = o.Has("lambda-fraction") ? o.Float("lambda-fraction", 0f) : l.FixedFraction,
                Folds = o.Int("folds", l.Folds),
                Nonnegative = o.Has("nonnegative") ? o.Choice("nonnegative", "off", "on", "off") == "on" : l.Nonnegative,
            },
            Dense = o.Has("dense") ? o.Float("dense", 0f) : d.Dense,
            Measurements = o.Choice("operators", "steered", "steered", "finetune") == "finetune" ? StrideMeasurements.FineTune : d.Measurements,
            FineTuneSteps = o.Int("finetune-steps", d.FineTuneSteps),
            FineTuneLearningRate = o.Float("finetune-lr", d.FineTuneLearningRate),
            Combine = o.Choice("combine", "none", "none", "prior", "residual", "blend") switch
            {
                "prior" => StrideCombination.Prior,
                "residual" => StrideCombination.Residual,
                _ => d.Combine,
            },
            PriorFloor = o.Has("prior-floor") ? o.Float("prior-floor", 0f) : d.PriorFloor,
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

        public string Raw(string key) => Has(key) ? _values[key] : throw new KeyNotFoundException(key);

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

        public bool IsEmpty => _values.Count == 0;

        /// <summary>The options named <paramref name="prefix"/>&lt;key&gt;, as &lt;key&gt; (they count as known here).</summary>
        public Dictionary<string, string> Prefixed(string prefix)
        {
            var result = new Dictionary<string, string>();
            foreach (var key in _values.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && k.Length > prefix.Length))
            {
                _known.Add(key);
                result[key[prefix.Length..]] = _values[key];
            }

            return result;
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
