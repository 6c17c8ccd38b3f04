using Attribution.Attribution.Contamination;
using Attribution.Contracts;
using Attribution.Transport;
using Microsoft.Extensions.Logging;

namespace Attribution.Scorer;

/// <summary>
/// The flagged training items of one live model (a leaked benchmark, a takedown) as contamination evidence for queries
/// given as features: their inputs (<see cref="FlaggedInputIndex"/>, the input match) and their self-influence s(i,i)
/// under the model's own readout (item i's input scored as a query, read at its own column), which
/// <see cref="AttributionEvidence.SelfMatch"/> compares a query's score on the item with. Measured once per probe set,
/// by the same <see cref="IQueryScorer.Score"/> that serves the queries. Immutable.
/// </summary>
public sealed class FlaggedItems
{
    private readonly float[] _selfInfluence;

    private FlaggedItems(string version, FlaggedInputIndex inputs, float[] selfInfluence, int measured)
    {
        Version = version;
        Inputs = inputs;
        _selfInfluence = selfInfluence;
        Measured = measured;
    }

    /// <summary>The model version (run@step) the self-influences were read from.</summary>
    public string Version { get; }

    /// <summary>The flagged items' inputs.</summary>
    public FlaggedInputIndex Inputs { get; }

    /// <summary>
    /// Self-influence per example column of the scorer (aligned with its <see cref="IQueryScorer.ExampleIds"/>), in the
    /// scorer's raw score units; NaN for an example that is not a flagged item with an input.
    /// </summary>
    public ReadOnlySpan<float> SelfInfluence => _selfInfluence;

    /// <summary>Flagged items whose self-influence was read (those among the scorer's examples).</summary>
    public int Measured { get; }

    /// <summary>
    /// The inputs of the flagged training items of run <paramref name="runId"/> up to <paramref name="step"/>: every
    /// example in <paramref name="examples"/> or of a source in <paramref name="sources"/> (configuration:
    /// <c>Scorer:FlaggedExamples</c>, <c>Scorer:FlaggedSources</c>), read from the run's TrainingBatch payloads on
    /// <c>batches</c>, where the Simulator reads the same inputs. Null when nothing is flagged or no flagged example was
    /// trained on (or the batches carry no inputs: a language model's).
    /// </summary>
    /// <exception cref="ArgumentException">More than <paramref name="maxItems"/> flagged items were trained on, or a payload is malformed.</exception>
    public static async Task<FlaggedInputIndex?> ReadInputsAsync(IEventLog log, string runId, long step, IReadOnlySet<long> examples, IReadOnlySet<long> sources, int maxItems,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(sources);
        if (examples.Count == 0 && sources.Count == 0)
        {
            return null;
        }

        var found = new Dictionary<long, (float[] X, long Source)>();
        int features = 0;
        foreach (var r in await TopicReader.ReadToEndAsync(log, Topics.Batches, cancellationToken))
        {
            if (r.KeyString != runId || r.Value.Length == 0)
            {
                continue;
            }

            var batch = EventCodecs.TrainingBatches.Decode(r.Value);
            if (batch.RunId != runId || batch.Step > step || batch.Payload is not { } bytes
                || !Enumerable.Range(0, batch.ExampleIds.Count).Any(i => examples.Contains(batch.ExampleIds[i]) || sources.Contains(batch.SourceIds[i])))
            {
                continue;
            }

            (float[] x, _, int d) = DecodePayload(bytes, batch, runId);
            features = d;
            for (int i = 0; i < batch.ExampleIds.Count; i++)
            {
                long id = batch.ExampleIds[i];
                if ((examples.Contains(id) || sources.Contains(batch.SourceIds[i])) && !found.ContainsKey(id))
                {
                    if (found.Count == maxItems)
                    {
                        throw new ArgumentException($"more than Scorer:Contamination:MaxFlaggedInputs ({maxItems:N0}) flagged training examples (Scorer:FlaggedExamples and the examples of Scorer:FlaggedSources) in run {runId}; flag fewer or raise the limit (each query is matched against every flagged input).");
                    }

                    found[id] = (x[(i * d)..((i + 1) * d)], batch.SourceIds[i]);
                }
            }
        }

        if (found.Count == 0)
        {
            return null;
        }

        var ids = found.Keys.Order().ToArray();
        var inputs = new float[ids.Length * features];
        for (int k = 0; k < ids.Length; k++)
        {
            found[ids[k]].X.CopyTo(inputs, k * features);
        }

        return new FlaggedInputIndex(inputs, features, ids, [.. ids.Select(id => (int)Math.Clamp(found[id].Source, -1, int.MaxValue))]);
    }

    private static (float[] Inputs, int[] Labels, int Features) DecodePayload(byte[] bytes, TrainingBatch batch, string runId)
    {
        try
        {
            return BatchPayload.Decode(bytes, batch.ExampleIds.Count);
        }
        catch (InvalidDataException e)
        {
            throw new ArgumentException($"run {runId} step {batch.Step}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Reads every flagged item's self-influence from <paramref name="scorer"/>: the item's input scored as a query (in
    /// batches of <paramref name="batch"/>), the score at the item's own example column. Items the scorer has no column
    /// for (not among the probed examples) keep the input match only.
    /// </summary>
    /// <exception cref="ArgumentException">The items' inputs are not as wide as the scorer's queries.</exception>
    public static FlaggedItems Measure(IQueryScorer scorer, FlaggedInputIndex inputs, int batch = 64)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        var column = new Dictionary<long, int>(scorer.ExampleIds.Count);
        for (int i = 0; i < scorer.ExampleIds.Count; i++)
        {
            column.TryAdd(scorer.ExampleIds[i], i);
        }

        var self = new float[scorer.ExampleIds.Count];
        Array.Fill(self, float.NaN);
        var items = Enumerable.Range(0, inputs.Count).Where(k => column.ContainsKey(inputs.Ids[k])).ToArray();
        var queries = items.Select(k => new ModelQuery($"flagged-{inputs.Ids[k]}", scorer.Version, inputs.Input(k).ToArray(), null, DateTimeOffset.UnixEpoch)).ToArray();
        foreach (var q in queries)
        {
            try
            {
                scorer.Validate(q);
            }
            catch (QueryRejectedException e)
            {
                throw new ArgumentException($"flagged item {q.QueryId}: {e.Message}", nameof(inputs), e);
            }
        }

        for (int start = 0; start < queries.Length; start += batch)
        {
            var part = queries[start..Math.Min(queries.Length, start + batch)];
            var scores = scorer.Score(part);
            for (int q = 0; q < part.Length; q++)
            {
                int c = column[inputs.Ids[items[start + q]]];
                self[c] = scores.ExampleRow(q).Span[c];
            }
        }

        return new FlaggedItems(scorer.Version, inputs, self, items.Length);
    }
}

/// <summary>Log lines of the flagged items' load (event ids 7031-7032, beside <c>LogMessages</c>).</summary>
internal static partial class FlaggedItemsLog
{
    [LoggerMessage(7031, LogLevel.Information, "Scorer index: {Items} flagged training items of {Version} loaded for the input match, {Measured} with their self-influence, in {Seconds:F2} s")]
    public static partial void FlaggedItemsLoaded(this ILogger logger, string version, int items, int measured, double seconds);

    [LoggerMessage(7032, LogLevel.Warning, "Scorer index: the flagged training items of {Version} cannot be used ({Error}); alerts go without the input and self-influence match")]
    public static partial void FlaggedItemsRejected(this ILogger logger, string version, string error);
}
