using System.Globalization;
using Attribution.Attribution.Methods;
using Attribution.Engine;

namespace Attribution.Attribution;

/// <summary>
/// Forward-only's readout over a compressed form of the responses (<c>forward-only:sketch=k</c>): every unit's stored
/// response r_u (over the model's linear layers) is sketched once with a shared sparse Johnson–Lindenstrauss projection
/// P (SJLT, 4 nonzeros per coordinate: <see cref="RandomProjection"/>, k floats per unit), and a query's gradient is
/// sketched once per query, so <c>s(q, u) ≈ ⟨P ∇f_q, P r_u⟩</c> costs k multiply-adds per unit instead of the full
/// readout's Σ out·in per layer. The inner product is preserved in expectation with relative error about
/// ‖∇f_q‖‖r_u‖/√k. The inner method's state is what the probes carry (ExportState passes it through); the sketch is
/// derived from it, so an imported method sketches exactly what the offline one did. <see cref="IAttributionMethod.StateBytes"/>
/// counts what scoring reads: the sketches and the projection.
/// </summary>
public sealed class SketchedReadoutMethod : ProbeSetReadout
{
    private const int Nonzeros = 4;
    private readonly int _dimension;
    private readonly ulong _seed;
    private RandomProjection? _projection;
    private ServedModel? _served;
    private bool[] _keep = [];
    private float[] _examples = [];

    /// <summary>Wraps <paramref name="inner"/>; <paramref name="dimension"/> = k floats per unit.</summary>
    public SketchedReadoutMethod(IProbeSetMethod inner, int dimension, ulong seed)
        : base(inner)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        _dimension = dimension;
        _seed = seed;
    }

    /// <inheritdoc />
    public override long StateBytes => (_projection?.Bytes ?? 0) + ((long)_examples.Length * sizeof(float)) + _keep.Length;

    /// <inheritdoc />
    public override string Describe() => Inner.Describe() + string.Create(CultureInfo.InvariantCulture, $"; sketch={_dimension} (SJLT, {Nonzeros} nonzeros, seed {_seed})");

    /// <summary>Sketched scores of every example; a source's score is the sum of its examples' (<see cref="ScoreMatrix.SourceScores"/>).</summary>
    public override ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        var served = _served ?? throw new InvalidOperationException("Call Precompute (or ImportState) before scoring.");
        var scores = Read(queries, _examples, cancellationToken);
        return new ScoreMatrix(scores, queries.Count, served.ExampleSources.Length, served.ExampleSources, served.SourceCount);
    }

    private float[] Read(QueryBatch queries, float[] sketches, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var served = _served ?? throw new InvalidOperationException("Call Precompute (or ImportState) before scoring.");
        int k = _dimension, units = sketches.Length / k, q = queries.Count;
        var scores = new float[(long)q * units];
        if (q == 0 || units == 0)
        {
            return scores;
        }

        var model = served.CreateModel();
        model.LoadFrom(served.Theta);
        var phi = _projection!.Project(model.PerExampleGradients(queries.Batch, queries.Output), cancellationToken, _keep);
        Blas.Gemm(false, true, q, units, k, 1f, phi, sketches, 0f, scores);
        return scores;
    }

    protected override void Build(ServedModel model, ProbeSetState state, CancellationToken cancellationToken)
    {
        state.Validate();
        var probe = model.CreateModel();
        int p = probe.ParameterCount;
        var (keep, _) = ReadoutCoordinates.Of(probe, state.ExampleTensors);
        var projection = new RandomProjection(TrakProjector.Sjlt, p, _dimension, Nonzeros, _seed);
        _examples = Sketch(state.ExampleTensors, state.Examples);
        _keep = keep;
        _projection = projection;
        _served = model;

        float[] Sketch(IReadOnlyList<Contracts.ProbeTensor> tensors, IReadOnlyList<float[]> blocks)
        {
            var set = ForwardOnlyState.Load(probe, tensors, blocks, state.Shared, _seed);
            var dense = new float[p];
            var sketches = new float[(long)blocks.Count * _dimension];
            for (int u = 0; u < blocks.Count; u++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                set.Get(u, dense);
                projection.Project(dense, 1, sketches.AsSpan(u * _dimension, _dimension));
            }

            return sketches;
        }
    }
}
