using System.Globalization;
using Attribution.Attribution.Kernels;
using Attribution.Attribution.Methods;
using Attribution.Engine.Models;

namespace Attribution.Attribution;

/// <summary>
/// Forward-only's readout over a fitted compression of the responses (<c>forward-only:compress=k</c>): the stored
/// responses r_u (over the model's linear layers, m coordinates) are fitted once per probe set with a rank-k basis B
/// (their top singular subspace: <see cref="ResponseBasis"/>), each unit keeps its k coefficients B r_u, and a query's
/// gradient is projected once, so <c>s(q, u) = ⟨B ∇f_q, B r_u⟩</c> costs k multiply-adds per unit (the query pays k·m
/// once). Exact when k ≥ the responses' rank (at most the number of units); otherwise off by at most
/// ‖∇f_q‖·‖r_u − BᵀB r_u‖. Unlike a random sketch the basis follows the responses, so a small k keeps most of their
/// energy. The inner method's state is what the probes carry (ExportState passes it through); the basis is fitted from
/// it, so an imported method scores exactly as the offline one. <see cref="IAttributionMethod.StateBytes"/> counts what
/// scoring reads: the basis, the coefficients and the covered coordinates.
/// </summary>
public sealed class CompressedReadoutMethod : ProbeSetReadout, IPreparedScoring
{
    private readonly int _dimension;
    private ResponseBasis? _basis;
    private ServedModel? _served;
    private int[] _covered = [];
    private float[] _coefficients = [];
    private DocumentRowsReadout? _readout;

    /// <summary>Wraps <paramref name="inner"/>; <paramref name="dimension"/> = k coefficients per unit (at most).</summary>
    public CompressedReadoutMethod(IProbeSetMethod inner, int dimension)
        : base(inner)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        _dimension = dimension;
    }

    /// <summary>The fitted basis (after Precompute or ImportState): its rank and the energy it keeps.</summary>
    public ResponseBasis Basis => _basis ?? throw new InvalidOperationException("Call Precompute (or ImportState) first.");

    /// <inheritdoc />
    public override long StateBytes => (_basis?.Bytes ?? 0) + (((long)_coefficients.Length + _covered.Length) * sizeof(float));

    /// <inheritdoc />
    public override string Describe() => Inner.Describe() + (_basis is { } b
        ? string.Create(CultureInfo.InvariantCulture, $"; compress={_dimension} (fitted basis, rank {b.Rank}, {b.EnergyKept:P2} of the responses' energy)")
        : string.Create(CultureInfo.InvariantCulture, $"; compress={_dimension} (fitted basis)"));

    /// <summary>Compressed scores of every example; a source's score is the sum of its examples' (<see cref="ScoreMatrix.SourceScores"/>).</summary>
    public override ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default) => Readout.Score(Prepare(queries, cancellationToken), cancellationToken);

    /// <summary>The fixed part of a query: its gradient at θ* over the covered coordinates, projected on the basis (k·m).</summary>
    public PreparedQueries Prepare(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var served = _served ?? throw new InvalidOperationException("Call Precompute (or ImportState) before scoring.");
        var basis = _basis!;
        int k = basis.Rank, units = served.ExampleSources.Length, q = queries.Count, m = _covered.Length;
        var phi = new float[(long)q * k];
        if (q > 0 && units > 0 && k > 0)
        {
            var model = served.CreateModel();
            model.LoadFrom(served.Theta);
            var gradients = model.PerExampleGradients(queries.Batch, queries.Output);
            int p = gradients.ParameterCount;
            var dense = new float[(long)q * p];
            gradients.Dense(0, q, dense);
            var gathered = new float[(long)q * m];
            for (int r = 0; r < q; r++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var row = dense.AsSpan(r * p, p);
                var into = gathered.AsSpan(r * m, m);
                for (int j = 0; j < m; j++)
                {
                    into[j] = row[_covered[j]];
                }
            }

            basis.Project(gathered, q, phi);
        }

        return new PreparedQueries(q, new[] { phi });
    }

    /// <summary>The per-document part: every document's k coefficients dotted with the query's (one GEMM).</summary>
    public IDocumentReadout Readout => _readout ?? throw new InvalidOperationException("Call Precompute (or ImportState) before scoring.");

    /// <inheritdoc />
    public IDocumentReadout RepeatedReadout(int factor) => (_readout ?? throw new InvalidOperationException("Call Precompute (or ImportState) before scoring.")).Repeated(factor);

    /// <summary>Every example unit's stored response over the covered coordinates (the linear layers' weights and biases): rows [units, columns].</summary>
    public static (float[] Rows, int Columns) ResponseRows(IModel probe, ProbeSetState state)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(state);
        state.Validate();
        var (rows, covered) = Rows(probe, state, CancellationToken.None);
        return (rows, covered.Length);
    }

    private static (float[] Rows, int[] Covered) Rows(IModel probe, ProbeSetState state, CancellationToken cancellationToken)
    {
        var (_, covered) = ReadoutCoordinates.Of(probe, state.ExampleTensors);
        int m = covered.Length, n = state.Examples.Count;
        var set = ForwardOnlyState.Load(probe, state.ExampleTensors, state.Examples, state.Shared, seed: 0);
        var rows = new float[(long)n * m];
        var dense = new float[probe.ParameterCount];
        for (int u = 0; u < n; u++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            set.Get(u, dense);
            var into = rows.AsSpan(u * m, m);
            for (int j = 0; j < m; j++)
            {
                into[j] = dense[covered[j]];
            }
        }

        return (rows, covered);
    }

    protected override void Build(ServedModel model, ProbeSetState state, CancellationToken cancellationToken)
    {
        state.Validate();
        var probe = model.CreateModel();
        int n = state.Examples.Count;
        if (n != model.ExampleSources.Length)
        {
            throw new ArgumentException($"the probe set holds {n} example units but the served model names sources for {model.ExampleSources.Length}.");
        }

        if (n > 0 && _dimension > n)
        {
            throw new ArgumentException($"compress={_dimension} asks for more basis directions than the probe set's {n} documents; use compress <= {n} (compress = {n} is already exact) or 0 for the full readout.");
        }

        var (rows, covered) = Rows(probe, state, cancellationToken);
        int m = covered.Length;
        var basis = n == 0 ? null : ResponseBasis.Fit(rows, n, m, _dimension);
        var coefficients = new float[(long)n * (basis?.Rank ?? 0)];
        basis?.Project(rows, n, coefficients);
        _basis = basis ?? ResponseBasis.Fit(new float[m], 1, m, 1);
        _coefficients = coefficients;
        _covered = covered;
        _served = model;
        _readout = new DocumentRowsReadout([new DocumentRowsReadout.Block(coefficients, basis?.Rank ?? 0, null)], n, model.ExampleSources, model.SourceCount);
    }
}
