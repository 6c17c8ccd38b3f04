using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Contracts;

namespace Attribution.Scorer;

/// <summary>
/// Forward-only averaged over several checkpoints of one run (<see cref="ScorerOptions.Checkpoints"/> &gt; 1), as
/// <c>forward-only:checkpoints=J</c> scores in <c>eval</c> and <c>attribute</c>: the class is the one the newest
/// checkpoint predicts, each member reads that class's margin out at its own checkpoint's θ from its own probe set, and
/// the scores are the members' mean (<see cref="EnsembleMethod.Mean"/>, the average <see cref="EnsembleMethod"/> takes).
/// The members are chosen by <see cref="Select"/> (eval's <see cref="EnsembleMethod.SpreadCheckpoint"/>).
/// </summary>
public sealed class CheckpointEnsembleScorer : IQueryScorer
{
    private readonly AttributionModel[] _members;

    /// <summary>
    /// Serves <paramref name="members"/> (oldest first; the last is the newest, whose version and predictions are
    /// served) out of <paramref name="wanted"/> asked for. The members must score the same examples with the same sources.
    /// </summary>
    /// <exception cref="ArgumentException">No members, or members over different examples or sources.</exception>
    public CheckpointEnsembleScorer(IReadOnlyList<AttributionModel> members, int wanted)
    {
        ArgumentNullException.ThrowIfNull(members);
        if (members.Count == 0)
        {
            throw new ArgumentException("a checkpoint ensemble needs at least one probe set.", nameof(members));
        }

        _members = [.. members];
        var newest = _members[^1];
        foreach (var m in _members)
        {
            if (!m.ExampleIds.AsSpan().SequenceEqual(newest.ExampleIds) || !m.SourceIds.AsSpan().SequenceEqual(newest.SourceIds)
                || !m.ExampleSources.AsSpan().SequenceEqual(newest.ExampleSources) || m.InputWidth != newest.InputWidth)
            {
                throw new ArgumentException($"probe set {m.Version} covers other examples or sources than {newest.Version} ({m.ExampleIds.Length} vs {newest.ExampleIds.Length} examples); the checkpoints averaged must score the same training set.", nameof(members));
            }
        }

        Wanted = wanted;
        ExampleSourceIds = ExampleSourceMap.Ids(newest.ExampleSources, newest.SourceIds, nameof(members));
        ExampleNorms = EnsembleMethod.Mean(_members.Select(m => m.ExampleNorms));
    }

    /// <summary>The probe sets averaged, oldest first (the last is the newest).</summary>
    public IReadOnlyList<AttributionModel> Members => _members;

    /// <summary>Checkpoints asked for (<see cref="ScorerOptions.Checkpoints"/>); fewer are served while the run has fewer sets.</summary>
    public int Wanted { get; }

    /// <summary>Bytes of the example responses held by all members (J × one set).</summary>
    public long StateBytes => _members.Sum(m => m.StateBytes);

    /// <inheritdoc />
    public string Version => _members[^1].Version;

    /// <summary>
    /// <c>forward-only:checkpoints=j</c> with j the checkpoints actually averaged, written into every attribution (so a
    /// result scored while fewer than <see cref="Wanted"/> sets existed says so).
    /// </summary>
    public string Method => $"{BatchScorer.MethodName}:checkpoints={_members.Length}";

    /// <inheritdoc />
    public string OutputFunction => AttributionModelScorer.MarginOutput;

    /// <inheritdoc />
    public IReadOnlyList<long> ExampleIds => _members[^1].ExampleIds;

    /// <inheritdoc />
    public IReadOnlyList<long>? ExampleSourceIds { get; }

    /// <inheritdoc />
    public IReadOnlyList<long> SourceIds => _members[^1].SourceIds;

    /// <inheritdoc />
    public IReadOnlyList<string>? SourceNames => null;

    /// <summary>Each example's response norm averaged over the members (relative influence divides the averaged score by it).</summary>
    public ReadOnlyMemory<float> ExampleNorms { get; }

    /// <summary>
    /// The members chosen from the <paramref name="saved"/> complete sets of a run (oldest first, ending at the newest):
    /// all of them while there are at most <paramref name="wanted"/>, else <paramref name="wanted"/> spread evenly over
    /// the run and ending at the newest, <see cref="EnsembleMethod.SpreadCheckpoint"/> (indices into the saved sets).
    /// </summary>
    public static int[] Select(int wanted, int saved)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(wanted, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(saved, 1);
        int j = Math.Min(wanted, saved);
        return [.. Enumerable.Range(0, j).Select(m => EnsembleMethod.SpreadCheckpoint(m, j, saved))];
    }

    /// <inheritdoc />
    public void Validate(ModelQuery query) => QueryValidator.Validate(query, _members[^1].InputWidth);

    /// <inheritdoc />
    public QueryScores Score(IReadOnlyList<ModelQuery> queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        int n = queries.Count;
        var x = AttributionModelScorer.PackFeatures(queries, _members[^1].InputWidth);
        var predicted = _members[^1].Predict(x, n);
        var readouts = _members.Select(m => m.Readout(x, predicted)).ToArray();
        return new QueryScores(n, EnsembleMethod.Mean(readouts.Select(r => r.Examples)), EnsembleMethod.Mean(readouts.Select(r => r.Sources)));
    }

    /// <inheritdoc />
    public (int Example, float Score)[] TopK(QueryScores scores, int q, int k)
    {
        ArgumentNullException.ThrowIfNull(scores);
        return ScoreMatrix.TopK(scores.ExampleRow(q).Span, k);
    }
}
