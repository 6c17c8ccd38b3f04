using System.Text.Json;
using System.Text.Json.Serialization;
using Attribution.Engine.Data;
using Attribution.Engine.Optim;

namespace Attribution.Engine.Training;

/// <summary>A recipe or manifest file is unreadable or invalid; the message names the file and the field.</summary>
public sealed class RecipeException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The model to train.</summary>
public sealed record ModelSpec
{
    /// <summary>"mlp" (and "gpt" once wired).</summary>
    public string Kind { get; init; } = "mlp";

    /// <summary>MLP widths, input first.</summary>
    public int[] Widths { get; init; } = [784, 128, 64, 10];

    /// <summary>Initialisation scheme; the only one implemented is PyTorch's nn.Linear default.</summary>
    public string Init { get; init; } = MlpTrainer.DefaultInit;
}

/// <summary>The optimiser and its hyperparameters.</summary>
public sealed record OptimizerSpec
{
    /// <summary>"sgd" or "adamw".</summary>
    public string Kind { get; init; } = "sgd";

    /// <summary>Peak learning rate.</summary>
    public float LearningRate { get; init; } = 0.05f;

    /// <summary>SGD momentum.</summary>
    public float Momentum { get; init; } = 0.9f;

    /// <summary>SGD: L2 added to the gradient; AdamW: decoupled decay.</summary>
    public float WeightDecay { get; init; } = 5e-4f;

    /// <summary>SGD Nesterov momentum.</summary>
    public bool Nesterov { get; init; }

    /// <summary>AdamW β1.</summary>
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>AdamW β2.</summary>
    public float Beta2 { get; init; } = 0.999f;

    /// <summary>AdamW ε.</summary>
    public float Epsilon { get; init; } = 1e-8f;
}

/// <summary>Learning-rate schedule, stepped once per optimiser step.</summary>
public sealed record ScheduleSpec
{
    /// <summary>"cosine" or "constant".</summary>
    public string Kind { get; init; } = "cosine";

    /// <summary>Cosine floor.</summary>
    public float MinLearningRate { get; init; }

    /// <summary>Linear warm-up steps before the main schedule.</summary>
    public int WarmupSteps { get; init; }
}

/// <summary>The data: which file set, which example ids (index in the original file), and preprocessing.</summary>
public sealed record DataSpec
{
    /// <summary>"fashion-mnist".</summary>
    public string Name { get; init; } = "fashion-mnist";

    /// <summary>Pixel normalisation applied after scaling bytes to [0, 1].</summary>
    public Normalization Normalization { get; init; } = Normalization.FashionMnist;

    /// <summary>Training example ids, in the original training file.</summary>
    public int[] TrainIds { get; init; } = [];

    /// <summary>Test example ids, in the original test file.</summary>
    public int[] TestIds { get; init; } = [];
}

/// <summary>
/// Everything needed to re-train a model bit for bit: architecture, initialisation, optimiser, schedule, epochs, batch
/// size, preprocessing, the exact example ids and the seed. Stored inside <c>run.json</c>.
/// </summary>
public sealed record TrainingRecipe
{
    /// <summary>Format version of this record.</summary>
    public int Schema { get; init; } = 1;

    /// <summary>The model.</summary>
    public ModelSpec Model { get; init; } = new();

    /// <summary>The optimiser.</summary>
    public OptimizerSpec Optimizer { get; init; } = new();

    /// <summary>The learning-rate schedule.</summary>
    public ScheduleSpec Schedule { get; init; } = new();

    /// <summary>The data.</summary>
    public DataSpec Data { get; init; } = new();

    /// <summary>Passes over the training ids.</summary>
    public int Epochs { get; init; } = 20;

    /// <summary>Examples per step; the last batch of an epoch may be smaller (PyTorch's drop_last = False).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Seeds initialisation (first fork) and shuffling (second fork).</summary>
    public ulong Seed { get; init; }

    /// <summary>Optimiser steps per epoch.</summary>
    [JsonIgnore]
    public int StepsPerEpoch => BatchSize <= 0 ? 0 : (Data.TrainIds.Length + BatchSize - 1) / BatchSize;

    /// <summary>Total optimiser steps.</summary>
    [JsonIgnore]
    public long TotalSteps => (long)StepsPerEpoch * Epochs;

    /// <summary>The spec 9a recipe on FashionMNIST: 784-128-64-10, SGD(0.9) lr 0.05 cosine to 0, wd 5e-4, batch 128.</summary>
    public static TrainingRecipe DefaultMlp(int[] trainIds, int[] testIds, int epochs = 20, ulong seed = 0) => new()
    {
        Data = new DataSpec { TrainIds = trainIds, TestIds = testIds },
        Epochs = epochs,
        Seed = seed,
    };

    /// <summary>Problems with this recipe, each naming its field; empty when valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Schema != 1)
        {
            errors.Add($"schema: {Schema} is not a version this build reads (1).");
        }

        if (Model is null || Optimizer is null || Schedule is null || Data is null)
        {
            errors.Add("model, optimizer, schedule and data are all required.");
            return errors;
        }

        if (Model.Kind != "mlp")
        {
            errors.Add($"model.kind: '{Model.Kind}' is not trainable by MlpTrainer (use 'mlp').");
        }

        if (Model.Widths is null || Model.Widths.Length < 2 || Model.Widths.Any(w => w < 1))
        {
            errors.Add("model.widths: need at least two positive widths (input ... classes).");
        }
        else if (Data.Name == "fashion-mnist" && (Model.Widths[0] != 784 || Model.Widths[^1] != FashionMnist.Classes))
        {
            errors.Add($"model.widths: fashion-mnist needs input width 784 and 10 classes, got {Model.Widths[0]} and {Model.Widths[^1]}.");
        }

        if (Model.Init != MlpTrainer.DefaultInit)
        {
            errors.Add($"model.init: '{Model.Init}' is unknown (use '{MlpTrainer.DefaultInit}').");
        }

        if (Optimizer.Kind is not ("sgd" or "adamw"))
        {
            errors.Add($"optimizer.kind: '{Optimizer.Kind}' is unknown (sgd, adamw).");
        }

        if (!float.IsFinite(Optimizer.LearningRate) || Optimizer.LearningRate <= 0)
        {
            errors.Add($"optimizer.learningRate: {Optimizer.LearningRate} must be positive.");
        }

        if (Optimizer.Momentum is < 0 or >= 1 || Optimizer.Beta1 is < 0 or >= 1 || Optimizer.Beta2 is < 0 or >= 1)
        {
            errors.Add("optimizer: momentum, beta1 and beta2 must be in [0, 1).");
        }

        if (!float.IsFinite(Optimizer.WeightDecay) || Optimizer.WeightDecay < 0 || !(Optimizer.Epsilon > 0))
        {
            errors.Add("optimizer: weightDecay must be >= 0 and epsilon > 0.");
        }

        if (Schedule.Kind is not ("cosine" or "constant"))
        {
            errors.Add($"schedule.kind: '{Schedule.Kind}' is unknown (cosine, constant).");
        }

        if (Schedule.WarmupSteps < 0 || !(Schedule.MinLearningRate >= 0) || Schedule.MinLearningRate > Optimizer.LearningRate)
        {
            errors.Add("schedule: warmupSteps must be >= 0 and minLearningRate in [0, learningRate].");
        }

        if (Data.Name != "fashion-mnist")
        {
            errors.Add($"data.name: '{Data.Name}' is unknown (fashion-mnist).");
        }

        if (Data.Normalization is null || !(Data.Normalization.Std > 0) || !float.IsFinite(Data.Normalization.Mean))
        {
            errors.Add("data.normalization: std must be positive and mean finite.");
        }

        CheckIds(Data.TrainIds, "data.trainIds", errors, requireAny: true);
        CheckIds(Data.TestIds, "data.testIds", errors, requireAny: false);
        if (Epochs < 1)
        {
            errors.Add($"epochs: {Epochs} must be at least 1.");
        }

        if (BatchSize < 1)
        {
            errors.Add($"batchSize: {BatchSize} must be at least 1.");
        }

        return errors;
    }

    /// <summary>The optimiser this recipe describes, bound to <paramref name="parameters"/>.</summary>
    public Optimizer CreateOptimizer(IReadOnlyList<Parameter> parameters) => Optimizer.Kind == "adamw"
        ? new AdamW(parameters, Optimizer.Beta1, Optimizer.Beta2, Optimizer.Epsilon, Optimizer.WeightDecay)
        : new Sgd(parameters, Optimizer.Momentum, Optimizer.WeightDecay, Optimizer.Nesterov);

    /// <summary>The schedule this recipe describes (cosine over the steps after warm-up).</summary>
    public ILearningRateSchedule CreateSchedule()
    {
        long main = Math.Max(1, TotalSteps - Schedule.WarmupSteps);
        ILearningRateSchedule s = Schedule.Kind == "constant"
            ? new ConstantSchedule(Optimizer.LearningRate)
            : new CosineSchedule(Optimizer.LearningRate, main, Schedule.MinLearningRate);
        return Schedule.WarmupSteps > 0 ? new WarmupSchedule(Schedule.WarmupSteps, s) : s;
    }

    private static void CheckIds(int[]? ids, string field, List<string> errors, bool requireAny)
    {
        if (ids is null || (requireAny && ids.Length == 0))
        {
            errors.Add($"{field}: at least one id is required.");
            return;
        }

        var seen = new HashSet<int>();
        foreach (var id in ids)
        {
            if (id < 0 || !seen.Add(id))
            {
                errors.Add($"{field}: id {id} is negative or repeated.");
                return;
            }
        }
    }
}

/// <summary>Final metrics of a run.</summary>
public sealed record TrainingMetrics
{
    /// <summary>Mean training loss over the last epoch's steps.</summary>
    public double FinalTrainLoss { get; init; }

    /// <summary>Mean test cross-entropy.</summary>
    public double TestLoss { get; init; }

    /// <summary>Test accuracy in [0, 1].</summary>
    public double TestAccuracy { get; init; }

    /// <summary>Optimiser steps taken.</summary>
    public long Steps { get; init; }

    /// <summary>Wall-clock training seconds (excluding data loading and evaluation).</summary>
    public double TrainSeconds { get; init; }
}

/// <summary>A checkpoint saved along training: after <paramref name="Epoch"/> epochs (global step <paramref name="Step"/>).</summary>
/// <param name="Epoch">Epochs completed (1-based).</param>
/// <param name="Step">Optimiser steps completed.</param>
/// <param name="File">Safetensors file, relative to the run directory.</param>
public sealed record TrainingCheckpoint(int Epoch, long Step, string File);

/// <summary>The contents of <c>run.json</c>: the recipe, the results and the checkpoint it produced.</summary>
public sealed record RunManifest
{
    /// <summary>The complete recipe.</summary>
    public TrainingRecipe Recipe { get; init; } = new();

    /// <summary>Final metrics.</summary>
    public TrainingMetrics Metrics { get; init; } = new();

    /// <summary>Checkpoint file name, relative to the run directory.</summary>
    public string Checkpoint { get; init; } = RunDirectory.CheckpointFile;

    /// <summary>When the run finished (UTC, ISO 8601).</summary>
    public string CreatedUtc { get; init; } = "";

    /// <summary>Checkpoints saved along training (<c>train --save-every</c>), oldest first; empty when none were asked for.</summary>
    public IReadOnlyList<TrainingCheckpoint> TrainingCheckpoints { get; init; } = [];

    /// <summary>Serialises with the stable options used for run.json.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, RunDirectory.JsonOptions);
}
