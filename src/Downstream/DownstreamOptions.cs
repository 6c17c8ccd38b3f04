using Attribution.Transport;
using Microsoft.Extensions.Options;

namespace Attribution.Downstream;

/// <summary>Options of the downstream host (configuration section <c>Downstream</c>).</summary>
public sealed class DownstreamOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Downstream";

    /// <summary>DuckDB database file of the SQL store (created when missing); ":memory:" keeps it in memory.</summary>
    public string StorePath { get; set; } = "runs/attributions.duckdb";

    /// <summary>How long attribution rows stay in the SQL store (by event time); older rows are deleted.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Compacted topic the source ledger is published to.</summary>
    public string LedgerTopic { get; set; } = "ledger";

    /// <summary>The topics the downstream host writes, as <see cref="TopicProvisioner"/> creates
    /// them: the ledger, compacted, one partition.</summary>
    public IReadOnlyList<TopicSpec> RequiredTopics() => [new(LedgerTopic, Partitions: 1, Compacted: true)];

    /// <summary>How often changed ledger entries are published.</summary>
    public TimeSpan LedgerPublishInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A training run directory (run.json, sources.json): source names and example previews. Optional.</summary>
    public string? RunDirectory { get; set; }

    /// <summary>Most attributions the console keeps in memory for its live view.</summary>
    public int LiveWindow { get; set; } = 500;

    /// <summary>Returns what is invalid, or null.</summary>
    public string? Validate() =>
        string.IsNullOrWhiteSpace(StorePath) ? "Downstream:StorePath is required (a DuckDB file, or ':memory:')."
        : Retention <= TimeSpan.Zero ? $"Downstream:Retention must be positive (e.g. 7.00:00:00 for a week), got {Retention}."
        : LedgerPublishInterval <= TimeSpan.Zero ? $"Downstream:LedgerPublishInterval must be positive, got {LedgerPublishInterval}."
        : LiveWindow is < 1 or > 100_000 ? $"Downstream:LiveWindow must be 1..100000, got {LiveWindow}."
        : RunDirectory is { } dir && !Directory.Exists(dir) ? $"Downstream:RunDirectory '{dir}' does not exist; give a './pipeline train' output (run.json, sources.json) or leave it out."
        : null;
}

/// <summary>Validates <see cref="DownstreamOptions"/> at start-up.</summary>
public sealed class DownstreamOptionsValidator : IValidateOptions<DownstreamOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, DownstreamOptions options) =>
        options?.Validate() is { } error ? ValidateOptionsResult.Fail(error) : ValidateOptionsResult.Success;
}
