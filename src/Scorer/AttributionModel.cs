using Attribution.Attribution;
using Attribution.Attribution.Kernels;
using Attribution.Attribution.Methods;
using Attribution.Attribution.Probes;
using Attribution.Engine.IO;
using Attribution.Engine.Models;

namespace Attribution.Scorer;

/// <summary>The scores of a batch of queries against one probe set.</summary>
/// <param name="Predicted">Predicted class per query (the label whose margin is attributed).</param>
/// <param name="ExampleScores">[queries, examples] row-major.</param>
/// <param name="SourceScores">[queries, sources] row-major.</param>
public sealed record BatchScores(int[] Predicted, float[] ExampleScores, float[] SourceScores);

/// <summary>
/// One complete probe set ready to score: θ of its checkpoint, every example's response and each example's source (a
/// source's score is the sum of its examples' scores), served by the same <see cref="ForwardOnlyMethod"/> that
/// <c>./pipeline attribute</c> and <c>eval</c> score with
/// (<see cref="ForwardOnlyMethod.FromResponses(MlpLayout, float[], ResponseSet, int[], int, ForwardOnlyOptions?)"/>).
/// Immutable once built; the index swaps whole models, so a batch always scores against one consistent set.
/// </summary>
public sealed class AttributionModel
{
    private readonly ForwardOnlyMethod _method;

    /// <summary>
    /// Builds the model from decoded example probes (unit floats in <paramref name="exampleFormat"/>), the sources
    /// scored (<paramref name="sourceIds"/>) and each example's index into them (<paramref name="exampleSources"/>);
    /// <paramref name="inputBasisEnergy"/> &gt; 0 puts the input layer's example factors in a shared basis.
    /// </summary>
    public AttributionModel(string runId, long step, float[] theta, ProbeFormat exampleFormat, long[] exampleIds, IReadOnlyList<float[]> exampleFloats,
        long[] sourceIds, int[] exampleSources, double inputBasisEnergy = 0)
        : this(runId, step, theta, (exampleFormat ?? throw new ArgumentNullException(nameof(exampleFormat))).Layout, exampleIds, Load(exampleFormat, exampleFloats),
            sourceIds, exampleSources, inputBasisEnergy)
    {
        ExampleFormat = exampleFormat;
    }

    /// <summary>
    /// Builds the model from a response set already loaded (the exact spectral form: every example's gradient factors
    /// and Ritz coefficients plus the shared directions, <see cref="ForwardOnlyState.Load"/>, as <c>eval</c> and
    /// <c>attribute</c> hold it); the rest as the other constructor.
    /// </summary>
    public AttributionModel(string runId, long step, float[] theta, MlpLayout layout, long[] exampleIds, ResponseSet examples,
        long[] sourceIds, int[] exampleSources, double inputBasisEnergy = 0)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(sourceIds);
        RunId = runId;
        Step = step;
        Layout = layout;
        Theta = theta;
        ExampleIds = exampleIds;
        SourceIds = sourceIds;
        ExampleSources = exampleSources;
        Examples = examples;
        _method = ForwardOnlyMethod.FromResponses(Layout, theta, Examples, exampleSources, sourceIds.Length, new ForwardOnlyOptions { InputBasisEnergy = inputBasisEnergy });
        InputBasis = _method.InputBasis;
        ExampleNorms = new float[Examples.Units];
        for (int u = 0; u < ExampleNorms.Length; u++)
        {
            ExampleNorms[u] = Examples.Norm(u);
        }
    }

    /// <summary>
    /// The model of an MLP's forward-only set in the exact spectral form (<see cref="ForwardOnlySimulator.SimulateResponses"/>):
    /// the example probes (gradient factors and Ritz coefficients, one layout) and the shared directions joined from
    /// their chunks, loaded by <see cref="ForwardOnlyState.Load"/>, the code <c>attribute</c> and <c>eval</c> read a
    /// state with. Throws <see cref="ProbeFormatException"/> when the probes mix layouts, <see cref="ArgumentException"/>
    /// when they are not an MLP's or the directions do not fit them.
    /// </summary>
    public static AttributionModel FromExact(string runId, long step, float[] theta, IReadOnlyList<Contracts.InfluenceProbe> examples, IReadOnlyList<StateTensor> shared,
        long[] sourceIds, int[] exampleSources, double inputBasisEnergy = 0)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var first = examples.Count > 0 ? examples[0] : throw new ArgumentException("a probe set needs at least one example probe.", nameof(examples));
        var layout = new UnitLayout(first.Architecture, first.Rank, first.Tensors, first.Precision);
        if (examples.Any(p => !ProbeCodec.IsIn(p, layout)))
        {
            throw new ProbeFormatException("the set mixes probe layouts; re-run the Simulator for this checkpoint with one configuration.");
        }

        var mlp = CheckpointStore.Create(first.Architecture) as Mlp ?? throw new ArgumentException($"{first.Architecture} is not an image classifier (mlp:<widths>).");
        var responses = ForwardOnlyState.Load(mlp, first.Tensors, [.. examples.Select(p => p.Factors)], shared, new ForwardOnlyOptions().Seed);
        return new AttributionModel(runId, step, theta, mlp.Layout, [.. examples.Select(p => p.SubjectId)], responses, sourceIds, exampleSources, inputBasisEnergy);
    }

    /// <summary>Run id.</summary>
    public string RunId { get; }

    /// <summary>The input layer's shared basis (dimension, energy kept) when one is in use.</summary>
    public (int Dimension, double EnergyKept)? InputBasis { get; }

    /// <summary>Checkpoint step.</summary>
    public long Step { get; }

    /// <summary>"run@step", the model version written into attributions.</summary>
    public string Version => $"{RunId}@{Step}";

    /// <summary>Model layout.</summary>
    public MlpLayout Layout { get; }

    /// <summary>Checkpoint parameters.</summary>
    public float[] Theta { get; }

    /// <summary>Example id of each example unit.</summary>
    public long[] ExampleIds { get; }

    /// <summary>Each example's index into <see cref="SourceIds"/>.</summary>
    public int[] ExampleSources { get; }

    /// <summary>Id of each source scored (a source's score sums its examples').</summary>
    public long[] SourceIds { get; }

    /// <summary>Format of the example probes; null for the exact spectral form (gradient factors + Ritz coefficients, directions shared).</summary>
    public ProbeFormat? ExampleFormat { get; }

    /// <summary>Example responses.</summary>
    public ResponseSet Examples { get; }

    /// <summary>‖response‖ of every example unit: divides a score into a relative influence (see ScorerWorker's alerts).</summary>
    public float[] ExampleNorms { get; }

    /// <summary>Input width.</summary>
    public int InputWidth => Layout.Widths[0];

    /// <summary>
    /// Scores <paramref name="count"/> queries (inputs [count, d]): predicted class by a forward pass, then the
    /// forward-only readout of that class's margin along every example response, summed per source for the sources.
    /// </summary>
    public BatchScores Score(float[] inputs, int count)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var predicted = Predict(inputs, count);
        var (examples, sources) = Readout(inputs, predicted);
        return new BatchScores(predicted, examples, sources);
    }

    /// <summary>The class this checkpoint's θ predicts for each of <paramref name="count"/> queries (inputs [count, d]).</summary>
    public int[] Predict(float[] inputs, int count) => _method.Predict(inputs, count);

    /// <summary>
    /// The forward-only readout at this checkpoint of the margin of class <paramref name="classes"/>[q] for each query
    /// (inputs [count, d], count = classes.Length): [queries, examples] and [queries, sources] row-major.
    /// </summary>
    public (float[] Examples, float[] Sources) Readout(float[] inputs, int[] classes)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(classes);
        int count = classes.Length;
        var x = inputs.Length == count * InputWidth ? inputs : inputs.AsSpan(0, count * InputWidth).ToArray();
        var (examples, sources) = _method.ScoreAll(new QueryBatch(x, classes, InputWidth));
        return (examples.Scores, sources);
    }

    /// <summary>Bytes of the example responses held (the set's share of the Scorer's memory).</summary>
    public long StateBytes => _method.StateBytes;

    /// <summary>Top-k (example index, score) of query row <paramref name="q"/>, best first.</summary>
    public (int Example, float Score)[] TopK(BatchScores scores, int q, int k)
    {
        ArgumentNullException.ThrowIfNull(scores);
        int n = Examples.Units;
        return ScoreMatrix.TopK(scores.ExampleScores.AsSpan(q * n, n), k);
    }

    private static ResponseSet Load(ProbeFormat format, IReadOnlyList<float[]> units)
    {
        var set = new ResponseSet(format.Layout, units.Count, format.Rank);
        if (set.Ranks.SequenceEqual(format.LayerRanks))
        {
            // Probes carry the factors in the set's own layout: store them as they are.
            for (int u = 0; u < units.Count; u++)
            {
                set.SetFactors(u, units[u]);
            }

            return set;
        }

        var flat = new float[format.Layout.ParameterCount];
        for (int u = 0; u < units.Count; u++)
        {
            // Another factor layout: expand, then store (low-rank layers are re-factorised).
            format.Expand(units[u], flat);
            set.Set(u, flat);
        }

        return set;
    }
}
