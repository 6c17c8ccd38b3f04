using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Attribution.Probes;
using Attribution.Contracts;
using Attribution.Transport;
using Microsoft.Extensions.Options;

namespace Attribution.Simulator;

/// <summary>Simulator options (configuration section <c>Simulator</c>); the simulation knobs are those of
/// <see cref="ForwardOnlyOptions"/> (docs/forward-only-attribution.md §3), with its defaults: the Simulator publishes
/// what <c>./pipeline eval</c> and <c>attribute</c> measure.</summary>
public sealed class SimulatorOptions
{
    private static readonly ForwardOnlyOptions Defaults = new();

    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Simulator";

    /// <summary>Consumer group on the checkpoints topic.</summary>
    public string GroupId { get; set; } = "simulator";

    /// <summary>
    /// Horizon K in gradient steps; 0 (default) takes it from <see cref="HorizonEpochs"/> and the checkpoint's training
    /// set (<see cref="ForwardOnlyOptions.StepsFor"/>). Setting both is refused.
    /// </summary>
    public int Horizon { get; set; } = Defaults.Horizon;

    /// <summary>
    /// Horizon in epochs of the shared mini-batches (K = ⌈E·n / batch⌉ for the n examples simulated); unset uses
    /// <see cref="ForwardOnlyOptions.DefaultHorizonEpochs"/> for the spectral propagation (an MLP's default) and
    /// <see cref="ForwardOnlyOptions.DefaultHorizonSteps"/> steps for the trajectory and tangent ones.
    /// </summary>
    public double? HorizonEpochs { get; set; } = Defaults.HorizonEpochs;

    /// <summary>Perturbation weight ε.</summary>
    public float Epsilon { get; set; } = Defaults.Epsilon;

    /// <summary>Step size η; unset uses min(1/h_max from power iteration, the recipe's learning rate).</summary>
    public float? StepSize { get; set; } = Defaults.StepSize;

    /// <summary>Proximal damping λ.</summary>
    public float Damping { get; set; } = Defaults.Damping;

    /// <summary>
    /// Per-layer rank of example probes (0 = full) where responses are simulated densely (a language model; an MLP with
    /// Propagation trajectory or tangent). An MLP's spectral probes (the default) are exact and have no rank: per example
    /// the gradient factors plus Ritz coefficients, the Ritz vectors published once per checkpoint as shared chunks.
    /// </summary>
    public int Rank { get; set; } = Defaults.Rank;

    /// <summary>Element type of example probes: "f16" (default, half the bytes) or "f32". Source probes are always full f32.</summary>
    public string Precision { get; set; } = "f16";

    /// <summary>Units simulated (and published) per block.</summary>
    public int UnitsPerBlock { get; set; } = Defaults.UnitsPerBlock;

    /// <summary>Shared mini-batch size (0 = full batch).</summary>
    public int BatchSize { get; set; } = Defaults.BatchSize;

    /// <summary>Seed of the mini-batch sequence, power iteration and SVD sketch.</summary>
    public ulong Seed { get; set; } = Defaults.Seed;

    /// <summary>Two-trajectory (±ε) simulation.</summary>
    public bool TwoTrajectory { get; set; } = Defaults.TwoTrajectory;

    /// <summary>Use only the first N training examples (ascending id) of a run; 0 = all. For demos.</summary>
    public int MaxExamples { get; set; }

    /// <summary>Partitions of the probes topic when the Simulator creates it.</summary>
    public int ProbePartitions { get; set; } = 4;

    /// <summary>The topics the Simulator reads and writes, as it creates them (<see cref="TopicProvisioner"/>): probes
    /// compacted (a Scorer rebuilds its index from it), checkpoints, dead-letter.</summary>
    public IReadOnlyList<TopicSpec> RequiredTopics() => [new(Topics.Probes, ProbePartitions, Compacted: true), new(Topics.DeadLetter), new(Topics.Checkpoints)];

    /// <summary>
    /// How many Simulator instances share each checkpoint's probe set (default 1: this instance simulates all of it).
    /// Every instance must have the same value and all indices 0..Instances-1 must run for sets to complete.
    /// </summary>
    public int Instances { get; set; } = 1;

    /// <summary>This instance's index among <see cref="Instances"/> (0-based); it simulates the units <see cref="UnitPartition"/> gives it.</summary>
    public int Instance { get; set; }

    /// <summary>
    /// The consumer group actually joined: <see cref="GroupId"/>, suffixed with "-&lt;Instance&gt;-of-&lt;Instances&gt;" when
    /// the set is shared, so every instance sees every checkpoint (instances with the same index share a group: standbys).
    /// </summary>
    public string EffectiveGroupId => Instances > 1 ? $"{GroupId}-{Instance}-of-{Instances}" : GroupId;

    /// <summary>
    /// How responses are propagated (<see cref="ForwardOnlyOptions.Propagation"/>): unset (default) chooses by checkpoint,
    /// <c>Spectral</c> for an MLP and <c>Trajectory</c> for a transformer; <c>Trajectory</c> (the ±ε runs of
    /// <see cref="Horizon"/> steps per block of units) or <c>Spectral</c> (the same map linearised at θ*: one operator per
    /// checkpoint, then two GEMMs per block; 3.1x less CPU on the transformer, docs/benchmarks/language-models.md) or
    /// <c>Tangent</c> (MLP checkpoints only: the trajectory's exact ε → 0 response, one tangent per unit instead of two ±ε
    /// runs, about 2x less CPU; a transformer checkpoint is refused with that message) fix it.
    /// </summary>
    public ForwardPropagation? Propagation { get; set; } = Defaults.Propagation;

    /// <summary>Lanczos steps of the spectral operator (with <see cref="Propagation"/> = Spectral).</summary>
    public int OperatorRank { get; set; } = Defaults.OperatorRank;

    /// <summary>
    /// Training rows the spectral operator's Hessian is averaged over (<see cref="ForwardOnlyOptions.OperatorSample"/>;
    /// 0 = the rows the horizon's mini-batches visit). Each Lanczos step costs two gradients of this many rows, so it sets the operator's cost.
    /// </summary>
    public int OperatorSample { get; set; } = Defaults.OperatorSample;

    /// <summary>
    /// The method whose probe set is published (<see cref="MethodFactory.CreateServed"/>): <c>forward-only</c> (default:
    /// one simulated probe per unit, the settings above) or <c>stride[:k=..,d=..,...]</c> (the subset design and
    /// steering operators trained on the checkpoint: per example its subset ids, the operators as shared chunks). The
    /// Scorer must serve the same method (<c>Scorer:Method</c>).
    /// </summary>
    public string Method { get; set; } = "forward-only";

    /// <summary>Values per shared-state chunk (<see cref="SharedChunks"/>: STRIDE's operators, an MLP's spectral Ritz vectors; default 131,072 = 512 KiB in f32, under Kafka's 1 MB message limit).</summary>
    public int SharedChunkFloats { get; set; } = SharedChunks.DefaultMaxFloats;

    /// <summary>The exact-span index built for language-model checkpoints (section <c>Simulator:Spans</c>).</summary>
    public SpanIndexOptions Spans { get; set; } = new();

    /// <summary>The forward-only options these settings describe.</summary>
    public ForwardOnlyOptions ToForwardOnly() => new()
    {
        Horizon = Horizon,
        HorizonEpochs = HorizonEpochs,
        Epsilon = Epsilon,
        StepSize = StepSize,
        Damping = Damping,
        BatchSize = BatchSize,
        Seed = Seed,
        TwoTrajectory = TwoTrajectory,
        UnitsPerBlock = UnitsPerBlock,
        Rank = Rank,
        Propagation = Propagation,
        OperatorRank = OperatorRank,
        OperatorSample = OperatorSample,
    };

    /// <summary>What is invalid, or null.</summary>
    public string? Validate()
    {
        if (string.IsNullOrWhiteSpace(GroupId))
        {
            return "Simulator:GroupId must not be empty (default 'simulator').";
        }

        if (ProbeFormat.ParsePrecision(Precision) is null)
        {
            return $"Simulator:Precision must be 'f16' or 'f32', got '{Precision}'.";
        }

        if (Rank is < 0 or > ProbeFormat.MaxRank)
        {
            return $"Simulator:Rank must be 0 (full) .. {ProbeFormat.MaxRank}, got {Rank}.";
        }

        if (MaxExamples < 0 || ProbePartitions is < 1 or > 1024)
        {
            return $"Simulator:MaxExamples must be >= 0 (got {MaxExamples}) and Simulator:ProbePartitions 1..1024 (got {ProbePartitions}).";
        }

        if (Instances is < 1 or > 1024 || Instance < 0 || Instance >= Instances)
        {
            return $"Simulator:Instances must be 1..1024 (got {Instances}) and Simulator:Instance 0..Instances-1 (got {Instance}).";
        }

        try
        {
            if (MethodFactory.CreateServed(Method) is not ForwardOnlyMethod && Instances > 1)
            {
                return $"Simulator:Method '{Method}' trains its whole state at once: it cannot be shared by Simulator:Instances = {Instances}; use 1.";
            }
        }
        catch (MethodOptionException e)
        {
            return $"Simulator:Method: {e.Message}";
        }

        if (SharedChunkFloats is < 1024 or > 1 << 24)
        {
            return $"Simulator:SharedChunkFloats must be 1024..16777216, got {SharedChunkFloats}.";
        }

        if (Spans.Validate() is { } spans)
        {
            return spans;
        }

        try
        {
            ToForwardOnly().Validate();
        }
        catch (ArgumentException e)
        {
            return $"Simulator:{e.ParamName}: {e.Message}";
        }

        return null;
    }
}

internal sealed class SimulatorOptionsValidator : IValidateOptions<SimulatorOptions>
{
    public ValidateOptionsResult Validate(string? name, SimulatorOptions options) =>
        options.Validate() is { } error ? ValidateOptionsResult.Fail(error) : ValidateOptionsResult.Success;
}
