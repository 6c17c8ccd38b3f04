using Attribution.Attribution.Methods;

namespace Attribution.Attribution;

/// <summary>
/// A readout normalisation applied after any probe-set method's readout (<c>forward-only:normalize=relative</c>).
/// Raw simulated influence <c>s(q, u) = ⟨∇f_q, r_u⟩</c> grows with the size of a unit's response ‖r_u‖, so a few
/// documents with large updates (long, high-loss ones, e.g. ASCII art) top every query. Relative influence divides
/// each unit's score by its response norm, <c>s(q, u) / ‖r_u‖</c> (RelatIF-style, Barshan et al. 2020, with the
/// stored response in place of the inverse-Hessian gradient): how far the query's output moves per unit of the
/// document's own update, so documents are ranked by how specifically the query aligns with them, whatever their size.
/// The norms are read from the method's own state (<see cref="ForwardOnlyState.Load"/>, <see cref="Kernels.ResponseSet.Norm"/>),
/// so a Scorer that imported the state and an offline method that precomputed it divide by the same numbers.
/// <para>
/// Source scores become each source's <b>share of the positive relative influence</b> of its documents:
/// <c>S_s(q) = Σ_{u∈s} max(0, rel(q, u)) / Σ_u max(0, rel(q, u))</c>, in [0, 1] and summing to 1 over the sources (all
/// 0 when no document has positive influence). A user reads "62 % of what helped this completion came from
/// fortunes/linux"; the inner method's own source units are not used in this mode.
/// </para>
/// </summary>
public sealed class RelativeInfluenceMethod : IProbeSetMethod
{
    private readonly IProbeSetMethod _inner;
    private float[] _norms = [];
    private int[] _exampleSources = [];
    private int _sourceCount;

    /// <summary>Wraps <paramref name="inner"/> (not yet precomputed or imported).</summary>
    public RelativeInfluenceMethod(IProbeSetMethod inner)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
    }

    /// <summary>The option value that selects this normalisation (<c>normalize=relative</c>).</summary>
    public const string OptionValue = "relative";

    /// <inheritdoc />
    public string Name => _inner.Name;

    /// <inheritdoc />
    public long StateBytes => _inner.StateBytes + (((long)_norms.Length + _exampleSources.Length) * sizeof(float));

    /// <summary>‖r_u‖ of every example unit (after Precompute or ImportState).</summary>
    public IReadOnlyList<float> ResponseNorms => _norms;

    /// <inheritdoc />
    public string Describe() => _inner.Describe() + "; normalize=relative (score / ‖response‖; sources: share of the positive relative influence)";

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        _inner.Precompute(problem, cancellationToken);
        Index(ServedModel.Of(problem), _inner.ExportState());
    }

    /// <inheritdoc />
    public ProbeSetState ExportState() => _inner.ExportState();

    /// <inheritdoc />
    public void ImportState(ServedModel model, ProbeSetState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(state);
        _inner.ImportState(model, state);
        Index(model, state);
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default) => ScoreAll(queries, cancellationToken).Examples;

    /// <inheritdoc />
    public float[] ScoreSources(QueryBatch queries, CancellationToken cancellationToken = default) => ScoreAll(queries, cancellationToken).Sources;

    /// <summary>Relative influence of every example unit and every source's share, from one readout of the inner method.</summary>
    public (ScoreMatrix Examples, float[] Sources) ScoreAll(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        if (_norms.Length == 0 && _exampleSources.Length == 0)
        {
            throw new InvalidOperationException("Call Precompute (or ImportState) before scoring.");
        }

        var raw = _inner.Score(queries, cancellationToken);
        var scores = raw.Scores.ToArray();
        Normalize(scores, queries.Count, _norms);
        return (new ScoreMatrix(scores, queries.Count, _norms.Length, _exampleSources, _sourceCount),
            PositiveShares(scores, queries.Count, _exampleSources, _sourceCount));
    }

    /// <summary>Divides every unit's column by its norm in place (a unit with a zero response scores 0).</summary>
    public static void Normalize(Span<float> scores, int queries, ReadOnlySpan<float> norms)
    {
        int n = norms.Length;
        if (scores.Length != (long)queries * n)
        {
            throw new ArgumentException($"scores hold {scores.Length} values; {queries} queries × {n} units need {(long)queries * n}.", nameof(scores));
        }

        for (int q = 0; q < queries; q++)
        {
            var row = scores.Slice(q * n, n);
            for (int u = 0; u < n; u++)
            {
                row[u] = norms[u] > 0 ? row[u] / norms[u] : 0f;
            }
        }
    }

    /// <summary>Per query, each source's share of the positive scores of its units: [queries, sources], rows sum to 1 (or are all 0).</summary>
    public static float[] PositiveShares(ReadOnlySpan<float> scores, int queries, ReadOnlySpan<int> sourceOf, int sources)
    {
        int n = sourceOf.Length;
        var shares = new float[(long)queries * sources];
        for (int q = 0; q < queries; q++)
        {
            var row = scores.Slice(q * n, n);
            var dst = shares.AsSpan(q * sources, sources);
            double total = 0;
            var sums = new double[sources];
            for (int u = 0; u < n; u++)
            {
                if (row[u] > 0)
                {
                    sums[sourceOf[u]] += row[u];
                    total += row[u];
                }
            }

            for (int s = 0; s < sources && total > 0; s++)
            {
                dst[s] = (float)(sums[s] / total);
            }
        }

        return shares;
    }

    private void Index(ServedModel model, ProbeSetState state)
    {
        state.Validate();
        if (state.Shared.Count != 0)
        {
            throw new ArgumentException($"normalize=relative reads each unit's response from its own block; {_inner.Name}'s state has {state.Shared.Count} shared tensors, which it cannot normalise by.");
        }

        var examples = ForwardOnlyState.Load(model.CreateModel(), state.ExampleTensors, state.Examples, state.Shared, seed: 0);
        var norms = new float[examples.Units];
        for (int u = 0; u < norms.Length; u++)
        {
            norms[u] = examples.Norm(u);
        }

        _norms = norms;
        _exampleSources = model.ExampleSources;
        _sourceCount = model.SourceCount;
    }
}
