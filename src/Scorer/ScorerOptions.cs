using Attribution.Attribution;
using Attribution.Contracts;
using Attribution.Transport;
using Microsoft.Extensions.Options;

namespace Attribution.Scorer;

/// <summary>Scorer options (configuration section <c>Scorer</c>).</summary>
public sealed class ScorerOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Scorer";

    /// <summary>Consumer group on the queries topic; instances in one group split its partitions.</summary>
    public string GroupId { get; set; } = "scorer";

    /// <summary>Use only probe sets of this run (null = the newest complete set of any run).</summary>
    public string? RunId { get; set; }

    /// <summary>Top-k training examples per attribution.</summary>
    public int TopK { get; set; } = 10;

    /// <summary>Most queries scored in one batched readout.</summary>
    public int MaxBatch { get; set; } = 64;

    /// <summary>How long a micro-batch waits for more queries after its first, in milliseconds.</summary>
    public double BatchWindowMs { get; set; } = 2;

    /// <summary>
    /// Queries in flight (one lane each; queries with the same key share a lane and stay in order). Twice
    /// <see cref="MaxBatch"/> by default, so the next batch fills while the previous one's attributions are acknowledged.
    /// </summary>
    public int MaxInFlight { get; set; } = 128;

    /// <summary>Commit after this many handled queries...</summary>
    public int CommitEvery { get; set; } = 200;

    /// <summary>...or after this long, in milliseconds.</summary>
    public int CommitIntervalMs { get; set; } = 1000;

    /// <summary>Query ids remembered per attribution partition for deduplication; must exceed the uncommitted span
    /// (CommitEvery + MaxInFlight, or commit interval × rate per partition).</summary>
    public int DedupWindow { get; set; } = 100_000;

    /// <summary>Partitions of the queries topic when the Scorer creates it (the attributions topic gets the same).</summary>
    public int QueryPartitions { get; set; } = 4;

    /// <summary>The topics the Scorer reads and writes, as it creates them (<see cref="TopicProvisioner"/>): attributions
    /// with exactly as many partitions as queries (query partition p maps to attribution partition p), dead-letter.</summary>
    public IReadOnlyList<TopicSpec> RequiredTopics() =>
        [new(Topics.Queries, QueryPartitions), new(Topics.Attributions, QueryPartitions, PartitionsOf: Topics.Queries), new(Topics.DeadLetter)];

    /// <summary>Flagged source ids (e.g. test-set or licensed sources).</summary>
    public long[] FlaggedSources { get; set; } = [];

    /// <summary>Flagged training example ids.</summary>
    public long[] FlaggedExamples { get; set; } = [];

    /// <summary>Alert when the flagged sources' share of the positive source attribution mass reaches this (0..1].</summary>
    public double AlertThreshold { get; set; } = 0.5;

    /// <summary>
    /// Alert when the training example with the highest <em>relative</em> influence on the query (score ÷ ‖response‖:
    /// how specifically the answer is aligned with that example's own update, whatever its size) is flagged and leads
    /// the runner-up by at least this factor (≥ 1). Raw scores favour examples with large responses (hard, high-loss
    /// ones) for every query; relative influence puts a near-duplicate of the query first. 0 turns the rule off.
    /// </summary>
    public double ExampleLeadRatio { get; set; } = 1.05;

    /// <summary>The two-stage contamination policy (section <c>Scorer:Contamination</c>).</summary>
    public ContaminationSettings Contamination { get; set; } = new();

    /// <summary>
    /// Energy kept when the input layer's example factors are put in a shared basis at load (0 = off): fewer bytes and
    /// multiply-adds per query for a measured, bounded loss (docs/benchmarks/attribution-methods.md: 0.99 keeps scores
    /// at Pearson 0.9947 vs 0.9950 without it).
    /// </summary>
    public double InputBasisEnergy { get; set; } = new Attribution.Methods.ForwardOnlyOptions().InputBasisEnergy;

    /// <summary>
    /// Language-model runs: the readout normalisation of the served forward-only method (<c>none</c>: raw simulated
    /// influence, sources simulated as units; <c>relative</c>: score ÷ ‖response‖ per document and each source's share of
    /// the positive relative influence, <see cref="Attribution.RelativeInfluenceMethod"/>; docs/benchmarks/language-models.md).
    /// </summary>
    public string Normalize { get; set; } = "none";

    /// <summary>
    /// Forward-only: the readout over a fitted compression of the documents' responses (0 = off: the full readout; k ≥ 1:
    /// <c>forward-only:compress=k</c>, <see cref="Attribution.CompressedReadoutMethod"/>, the method <c>./pipeline bench
    /// lm-lds</c> measures). The basis is fitted here once per probe set when the set is loaded (a deterministic function
    /// of the set's probes in key order and k, so every replica fits the same one), and each document keeps k floats; a
    /// set of fewer than k documents is rejected saying so. Applies with <c>Normalize</c> (relative influence over the
    /// compressed readout) but not to a method other than forward-only.
    /// </summary>
    public int Compress { get; set; }

    /// <summary>
    /// OpenBLAS threads for the process, set when the Scorer starts (0 = leave the library's default). One thread
    /// sustained more queries per second and a lower tail latency on 2 cores (docs/benchmarks/pipeline.md): the other
    /// core serves the transport instead of a BLAS thread spinning between small GEMMs. Scale out with more Scorers in
    /// the group rather than more BLAS threads. <c>./pipeline score</c> defaults it to 1.
    /// </summary>
    public int BlasThreads { get; set; }

    /// <summary>
    /// Batches scored at the same time, each on its own thread (1..16). With one, a query that arrives while a batch is
    /// being scored waits for it; with two, a second core can take it. On 2 cores two gave 8-17 % more queries per
    /// second but a higher p99 at half load, as the batches got smaller (docs/benchmarks/pipeline.md). Set
    /// <see cref="BlasThreads"/> to 1 with more than one.
    /// </summary>
    public int ConcurrentBatches { get; set; } = 1;

    /// <summary>
    /// The method served from the probe sets (<see cref="MethodFactory.CreateServed"/>): <c>forward-only</c> (default) or
    /// <c>stride[:options]</c>, the same spec as <c>Simulator:Method</c> (a set of another method is rejected saying so).
    /// </summary>
    public string Method { get; set; } = "forward-only";

    /// <summary>
    /// Checkpoints of the run whose forward-only scores are averaged (1..64; default 1: the newest set alone), as
    /// <c>forward-only:checkpoints=J</c> in <c>eval</c> and <c>attribute</c>: the Scorer keeps the probe sets of up to J
    /// checkpoints (the Simulator publishes one per checkpoint event), chosen spread evenly over the run and ending at the
    /// newest (<see cref="CheckpointEnsembleScorer.Select"/>), and scores a query as the mean of each set's readout at its
    /// own checkpoint's θ, of the class the newest predicts. While the run has fewer sets it averages those there are
    /// (attributions then say <c>forward-only:checkpoints=j</c>). Memory: J × one set (logged when a set goes live).
    /// Served for the exact spectral form (the MLP default); other sets are rejected when J &gt; 1.
    /// </summary>
    public int Checkpoints { get; set; } = 1;

    /// <summary>What is invalid, or null.</summary>
    public string? Validate() => MethodError() ??
        (
        string.IsNullOrWhiteSpace(GroupId) ? "Scorer:GroupId must not be empty (default 'scorer')."
        : RunId is { Length: 0 } ? "Scorer:RunId must not be empty (leave it unset to follow the newest run)."
        : TopK is < 1 or > 10_000 ? $"Scorer:TopK must be 1..10000, got {TopK}."
        : MaxBatch is < 1 or > 4096 ? $"Scorer:MaxBatch must be 1..4096, got {MaxBatch}."
        : !(BatchWindowMs is >= 0 and <= 1000) ? $"Scorer:BatchWindowMs must be 0..1000, got {BatchWindowMs}."
        : MaxInFlight is < 1 or > 1024 ? $"Scorer:MaxInFlight must be 1..1024, got {MaxInFlight}."
        : CommitEvery < 1 || CommitIntervalMs < 1 ? $"Scorer:CommitEvery ({CommitEvery}) and Scorer:CommitIntervalMs ({CommitIntervalMs}) must be >= 1."
        : DedupWindow < CommitEvery + MaxInFlight ? $"Scorer:DedupWindow ({DedupWindow}) must be at least CommitEvery + MaxInFlight ({CommitEvery + MaxInFlight}) to cover the uncommitted span."
        : QueryPartitions is < 1 or > 1024 ? $"Scorer:QueryPartitions must be 1..1024, got {QueryPartitions}."
        : !(AlertThreshold is > 0 and <= 1) ? $"Scorer:AlertThreshold must be in (0, 1], got {AlertThreshold}."
        : !(ExampleLeadRatio is 0 or (>= 1 and <= 100)) ? $"Scorer:ExampleLeadRatio must be 0 (rule off) or in [1, 100], got {ExampleLeadRatio}."
        : !(InputBasisEnergy is >= 0 and <= 1) ? $"Scorer:InputBasisEnergy must be 0 (off) or in (0, 1], got {InputBasisEnergy}."
        : Normalize is not ("none" or Attribution.RelativeInfluenceMethod.OptionValue) ? $"Scorer:Normalize must be none or {Attribution.RelativeInfluenceMethod.OptionValue}, got '{Normalize}'."
        : Compress < 0 ? $"Scorer:Compress must be 0 (the full readout) or the basis size k >= 1 (floats kept per document), got {Compress}."
        : Compress > 0 && !Method.Trim().Equals("forward-only", StringComparison.OrdinalIgnoreCase) ? $"Scorer:Compress = {Compress} applies to forward-only; Scorer:Method is '{Method}': set Compress to 0."
        : BlasThreads is < 0 or > 256 ? $"Scorer:BlasThreads must be 0 (library default) .. 256, got {BlasThreads}."
        : ConcurrentBatches is < 1 or > 16 ? $"Scorer:ConcurrentBatches must be 1..16, got {ConcurrentBatches}."
        : Checkpoints is < 1 or > 64 ? $"Scorer:Checkpoints must be 1..64 (the checkpoints of the run whose forward-only scores are averaged; 1 = the newest alone), got {Checkpoints}."
        : Checkpoints > 1 && !Method.Trim().Equals("forward-only", StringComparison.OrdinalIgnoreCase) ? $"Scorer:Checkpoints = {Checkpoints} averages forward-only over checkpoints; Scorer:Method is '{Method}': set Checkpoints to 1."
        : Checkpoints > 1 && (Compress > 0 || Normalize != "none") ? $"Scorer:Checkpoints = {Checkpoints} serves the exact spectral readout, which Scorer:Compress and Scorer:Normalize do not apply to: set Compress to 0 and Normalize to none, or Checkpoints to 1."
        : Contamination.Validate());

    private string? MethodError()
    {
        try
        {
            _ = MethodFactory.CreateServed(Method);
            return null;
        }
        catch (MethodOptionException e)
        {
            return $"Scorer:Method: {e.Message}";
        }
    }
}

internal sealed class ScorerOptionsValidator : IValidateOptions<ScorerOptions>
{
    public ValidateOptionsResult Validate(string? name, ScorerOptions options) =>
        options.Validate() is { } error ? ValidateOptionsResult.Fail(error) : ValidateOptionsResult.Success;
}
