using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Attribution.Transport;

/// <summary>
/// Makes sure the topics a service needs exist and fit, the way an operator can live with: it creates the missing ones;
/// when the log refuses or cannot create them (ACLs, a broker without CreateTopics) it uses the topics that already
/// exist if their partition counts and compaction fit; otherwise it stops with one line that names each topic to create
/// (or recreate) and how (<see cref="TopicProvisioningException"/>). A compaction it cannot read (no DescribeConfigs) is
/// logged as unverified and accepted.
/// </summary>
public sealed class TopicProvisioner(IEventLog log, ILogger? logger = null)
{
    private readonly ILogger _logger = logger ?? NullLogger.Instance;

    /// <summary>Ensures <paramref name="specs"/> (a topic named twice is merged: the larger partition count wins).</summary>
    /// <returns>The partition count of every topic, as it is now.</returns>
    /// <exception cref="TopicProvisioningException">Topics are missing and could not be created, or exist but do not fit.</exception>
    /// <exception cref="EventLogException">The log could not be reached.</exception>
    public async Task<IReadOnlyDictionary<string, int>> EnsureAsync(IEnumerable<TopicSpec> specs, CancellationToken cancellationToken = default)
    {
        var wanted = Merge(specs);
        var present = new Dictionary<string, TopicDescription>(
            await log.DescribeTopicsAsync([.. wanted.Select(s => s.Name)], cancellationToken).ConfigureAwait(false), StringComparer.Ordinal);
        var failures = new Dictionary<string, EventLogException>(StringComparer.Ordinal);
        foreach (var spec in wanted.Where(s => !present.ContainsKey(s.Name)))
        {
            var partitions = TargetPartitions(spec, wanted, present);
            try
            {
                await log.CreateTopicAsync(spec with { Partitions = partitions }, cancellationToken).ConfigureAwait(false);
                present[spec.Name] = new TopicDescription(spec.Name, partitions, spec.Compacted);
            }
            catch (EventLogException e)
            {
                _logger.TopicCreateFailed(spec.Name, e.Message);
                failures[spec.Name] = e;
            }
        }

        var assessment = Assess(wanted, present, failures.ToDictionary(kv => kv.Key, kv => kv.Value.Message, StringComparer.Ordinal));
        foreach (var (topic, why) in assessment.Unverified)
        {
            _logger.TopicConfigUnverified(topic, why);
        }

        if (assessment.Problems.Count > 0)
        {
            throw new TopicProvisioningException(assessment.Message(log.Kind), assessment.Problems, failures.Values.FirstOrDefault());
        }

        return present.Where(kv => wanted.Any(s => s.Name == kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value.Partitions, StringComparer.Ordinal);
    }

    /// <summary>
    /// Decides, without touching the log, whether the topics as they are fit the specs: what must be created or
    /// recreated (and how), and which compactions could not be checked.
    /// </summary>
    internal static TopicAssessment Assess(IReadOnlyList<TopicSpec> wanted, IReadOnlyDictionary<string, TopicDescription> present, IReadOnlyDictionary<string, string> createErrors)
    {
        var problems = new List<TopicProblem>();
        var unverified = new List<(string, string)>();
        foreach (var spec in wanted)
        {
            var partitions = TargetPartitions(spec, wanted, present);
            if (!present.TryGetValue(spec.Name, out var topic))
            {
                problems.Add(new TopicProblem(spec.Name, partitions, spec.Compacted, Exists: false, "missing", createErrors.GetValueOrDefault(spec.Name)));
                continue;
            }

            var why = new List<string>();
            if (spec.PartitionsOf is { } other && topic.Partitions != partitions)
            {
                why.Add($"has {topic.Partitions} partitions, needs as many as {other}");
            }

            if (topic.Compacted is { } compacted && compacted != spec.Compacted)
            {
                why.Add(compacted ? "is compacted" : "is not compacted");
            }
            else if (topic.Compacted is null)
            {
                unverified.Add((spec.Name, topic.ConfigError ?? "unknown"));
            }

            if (why.Count > 0)
            {
                problems.Add(new TopicProblem(spec.Name, partitions, spec.Compacted, Exists: true, string.Join(", ", why), null));
            }
        }

        return new TopicAssessment(problems, unverified);
    }

    /// <summary>One spec per name, in first-seen order; a name asked for twice must agree on compaction.</summary>
    internal static IReadOnlyList<TopicSpec> Merge(IEnumerable<TopicSpec> specs)
    {
        ArgumentNullException.ThrowIfNull(specs);
        var merged = new List<TopicSpec>();
        foreach (var spec in specs)
        {
            spec.Validate();
            var i = merged.FindIndex(m => m.Name == spec.Name);
            if (i < 0)
            {
                merged.Add(spec);
                continue;
            }

            var m = merged[i];
            if (m.Compacted != spec.Compacted)
            {
                throw new ArgumentException($"Topic '{spec.Name}' is asked for both compacted and not compacted.", nameof(specs));
            }

            merged[i] = m with { Partitions = Math.Max(m.Partitions, spec.Partitions), PartitionsOf = m.PartitionsOf ?? spec.PartitionsOf };
        }

        // A topic whose partition count follows another is created after it.
        return [.. merged.OrderBy(s => s.PartitionsOf is not null && merged.Any(o => o.Name == s.PartitionsOf) ? 1 : 0)];
    }

    private static int TargetPartitions(TopicSpec spec, IReadOnlyList<TopicSpec> wanted, IReadOnlyDictionary<string, TopicDescription> present) =>
        spec.PartitionsOf is not { } other ? spec.Partitions
        : present.TryGetValue(other, out var found) ? found.Partitions
        : wanted.FirstOrDefault(w => w.Name == other)?.Partitions ?? spec.Partitions;
}

/// <summary>A topic that is missing (and could not be created) or exists but does not fit, and how it should be.</summary>
/// <param name="Topic">Topic name.</param>
/// <param name="Partitions">The partition count it needs.</param>
/// <param name="Compacted">Whether it must be compacted.</param>
/// <param name="Exists">It exists (recreate it) or not (create it).</param>
/// <param name="Why">"missing", or what does not fit.</param>
/// <param name="CreateError">Why creating it failed (null when creation was not tried).</param>
public sealed record TopicProblem(string Topic, int Partitions, bool Compacted, bool Exists, string Why, string? CreateError)
{
    /// <summary>E.g. "probes (4 partitions, cleanup.policy=compact)".</summary>
    public string How => $"{Topic} ({Partitions} partition{(Partitions == 1 ? "" : "s")}, cleanup.policy={(Compacted ? "compact" : "delete")})";
}

/// <summary>What <see cref="TopicProvisioner.Assess"/> found.</summary>
internal sealed record TopicAssessment(IReadOnlyList<TopicProblem> Problems, IReadOnlyList<(string Topic, string Why)> Unverified)
{
    /// <summary>The one line an operator reads.</summary>
    public string Message(string logKind)
    {
        var parts = new List<string>();
        if (Problems.Where(p => !p.Exists).ToList() is { Count: > 0 } missing)
        {
            parts.Add("create " + string.Join(", ", missing.Select(p => p.How)));
        }

        if (Problems.Where(p => p.Exists).ToList() is { Count: > 0 } unfit)
        {
            parts.Add("recreate " + string.Join(", ", unfit.Select(p => $"{p.How}: it {p.Why}")));
        }

        var reason = Problems.Select(p => p.CreateError).FirstOrDefault(e => e is not null);
        return $"The {logKind} topics this command needs are missing or do not fit{(reason is null ? "" : $" and could not be created ({reason})")}: {string.Join("; ", parts)}; then run it again.";
    }
}

/// <summary>Topics are missing and could not be created, or exist but do not fit. The message is one line for an
/// operator: each topic to create or recreate, with its partitions and cleanup policy.</summary>
public sealed class TopicProvisioningException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TopicProvisioningException(string message, IReadOnlyList<TopicProblem> problems, Exception? inner) : base(message, inner) =>
        Problems = problems;

    /// <summary>Creates the exception.</summary>
    public TopicProvisioningException() => Problems = [];

    /// <summary>Creates the exception.</summary>
    public TopicProvisioningException(string message) : base(message) => Problems = [];

    /// <summary>Creates the exception.</summary>
    public TopicProvisioningException(string message, Exception inner) : base(message, inner) => Problems = [];

    /// <summary>Each topic to create or recreate.</summary>
    public IReadOnlyList<TopicProblem> Problems { get; }
}
