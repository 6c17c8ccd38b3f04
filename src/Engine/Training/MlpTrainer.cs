using System.Diagnostics;
using Attribution.Engine.Data;
using Attribution.Engine.Models;

namespace Attribution.Engine.Training;

/// <summary>Progress of a training run, reported once per optimiser step.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="Step">1-based global step just completed.</param>
/// <param name="TotalSteps">Steps in the run.</param>
/// <param name="Loss">The step's mean batch loss.</param>
/// <param name="LearningRate">The rate the step used.</param>
public readonly record struct TrainingProgress(int Epoch, long Step, long TotalSteps, float Loss, float LearningRate);

/// <summary>
/// Checkpoints to keep along a training run (for TracIn): <see cref="Save"/> is called with the 1-based epoch, the
/// global step and the model after every <see cref="EveryEpochs"/> epochs and after the last epoch. Saving changes
/// nothing about the trained model.
/// </summary>
/// <param name="EveryEpochs">Epochs between checkpoints (≥ 1).</param>
/// <param name="Save">Receives (epoch, step, model); copy the parameters, the model keeps training.</param>
public sealed record CheckpointRequest(int EveryEpochs, Action<int, long, Mlp> Save);

/// <summary>Training stopped because the loss stopped being finite.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>A trained model with its metrics.</summary>
/// <param name="Model">The trained MLP.</param>
/// <param name="Metrics">Its final metrics.</param>
public sealed record MlpTrainingResult(Mlp Model, TrainingMetrics Metrics);

/// <summary>
/// Trains an <see cref="Mlp"/> from a <see cref="TrainingRecipe"/>: seeded PyTorch-default initialisation, a seeded
/// shuffle per epoch, mini-batch steps with the recipe's optimiser and per-step schedule. Deterministic per
/// (recipe, seed) on one machine and thread count. Quiet (no logging): callers observe it through
/// <see cref="IProgress{T}"/>. Suitable for many small retrainings (LDS subsets).
/// </summary>
public static class MlpTrainer
{
    /// <summary>The initialisation scheme name recorded in recipes.</summary>
    public const string DefaultInit = "pytorch-default: weights kaiming-uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn W0,b0,W1,b1,... from Rng(seed).Fork()";

    /// <summary>Trains on FashionMNIST: selects and normalises the recipe's train and test ids, then trains.</summary>
    public static MlpTrainingResult Train(TrainingRecipe recipe, FashionMnistData data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default, CheckpointRequest? checkpoints = null)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(data);
        ThrowIfInvalid(recipe);
        var train = data.Train.Select(recipe.Data.TrainIds, recipe.Data.Normalization);
        var test = data.Test.Select(recipe.Data.TestIds, recipe.Data.Normalization);
        return Train(recipe, train, test, progress, cancellationToken, checkpoints: checkpoints);
    }

    /// <summary>
    /// Trains on already-normalised sets. <paramref name="trainPool"/> must contain every id in the recipe's train ids
    /// (it may hold more: the trainer picks the recipe's ids, in recipe order); likewise <paramref name="testPool"/>.
    /// </summary>
    /// <param name="recipe">The recipe.</param>
    /// <param name="trainPool">Normalised training examples holding the recipe's train ids.</param>
    /// <param name="testPool">Normalised test examples holding the recipe's test ids, or null to skip evaluation.</param>
    /// <param name="progress">Per-step progress, reported synchronously if the implementation is synchronous.</param>
    /// <param name="cancellationToken">Checked before every step.</param>
    /// <param name="gemmProfile">When set, every GEMM of the training steps is timed into it (benchmarks).</param>
    /// <param name="checkpoints">When set, checkpoints along the run are handed to it.</param>
    public static MlpTrainingResult Train(TrainingRecipe recipe, ClassificationSet trainPool, ClassificationSet? testPool, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default, GemmProfile? gemmProfile = null, CheckpointRequest? checkpoints = null)
    {
        if (checkpoints is { EveryEpochs: < 1 })
        {
            throw new ArgumentException($"checkpoints every {checkpoints.EveryEpochs} epochs: must be at least 1.", nameof(checkpoints));
        }

        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(trainPool);
        ThrowIfInvalid(recipe);
        var train = Pick(trainPool, recipe.Data.TrainIds, "train");
        var test = testPool is null || recipe.Data.TestIds.Length == 0 ? null : Pick(testPool, recipe.Data.TestIds, "test");
        var layout = new MlpLayout(recipe.Model.Widths);
        if (train.Features != layout.Widths[0])
        {
            throw new ArgumentException($"The data has {train.Features} features but the recipe's input width is {layout.Widths[0]}.", nameof(trainPool));
        }

        var rng = new Rng(recipe.Seed);
        var initRng = rng.Fork();
        var shuffleRng = rng.Fork();
        var model = new Mlp(layout);
        model.InitializeDefault(initRng);
        model.Profile = gemmProfile;
        var optimizer = recipe.CreateOptimizer(model.Parameters);
        var schedule = recipe.CreateSchedule();

        int n = train.Count, f = train.Features, bs = recipe.BatchSize;
        var order = new int[n];
        for (int i = 0; i < n; i++)
        {
            order[i] = i;
        }

        var xb = new float[bs * f];
        var yb = new int[bs];
        long step = 0, total = recipe.TotalSteps;
        double lastEpochLoss = 0;
        var clock = Stopwatch.StartNew();
        for (int epoch = 0; epoch < recipe.Epochs; epoch++)
        {
            shuffleRng.Shuffle<int>(order);
            double epochLoss = 0;
            int batches = 0;
            for (int start = 0; start < n; start += bs)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int b = Math.Min(bs, n - start);
                for (int i = 0; i < b; i++)
                {
                    int src = order[start + i];
                    train.Inputs.AsSpan(src * f, f).CopyTo(xb.AsSpan(i * f, f));
                    yb[i] = train.Labels[src];
                }

                float lr = schedule.At(step);
                float loss = model.LossAndBackward(xb, yb, b);
                if (!float.IsFinite(loss))
                {
                    throw new TrainingDivergedException($"The training loss became {loss} at step {step + 1} of {total} (epoch {epoch + 1}, learning rate {lr}); lower the learning rate or check the data normalisation.");
                }

                optimizer.Step(lr);
                step++;
                epochLoss += loss;
                batches++;
                progress?.Report(new TrainingProgress(epoch, step, total, loss, lr));
            }

            lastEpochLoss = epochLoss / Math.Max(1, batches);
            if (checkpoints is not null && ((epoch + 1) % checkpoints.EveryEpochs == 0 || epoch + 1 == recipe.Epochs))
            {
                checkpoints.Save(epoch + 1, step, model);
            }
        }

        double seconds = clock.Elapsed.TotalSeconds;
        model.Profile = null;
        var (testLoss, testAcc) = test is null ? (double.NaN, double.NaN) : Evaluate(model, test);
        return new MlpTrainingResult(model, new TrainingMetrics
        {
            FinalTrainLoss = lastEpochLoss,
            TestLoss = testLoss,
            TestAccuracy = testAcc,
            Steps = step,
            TrainSeconds = seconds,
        });
    }

    /// <summary>Mean cross-entropy and accuracy on a set, in batches of 1,000.</summary>
    public static (double Loss, double Accuracy) Evaluate(Mlp model, ClassificationSet set)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(set);
        if (set.Count == 0)
        {
            return (double.NaN, double.NaN);
        }

        const int chunk = 1000;
        double loss = 0;
        long correct = 0;
        int f = set.Features;
        for (int s = 0; s < set.Count; s += chunk)
        {
            int b = Math.Min(chunk, set.Count - s);
            var x = set.Inputs.AsSpan(s * f, b * f);
            var y = set.Labels.AsSpan(s, b);
            loss += (double)model.Loss(x, y, b) * b;
            correct += model.CountCorrect(x, y, b);
        }

        return (loss / set.Count, (double)correct / set.Count);
    }

    private static ClassificationSet Pick(ClassificationSet pool, int[] ids, string which)
    {
        if (pool.Ids.AsSpan().SequenceEqual(ids))
        {
            return pool;
        }

        var position = new Dictionary<int, int>(pool.Count);
        for (int i = 0; i < pool.Count; i++)
        {
            position[pool.Ids[i]] = i;
        }

        var positions = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            if (!position.TryGetValue(ids[i], out positions[i]))
            {
                throw new ArgumentException($"The recipe's {which} id {ids[i]} is not in the {which} data given ({pool.Count} examples).");
            }
        }

        return pool.Take(positions);
    }

    private static void ThrowIfInvalid(TrainingRecipe recipe)
    {
        var errors = recipe.Validate();
        if (errors.Count > 0)
        {
            throw new RecipeException($"Invalid recipe: {string.Join(" ", errors)}");
        }
    }
}
