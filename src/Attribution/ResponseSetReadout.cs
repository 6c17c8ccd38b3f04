using Attribution.Attribution.Kernels;
using Attribution.Attribution.Methods;
using Attribution.Engine.Models;

namespace Attribution.Attribution;

/// <summary>
/// Forward-only's per-document part: every stored response (<see cref="ResponseSet"/>) read against queries prepared
/// as their output's gradient factors (<see cref="ResponseSet.JacobianScores"/>), or, with a finite-difference epsilon,
/// against the query rows themselves by two forward passes per document (<see cref="ForwardOnlyReadout"/>).
/// </summary>
public sealed class ResponseSetReadout : IDocumentReadout
{
    private readonly ResponseSet _set;
    private readonly ServedModel _served;
    private readonly float? _finiteDifference;

    /// <summary>Reads <paramref name="set"/> for <paramref name="served"/>'s sources; <paramref name="finiteDifferenceEpsilon"/> null = the JVP readout.</summary>
    public ResponseSetReadout(ResponseSet set, ServedModel served, float? finiteDifferenceEpsilon)
    {
        _set = set ?? throw new ArgumentNullException(nameof(set));
        _served = served ?? throw new ArgumentNullException(nameof(served));
        _finiteDifference = finiteDifferenceEpsilon;
    }

    /// <inheritdoc />
    public int Documents => _set.Units;

    /// <inheritdoc />
    public long Bytes => _set.Bytes;

    /// <inheritdoc />
    public ScoreMatrix Score(PreparedQueries queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var scores = new float[(long)queries.Count * _set.Units];
        if (_finiteDifference is { } eps)
        {
            ForwardOnlyReadout.FiniteDifference(_served.CreateModel(), _served.Theta, queries.As<QueryBatch>(nameof(ResponseSetReadout)), _set, eps, scores, cancellationToken);
        }
        else if (queries.Count > 0)
        {
            _set.JacobianScores(queries.As<GradientFactors>(nameof(ResponseSetReadout)), scores);
        }

        return new ScoreMatrix(scores, queries.Count, _set.Units, _served.ExampleSources, _served.SourceCount);
    }
}
