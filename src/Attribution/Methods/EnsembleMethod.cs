using System.Globalization;
using System.Numerics.Tensors;

namespace Attribution.Attribution.Methods;

/// <summary>What an <see cref="EnsembleMethod"/>'s members are.</summary>
public enum EnsembleMembers
{
    /// <summary>Independently trained models (<see cref="AttributionProblem.Checkpoints"/> 0..M−1).</summary>
    Models,

    /// <summary>
    /// M checkpoints saved along the one model's training (<see cref="AttributionProblem.TrainingCheckpoints"/>[0]), spread
    /// evenly over the run and ending at the last (normally the model itself; <see cref="EnsembleMethod.SpreadCheckpoint"/>), as TracIn
    /// sums over them: one trained model, M precomputes (forward-only: a simulation and readout at each; STRIDE: operators
    /// trained, measured and recovered at each). Inside a <see cref="Models"/> ensemble each model averages its own checkpoints
    /// (<see cref="AttributionProblem.Member"/> carries that model's).
    /// </summary>
    TrainingCheckpoints,
}

/// <summary>
/// Averages a method's scores over M independently trained models (<see cref="AttributionProblem.Checkpoints"/>
/// 0..M−1), as TRAK averages over its ensemble: member m precomputes on the problem with θ* = model m (and that model's
/// training checkpoints), and a query's score is the mean of the members' scores. Used for every method but TRAK, which
/// ensembles internally with one shared projection.
/// </summary>
public sealed class EnsembleMethod : IAttributionMethod
{
    private readonly Func<IAttributionMethod> _create;
    private readonly List<IAttributionMethod> _members = [];
    private AttributionProblem? _problem;

    /// <summary>Creates an ensemble of <paramref name="models"/> members, each made by <paramref name="create"/>.</summary>
    public EnsembleMethod(int models, Func<IAttributionMethod> create, EnsembleMembers members = EnsembleMembers.Models)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(models, 1);
        ArgumentNullException.ThrowIfNull(create);
        Models = models;
        Over = members;
        _create = create;
        Name = create().Name;
    }

    /// <summary>Members averaged over (models, or one model's training checkpoints: <see cref="Over"/>).</summary>
    public int Models { get; }

    /// <summary>What the members are.</summary>
    public EnsembleMembers Over { get; }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The precomputed members (one per model).</summary>
    public IReadOnlyList<IAttributionMethod> Members => _members;

    /// <inheritdoc />
    public long StateBytes => _members.Sum(m => m.StateBytes);

    /// <inheritdoc />
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{(_members.Count > 0 ? _members[0].Describe() : _create().Describe())}; scores averaged over {(Over == EnsembleMembers.Models ? $"{Models} independently trained models" : $"{Models} training checkpoints of one model spread over its run (the method precomputed and scored at each)")}");

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        if (Over == EnsembleMembers.Models && problem.Checkpoints.Count < Models)
        {
            throw new MethodOptionException($"{Name}:models={Models} needs {Models} independently trained models but only {problem.Checkpoints.Count} were given.");
        }

        int saved = problem.TrainingCheckpoints.Count > 0 ? problem.TrainingCheckpoints[0].Count : 0;
        if (Over == EnsembleMembers.TrainingCheckpoints && saved < Models)
        {
            throw new MethodOptionException($"{Name}:checkpoints={Models} needs {Models} checkpoints saved along training but {saved} were given (train with --save-every N).");
        }

        _members.Clear();
        for (int m = 0; m < Models; m++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var member = _create();
            member.Precompute(Over == EnsembleMembers.Models ? problem.Member(m) : problem.AtTrainingCheckpoint(SpreadCheckpoint(m, Models, saved)), cancellationToken);
            _members.Add(member);
        }

        _problem = problem;
    }

    /// <summary>
    /// Member <paramref name="m"/> of <paramref name="members"/> taken from <paramref name="saved"/> training checkpoints:
    /// spread evenly over the run and ending at the last, <c>⌈(m+1)·S/J⌉ − 1</c> (10 saved, 5 members: the 2nd, 4th, …, 10th).
    /// The early part of training carries the gain: on FashionMNIST 1,000 the last 10 of 20 checkpoints added 0.014 LDS,
    /// all 20 added 0.093 (docs/benchmarks/attribution-eval.md).
    /// </summary>
    public static int SpreadCheckpoint(int m, int members, int saved) => (int)Math.Ceiling((m + 1.0) * saved / members) - 1;

    /// <summary>
    /// The members' scores averaged, element by element (summed in member order, then scaled by 1/count): the average
    /// <see cref="Score"/> and <see cref="ScoreSources"/> take, and the Scorer's over the checkpoints it serves
    /// (<c>Scorer:Checkpoints</c>), so served = eval. Each array is read once, as the sequence yields it.
    /// </summary>
    /// <exception cref="ArgumentException">No members, or arrays of different lengths.</exception>
    public static float[] Mean(IEnumerable<float[]> members)
    {
        ArgumentNullException.ThrowIfNull(members);
        float[]? sum = null;
        int count = 0;
        foreach (var member in members)
        {
            if (sum is null)
            {
                sum = member.ToArray();
            }
            else if (member.Length != sum.Length)
            {
                throw new ArgumentException($"member {count} has {member.Length} scores, member 0 {sum.Length}: the members must score the same examples.", nameof(members));
            }
            else
            {
                TensorPrimitives.Add(sum, member, sum);
            }

            count++;
        }

        if (sum is null)
        {
            throw new ArgumentException("no members to average.", nameof(members));
        }

        TensorPrimitives.Multiply(sum, 1f / count, sum);
        return sum;
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var problem = _problem ?? throw new InvalidOperationException("Call Precompute before scoring.");
        var first = _members[0].Score(queries, cancellationToken);
        var sum = Mean(_members.Skip(1).Select(m => m.Score(queries, cancellationToken).Scores).Prepend(first.Scores));
        return new ScoreMatrix(sum, first.QueryCount, first.ExampleCount, problem.SourceIds, problem.SourceCount);
    }

    /// <inheritdoc />
    public float[] ScoreSources(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        if (_members.Count == 0)
        {
            throw new InvalidOperationException("Call Precompute before scoring.");
        }

        var sum = Mean(_members.Select(m => m.ScoreSources(queries, cancellationToken)));
        return sum;
    }
}
