using Attribution.Engine.Models;

namespace Attribution.Attribution;

/// <summary>
/// What every method precomputes from: a trained classifier (an MLP in the shared flat layout), the training set it was
/// trained on, the source of every training example, and optionally more checkpoints (independently trained models for
/// ensembles, or checkpoints along the run for TracIn).
/// </summary>
public sealed class AttributionProblem
{
    /// <summary>Creates a problem and validates that every array agrees with the layout and the example count.</summary>
    public AttributionProblem(MlpLayout layout, float[] theta, float[] trainInputs, int[] trainLabels, int[]? sourceIds = null,
        int sourceCount = 0, float weightDecay = 0f, IReadOnlyList<float[]>? checkpoints = null)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(theta);
        ArgumentNullException.ThrowIfNull(trainInputs);
        ArgumentNullException.ThrowIfNull(trainLabels);
        if (theta.Length != layout.ParameterCount)
        {
            throw new ArgumentException($"theta has {theta.Length} values but the layout {string.Join('-', layout.Widths)} needs {layout.ParameterCount}.", nameof(theta));
        }

        int d = layout.Widths[0];
        if (trainInputs.Length != (long)trainLabels.Length * d)
        {
            throw new ArgumentException($"trainInputs has {trainInputs.Length} values; {trainLabels.Length} examples of width {d} need {(long)trainLabels.Length * d}.", nameof(trainInputs));
        }

        int classes = layout.Widths[^1];
        for (int i = 0; i < trainLabels.Length; i++)
        {
            if ((uint)trainLabels[i] >= (uint)classes)
            {
                throw new ArgumentException($"training label {trainLabels[i]} at example {i} is outside 0..{classes - 1}.", nameof(trainLabels));
            }
        }

        sourceIds ??= new int[trainLabels.Length];
        if (sourceIds.Length != trainLabels.Length)
        {
            throw new ArgumentException($"sourceIds has {sourceIds.Length} entries for {trainLabels.Length} examples.", nameof(sourceIds));
        }

        int maxSource = sourceIds.Length == 0 ? -1 : sourceIds.Max();
        if (sourceIds.Length > 0 && sourceIds.Min() < 0)
        {
            throw new ArgumentException("source ids must be non-negative.", nameof(sourceIds));
        }

        SourceCount = Math.Max(sourceCount, maxSource + 1);
        foreach (var c in checkpoints ?? [])
        {
            if (c.Length != layout.ParameterCount)
            {
                throw new ArgumentException($"a checkpoint has {c.Length} values; the layout needs {layout.ParameterCount}.", nameof(checkpoints));
            }
        }

        Layout = layout;
        Theta = theta;
        TrainInputs = trainInputs;
        TrainLabels = trainLabels;
        SourceIds = sourceIds;
        WeightDecay = weightDecay;
        Checkpoints = checkpoints ?? [theta];
    }

    /// <summary>The model's layout (widths).</summary>
    public MlpLayout Layout { get; }

    /// <summary>Trained parameters θ* in the flat layout.</summary>
    public float[] Theta { get; }

    /// <summary>Training inputs, row-major [n, d].</summary>
    public float[] TrainInputs { get; }

    /// <summary>Training labels [n].</summary>
    public int[] TrainLabels { get; }

    /// <summary>Source (publisher / corpus) of every training example [n], 0-based.</summary>
    public int[] SourceIds { get; }

    /// <summary>Number of sources m.</summary>
    public int SourceCount { get; }

    /// <summary>L2 weight decay of the training objective (so the trained point is near-stationary for simulation).</summary>
    public float WeightDecay { get; }

    /// <summary>
    /// The (peak) learning rate the model was trained with, when known (0 = unknown). Forward-only simulation never
    /// steps faster than training did: its default step size is <c>min(1 / (h_max + λ), this)</c>.
    /// </summary>
    public float TrainingLearningRate { get; init; }

    /// <summary>Models for ensembles / checkpoints for TracIn; the first is <see cref="Theta"/> unless given otherwise.</summary>
    public IReadOnlyList<float[]> Checkpoints { get; }

    /// <summary>
    /// Checkpoints saved along the training run of each model in <see cref="Checkpoints"/> (same order; the last is
    /// normally the model itself): what TracIn sums over. Empty when training saved none.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<float[]>> TrainingCheckpoints { get; init; } = [];

    /// <summary>Number of training examples n.</summary>
    public int Count => TrainLabels.Length;

    /// <summary>Input width d.</summary>
    public int InputWidth => Layout.Widths[0];

    /// <summary>The training set as a model batch.</summary>
    public ModelBatch Training => ModelBatch.Classification(TrainInputs, TrainLabels);

    /// <summary>The model at parameters <paramref name="theta"/> (θ* when null): every method's forward, gradient and JVP maths.</summary>
    public IModel CreateModel(ReadOnlySpan<float> theta = default)
    {
        var model = new Mlp(Layout);
        model.LoadFrom(theta.IsEmpty ? Theta : theta);
        return model;
    }
}
