using Attribution.Transport.Messages;

namespace Attribution.Scorer;

/// <summary>A contamination verdict for one query: which rule fired, its value and threshold, and the flagged ids behind it.</summary>
public sealed record ContaminationVerdict(AlertRule Rule, double Score, double Threshold, IReadOnlyList<long> FlaggedSourceIds, IReadOnlyList<long> FlaggedExampleIds);

/// <summary>
/// The contamination policy (pure: no I/O). A query is flagged when the flagged sources carry at least
/// <c>AlertThreshold</c> of its positive source attribution (<see cref="AlertRule.SourceShare"/>), or else when the
/// training example its answer aligns with most specifically, by relative influence, is a flagged one and leads the
/// runner-up by <c>ExampleLeadRatio</c> (<see cref="AlertRule.ExampleLead"/>).
/// </summary>
public sealed class AlertPolicy
{
    private readonly HashSet<long> _sources;
    private readonly HashSet<long> _examples;
    private readonly double _shareThreshold;
    private readonly double _leadRatio;

    /// <summary>Creates the policy.</summary>
    public AlertPolicy(IEnumerable<long> flaggedSources, IEnumerable<long> flaggedExamples, double shareThreshold, double leadRatio)
    {
        _sources = [.. flaggedSources];
        _examples = [.. flaggedExamples];
        _shareThreshold = shareThreshold;
        _leadRatio = leadRatio;
    }

    /// <summary>The policy of <paramref name="options"/> (FlaggedSources, FlaggedExamples, AlertThreshold, ExampleLeadRatio).</summary>
    public static AlertPolicy From(ScorerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new AlertPolicy(options.FlaggedSources, options.FlaggedExamples, options.AlertThreshold, options.ExampleLeadRatio);
    }

    /// <summary>Whether anything is flagged (when not, no query can be flagged and evaluation is skipped).</summary>
    public bool Enabled => _sources.Count > 0 || _examples.Count > 0;

    /// <summary>
    /// The verdict for one query from its source scores (aligned with <paramref name="sourceIds"/>) and example scores
    /// and response norms (aligned with <paramref name="exampleIds"/>); null when no rule fires.
    /// </summary>
    public ContaminationVerdict? Evaluate(ReadOnlySpan<float> sourceScores, IReadOnlyList<long> sourceIds,
        ReadOnlySpan<float> exampleScores, ReadOnlySpan<float> exampleNorms, IReadOnlyList<long> exampleIds)
    {
        var contributors = new List<long>();
        var share = FlaggedShare(sourceScores, sourceIds, _sources, contributors);
        if (share >= _shareThreshold && contributors.Count > 0)
        {
            return new ContaminationVerdict(AlertRule.SourceShare, share, _shareThreshold, contributors, []);
        }

        if (ExampleLead(exampleScores, exampleNorms, exampleIds, _examples) is { } lead && lead.Lead >= _leadRatio)
        {
            return new ContaminationVerdict(AlertRule.ExampleLead, lead.Lead, _leadRatio, [], [lead.ExampleId]);
        }

        return null;
    }

    /// <summary>
    /// The example with the highest relative influence (score ÷ ‖response‖) when it is flagged and positive: its id and
    /// its lead over the runner-up (+∞ when no other example is positive); null otherwise.
    /// </summary>
    internal static (long ExampleId, double Lead)? ExampleLead(ReadOnlySpan<float> scores, ReadOnlySpan<float> norms, IReadOnlyList<long> ids, HashSet<long> flagged)
    {
        if (flagged.Count == 0)
        {
            return null;
        }

        int best = -1;
        double first = 0, second = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (norms[i] <= 0)
            {
                continue;
            }

            double relative = scores[i] / norms[i];
            if (relative > first)
            {
                second = first;
                first = relative;
                best = i;
            }
            else if (relative > second)
            {
                second = relative;
            }
        }

        return best >= 0 && flagged.Contains(ids[best]) ? (ids[best], second > 0 ? first / second : double.PositiveInfinity) : null;
    }

    /// <summary>
    /// Flagged share of positive mass: Σ max(s, 0) over flagged units / Σ max(s, 0) over all units (0 when nothing is
    /// positive). Positive scores are the units that pushed the prediction up, so this is "how much of what supports the
    /// answer comes from flagged data". The flagged units with positive scores are added to <paramref name="contributors"/>.
    /// </summary>
    internal static double FlaggedShare(ReadOnlySpan<float> scores, IReadOnlyList<long> ids, HashSet<long> flagged, List<long> contributors)
    {
        if (flagged.Count == 0)
        {
            return 0;
        }

        double total = 0, hit = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] > 0)
            {
                total += scores[i];
                if (flagged.Contains(ids[i]))
                {
                    hit += scores[i];
                    contributors.Add(ids[i]);
                }
            }
        }

        return total > 0 ? hit / total : 0;
    }
}
