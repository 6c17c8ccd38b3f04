namespace Attribution.Attribution;

/// <summary>
/// A readout derived from another probe-set method's state (the compressed and the sketched forward-only readouts):
/// the inner method's state is what the probes carry, so <see cref="ExportState"/> passes it through, and the derived
/// form is built from it both after <see cref="Precompute"/> and after <see cref="ImportState"/> — an imported method
/// scores exactly as the offline one. A source's score is the sum of its examples' (<see cref="ScoreMatrix.SourceScores"/>).
/// </summary>
public abstract class ProbeSetReadout : IProbeSetMethod
{
    /// <summary>Wraps <paramref name="inner"/>, whose state the derived form is built from.</summary>
    protected ProbeSetReadout(IProbeSetMethod inner) => Inner = inner ?? throw new ArgumentNullException(nameof(inner));

    /// <summary>The method whose state the probes carry.</summary>
    protected IProbeSetMethod Inner { get; }

    /// <inheritdoc />
    public string Name => Inner.Name;

    /// <inheritdoc />
    public abstract long StateBytes { get; }

    /// <inheritdoc />
    public abstract string Describe();

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        Inner.Precompute(problem, cancellationToken);
        Build(ServedModel.Of(problem), Inner.ExportState(), cancellationToken);
    }

    /// <inheritdoc />
    public ProbeSetState ExportState() => Inner.ExportState();

    /// <inheritdoc />
    public void ImportState(ServedModel model, ProbeSetState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(state);
        Inner.ImportState(model, state);
        Build(model, state, CancellationToken.None);
    }

    /// <inheritdoc />
    public abstract ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default);

    /// <summary>The per-source sums of <see cref="Score"/>, as for every method.</summary>
    public float[] ScoreSources(QueryBatch queries, CancellationToken cancellationToken = default) => Score(queries, cancellationToken).SourceScores;

    /// <summary>Builds the derived form from the inner method's state for <paramref name="model"/>.</summary>
    protected abstract void Build(ServedModel model, ProbeSetState state, CancellationToken cancellationToken);
}
