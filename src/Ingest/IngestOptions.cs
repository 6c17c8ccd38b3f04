using Attribution.Contracts;
using Attribution.Transport;
using Microsoft.Extensions.Options;

namespace Attribution.Ingest;

/// <summary>Ingest options (configuration section <c>Ingest</c>).</summary>
public sealed class IngestOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Ingest";

    /// <summary>The run directory to follow (required): ours (run.json + model.safetensors) or a trainer's
    /// (checkpoints/step-N.safetensors + batches/step-N.json).</summary>
    public string RunDirectory { get; set; } = "";

    /// <summary>Run id (topic key); defaults to the run directory's name.</summary>
    public string? RunId { get; set; }

    /// <summary>"once" (publish what is there, then stop) or "follow" (poll for new checkpoints).</summary>
    public string Mode { get; set; } = "once";

    /// <summary>
    /// A <c>./pipeline train --save-every N</c> run directory: also publish the checkpoints saved along training (listed
    /// in run.json, each at its step with the recipe's train ids) before the final model, so the Simulator publishes a
    /// probe set per checkpoint and a Scorer with <c>Scorer:Checkpoints</c> = J serves <c>forward-only:checkpoints=J</c>
    /// of that run. Default false: the final model alone (one probe set). A trainer's layout publishes every checkpoint
    /// it holds either way.
    /// </summary>
    public bool TrainingCheckpoints { get; set; }

    /// <summary>Seconds between scans in follow mode.</summary>
    public double PollSeconds { get; set; } = 5;

    /// <summary>Sources for the seeded assignment when neither the manifests nor sources.json give them.</summary>
    public int SourceCount { get; set; } = 10;

    /// <summary>Seed of the seeded example → source assignment.</summary>
    public ulong SourceSeed { get; set; } = 1;

    /// <summary>Examples per TrainingBatch event (1..1000).</summary>
    public int BatchChunk { get; set; } = 1000;

    /// <summary>FashionMNIST directory (null = the default install path): Ingest reads the inputs batch events carry from it.</summary>
    public string? DataDirectory { get; set; }

    /// <summary>Partitions of the checkpoints and batches topics when Ingest creates them.</summary>
    public int Partitions { get; set; } = 1;

    /// <summary>The topics Ingest writes, as it creates them (<see cref="TopicProvisioner"/>).</summary>
    public IReadOnlyList<TopicSpec> RequiredTopics() => [new(Topics.Batches, Partitions), new(Topics.Checkpoints, Partitions)];

    /// <summary>In once mode, stop the host when done (the stand-alone `pipeline ingest`); false when other services share the host.</summary>
    public bool StopHostWhenDone { get; set; }

    /// <summary>Whether <see cref="Mode"/> is "follow".</summary>
    public bool Follow => string.Equals(Mode, "follow", StringComparison.OrdinalIgnoreCase);

    /// <summary>What is invalid, or null.</summary>
    public string? Validate()
    {
        if (string.IsNullOrWhiteSpace(RunDirectory))
        {
            return "Ingest:RunDirectory is required: the directory written by './pipeline train --out DIR' or a trainer's directory with checkpoints/ and batches/.";
        }

        if (!Directory.Exists(RunDirectory))
        {
            return $"Ingest:RunDirectory '{RunDirectory}' does not exist; train into it first ('./pipeline train --out {RunDirectory}') or fix the path.";
        }

        if (!Follow && !string.Equals(Mode, "once", StringComparison.OrdinalIgnoreCase))
        {
            return $"Ingest:Mode must be 'once' or 'follow', got '{Mode}'.";
        }

        if (!(PollSeconds is > 0 and <= 3600))
        {
            return $"Ingest:PollSeconds must be in (0, 3600], got {PollSeconds}.";
        }

        if (SourceCount is < 1 or > 1_000_000)
        {
            return $"Ingest:SourceCount must be 1..1000000, got {SourceCount}.";
        }

        if (BatchChunk is < 1 or > 1000)
        {
            return $"Ingest:BatchChunk must be 1..1000 examples per event, got {BatchChunk}.";
        }

        if (Partitions is < 1 or > 1024)
        {
            return $"Ingest:Partitions must be 1..1024, got {Partitions}.";
        }

        if (DataDirectory is { } d && !Directory.Exists(d))
        {
            return $"Ingest:DataDirectory '{d}' does not exist; point it at the FashionMNIST IDX files or leave it unset.";
        }

        return RunId is { Length: 0 } ? "Ingest:RunId must not be empty (leave it unset to use the directory name)." : null;
    }

    /// <summary>The effective run id.</summary>
    public string EffectiveRunId => RunId ?? new DirectoryInfo(Path.GetFullPath(RunDirectory)).Name;
}

internal sealed class IngestOptionsValidator : IValidateOptions<IngestOptions>
{
    public ValidateOptionsResult Validate(string? name, IngestOptions options) =>
        options.Validate() is { } error ? ValidateOptionsResult.Fail(error) : ValidateOptionsResult.Success;
}
