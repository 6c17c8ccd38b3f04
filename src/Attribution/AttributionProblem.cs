using Attribution.Engine.Models;

namespace Attribution.Attribution;

/// <summary>
/// What every method precomputes from: a trained model (any <see cref="IModel"/>: an MLP classifier in the shared flat
/// layout, or a GPT language model), its parameters θ*, the training set as a <see cref="ModelBatch"/> (one row per
/// attribution unit: a classification example, or a training document for a language model), the source of every row,
/// and optionally more checkpoints (independently trained models for ensembles, or checkpoints along the run for
/// TracIn).
/// </summary>
public sealed class AttributionProblem
{
    private readonly Func<IModel> _createModel;
    private MlpLayout? _layout; // set by the MLP constructor and copied by Member


    /// <summary>An MLP classifier problem: validates that every array agrees with the layout and the example count.</summary>
    public AttributionProblem(MlpLayout layout, float[] theta, float[] trainInputs, int[] trainLabels, int[]? sourceIds = null,
        int sourceCount = 0, float weightDecay = 0f, IReadOnlyList<float[]>? checkpoints = null)
        : this(MlpFactory(layout), CheckMlp(layout, theta, trainInputs, trainLabels), sourceIds, sourceCount, weightDecay, checkpoints)
    {
        _layout = layout;
    }

    /// <summary>
    /// A problem over any model: <paramref name="createModel"/> returns a fresh model of the trained architecture (its
    /// parameters are overwritten), <paramref name="training"/> holds one row per attribution unit (for a language model
    /// <see cref="Documents"/> builds it from tokenised documents).
    /// </summary>
    public AttributionProblem(Func<IModel> createModel, float[] theta, ModelBatch training, int[]? sourceIds = null,
        int sourceCount = 0, float weightDecay = 0f, IReadOnlyList<float[]>? checkpoints = null)
        : this(createModel, (theta, training), sourceIds, sourceCount, weightDecay, checkpoints)
    {
    }

    private AttributionProblem(Func<IModel> createModel, (float[] Theta, ModelBatch Training) run, int[]? sourceIds, int sourceCount,
        float weightDecay, IReadOnlyList<float[]>? checkpoints)
    {
        ArgumentNullException.ThrowIfNull(createModel);
        var (theta, training) = run;
        ArgumentNullException.ThrowIfNull(theta);
        if (training.Labels is null || (training.Inputs is null && training.Tokens is null))
        {
            throw new ArgumentException("the training set is an empty ModelBatch: build it with ModelBatch.Classification or AttributionProblem.Documents.", nameof(training));
        }

        var probe = createModel();
        if (theta.Length != probe.ParameterCount)
        {
            throw new ArgumentException($"theta has {theta.Length} values but the model {probe.Architecture} needs {probe.ParameterCount}.", nameof(theta));
        }

        if (training.Inputs is { } inputs && training.Count > 0 && inputs.Length % training.Count != 0)
        {
            throw new ArgumentException($"training inputs hold {inputs.Length} values, not a whole number of rows for {training.Count} examples.", nameof(training));
        }

        int n = training.Count;
        sourceIds ??= new int[n];
        if (sourceIds.Length != n)
        {
            throw new ArgumentException($"sourceIds has {sourceIds.Length} entries for {n} examples.", nameof(sourceIds));
        }

        int maxSource = sourceIds.Length == 0 ? -1 : sourceIds.Max();
        if (sourceIds.Length > 0 && sourceIds.Min() < 0)
        {
            throw new ArgumentException("source ids must be non-negative.", nameof(sourceIds));
        }

        SourceCount = Math.Max(sourceCount, maxSource + 1);
        foreach (var c in checkpoints ?? [])
        {
            if (c.Length != probe.ParameterCount)
            {
                throw new ArgumentException($"a checkpoint has {c.Length} values; the model {probe.Architecture} needs {probe.ParameterCount}.", nameof(checkpoints));
            }
        }

        _createModel = createModel;
        Architecture = probe.Architecture;
        ParameterCount = probe.ParameterCount;
        Theta = theta;
        Training = training;
        SourceIds = sourceIds;
        WeightDecay = weightDecay;
        Checkpoints = checkpoints ?? [theta];
    }

    /// <summary>
    /// A language-model problem: one training row per document. <paramref name="documents"/> are framed token ids (the
    /// tokenizer's <c>EncodeDocument</c>: document start first); see <see cref="Documents"/> for the rows.
    /// </summary>
    public static AttributionProblem ForGpt(GptConfig config, float[] theta, IReadOnlyList<int[]> documents, int[]? sourceIds = null,
        int sourceCount = 0, float weightDecay = 0f, IReadOnlyList<float[]>? checkpoints = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        return new AttributionProblem(() => new GptModel(new Gpt(config, seed: 0)), theta, Documents(documents, config.Context),
            sourceIds, sourceCount, weightDecay, checkpoints);
    }

    /// <summary>
    /// Training documents as language-model rows: row i holds document i's first <c>T + 1</c> framed tokens as inputs
    /// [0, T) and next-token targets [1, T], with T = min(<paramref name="context"/>, longest document − 1); shorter
    /// documents are padded (input 0, target −1, ignored). A document's output is its summed next-token NLL over those
    /// targets, so a document longer than the context is represented by its first window.
    /// </summary>
    public static ModelBatch Documents(IReadOnlyList<int[]> documents, int context)
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentOutOfRangeException.ThrowIfLessThan(context, 1);
        int longest = 1;
        for (int i = 0; i < documents.Count; i++)
        {
            if (documents[i] is null || documents[i].Length < 2)
            {
                throw new ArgumentException($"document {i} has {documents[i]?.Length ?? 0} tokens; a training document needs the document start and at least one token.", nameof(documents));
            }

            longest = Math.Max(longest, documents[i].Length - 1);
        }

        return PaddedRows(documents.Select(d => (d.AsSpan(0, Math.Min(d.Length - 1, context)).ToArray(), d.AsSpan(1, Math.Min(d.Length - 1, context)).ToArray())).ToArray(),
            Math.Min(longest, context));
    }

    /// <summary>Rows of different lengths padded to <paramref name="length"/>: input 0, target −1 (ignored) after the end.</summary>
    internal static ModelBatch PaddedRows(IReadOnlyList<(int[] Inputs, int[] Targets)> rows, int length)
    {
        var tokens = new int[(long)rows.Count * length];
        var targets = new int[tokens.Length];
        Array.Fill(targets, -1);
        for (int i = 0; i < rows.Count; i++)
        {
            rows[i].Inputs.CopyTo(tokens, i * length);
            rows[i].Targets.CopyTo(targets, i * length);
        }

        return ModelBatch.Sequences(tokens, targets, rows.Count, length);
    }

    /// <summary>The model's architecture string (<see cref="IModel.Architecture"/>).</summary>
    public string Architecture { get; }

    /// <summary>Number of parameters p.</summary>
    public int ParameterCount { get; }

    /// <summary>True when the model is a language model (the training rows are token sequences).</summary>
    public bool IsLanguageModel => Training.Tokens is not null;

    /// <summary>
    /// The output a query measures and TRAK's per-unit feature is the gradient of: the classifier margin, or a language
    /// model's log-likelihood (of a query's completion tokens; of a training document's tokens).
    /// </summary>
    public ModelOutput Measurement => IsLanguageModel ? ModelOutput.LogLikelihood : ModelOutput.Margin;

    /// <summary>True for an MLP problem (<see cref="Layout"/>, <see cref="TrainInputs"/> and the stacked MLP paths apply).</summary>
    public bool HasMlpLayout => _layout is not null;

    /// <summary>The MLP's layout (widths); only for an MLP problem.</summary>
    public MlpLayout Layout => _layout ?? throw new InvalidOperationException($"This problem's model is {Architecture}, not an MLP: use CreateModel() and Training instead of the MLP layout.");

    /// <summary>Trained parameters θ* in the flat layout.</summary>
    public float[] Theta { get; }

    /// <summary>The training set: one row per attribution unit (classification example or document).</summary>
    public ModelBatch Training { get; }

    /// <summary>Training inputs, row-major [n, d] (classifiers only).</summary>
    public float[] TrainInputs => Training.Inputs ?? throw new InvalidOperationException($"This problem's model is {Architecture}: its training rows are token sequences, not float inputs.");

    /// <summary>Training labels [n] (classifiers only).</summary>
    public int[] TrainLabels => Training.Inputs is not null ? Training.Labels : throw new InvalidOperationException($"This problem's model is {Architecture}: its training rows have next-token targets, not class labels.");

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

    /// <summary>
    /// Held-out queries with ground truth a method may tune itself on in Precompute (a benchmark's calibration split;
    /// null outside benchmarks). Only methods asked to calibrate read it (<see cref="BlendMethod"/> with weight auto).
    /// </summary>
    public CalibrationSet? Calibration { get; init; }

    /// <summary>Number of training units n (examples or documents).</summary>
    public int Count => Training.Count;

    /// <summary>Input width d (classifiers only).</summary>
    public int InputWidth => Layout.Widths[0];

    /// <summary>The model at parameters <paramref name="theta"/> (θ* when null): every method's forward, gradient and JVP maths.</summary>
    public IModel CreateModel(ReadOnlySpan<float> theta = default)
    {
        var model = _createModel();
        model.LoadFrom(theta.IsEmpty ? Theta : theta);
        return model;
    }

    /// <summary>
    /// The problem as seen from ensemble member <paramref name="model"/>: θ* = <see cref="Checkpoints"/>[model], with
    /// that model's <see cref="TrainingCheckpoints"/>; same model kind, training set and sources.
    /// </summary>
    public AttributionProblem Member(int model)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)model, (uint)Checkpoints.Count, nameof(model));
        return new AttributionProblem(_createModel, (Checkpoints[model], Training), SourceIds, SourceCount, WeightDecay, null)
        {
            _layout = _layout,
            TrainingLearningRate = TrainingLearningRate,
            TrainingCheckpoints = TrainingCheckpoints.Count > model ? [TrainingCheckpoints[model]] : [],
        };
    }

    /// <summary>
    /// The problem as seen from checkpoint <paramref name="checkpoint"/> saved along the first model's training:
    /// θ* = <see cref="TrainingCheckpoints"/>[0][checkpoint]; same model kind, training set, sources and learning rate.
    /// </summary>
    public AttributionProblem AtTrainingCheckpoint(int checkpoint)
    {
        var saved = TrainingCheckpoints.Count > 0 ? TrainingCheckpoints[0] : [];
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)checkpoint, (uint)saved.Count, nameof(checkpoint));
        return new AttributionProblem(_createModel, (saved[checkpoint], Training), SourceIds, SourceCount, WeightDecay, null)
        {
            _layout = _layout,
            TrainingLearningRate = TrainingLearningRate,
        };
    }

    /// <summary>Throws unless <paramref name="queries"/> are rows this problem's model reads (same kind, width or context).</summary>
    public void CheckQueries(QueryBatch queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        if (IsLanguageModel != (queries.Batch.Tokens is not null))
        {
            throw new ArgumentException($"the queries are {(queries.Batch.Tokens is null ? "float inputs" : "token sequences")} but the model {Architecture} takes {(IsLanguageModel ? "token sequences" : "float inputs")}.", nameof(queries));
        }

        if (_layout is not null && queries.InputWidth != _layout.Widths[0])
        {
            throw new ArgumentException($"queries have width {queries.InputWidth}; the model takes {_layout.Widths[0]}.", nameof(queries));
        }
    }

    private static Func<IModel> MlpFactory(MlpLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        return () => new Mlp(layout);
    }

    private static (float[], ModelBatch) CheckMlp(MlpLayout layout, float[] theta, float[] trainInputs, int[] trainLabels)
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

        return (theta, ModelBatch.Classification(trainInputs, trainLabels));
    }
}
