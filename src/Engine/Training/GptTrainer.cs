using System.Diagnostics;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Optim;

namespace Attribution.Engine.Training;

/// <summary>Recipe for a GPT on a <see cref="TextCorpus"/> (by default byte-level on the fortunes).</summary>
public sealed record GptRecipe
{
    /// <summary>Model shape (vocabulary must hold the tokenizer's ids: 259 for bytes, 50257 for gpt2).</summary>
    public GptConfig Config { get; init; } = new(VocabSize: ByteTokenizer.Size, Context: 64, DModel: 64, Heads: 4, Layers: 2);

    /// <summary>The corpus spec (<see cref="TextCorpus.Load"/>), normalised as <see cref="TextCorpus.Spec"/>.</summary>
    public string Corpus { get; init; } = "fortunes";

    /// <summary>The tokenizer's name (<see cref="Tokenizers.Create"/>).</summary>
    public string Tokenizer { get; init; } = ByteTokenizer.TokenizerName;

    /// <summary>Optimiser steps.</summary>
    public int Steps { get; init; } = 300;

    /// <summary>Windows per step.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>AdamW peak learning rate (linear warm-up, then cosine to 0).</summary>
    public float LearningRate { get; init; } = 3e-3f;

    /// <summary>Warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 20;

    /// <summary>AdamW decoupled weight decay.</summary>
    public float WeightDecay { get; init; } = 0.01f;

    /// <summary>Fraction of documents held out for validation.</summary>
    public double ValidationFraction { get; init; } = 0.1;

    /// <summary>Seed for the split, initialisation and window sampling.</summary>
    public ulong Seed { get; init; }
}

/// <summary>Result of GPT training: validation loss next to a unigram model's.</summary>
/// <param name="Model">The trained model.</param>
/// <param name="ValidationLoss">Mean next-token NLL (nats) on validation windows.</param>
/// <param name="UnigramValidationLoss">The same for an add-one-smoothed unigram model fitted on the training tokens.</param>
/// <param name="TrainDocumentIds">Training documents (indices into <see cref="TextCorpus.Documents"/>).</param>
/// <param name="ValidationDocumentIds">Validation documents (indices).</param>
/// <param name="Seconds">Training wall-clock seconds.</param>
public sealed record GptTrainingResult(Gpt Model, double ValidationLoss, double UnigramValidationLoss, int[] TrainDocumentIds, int[] ValidationDocumentIds, double Seconds);

/// <summary>Trains a <see cref="Gpt"/> on random windows of the concatenated training documents with AdamW.</summary>
public static class GptTrainer
{
    /// <summary>Trains and evaluates; quiet, reports progress per step.</summary>
    public static GptTrainingResult Train(GptRecipe recipe, TextCorpus corpus, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(corpus);
        recipe.Config.Validate();
        if (recipe.Corpus != corpus.Spec)
        {
            throw new ArgumentException($"The recipe names corpus '{recipe.Corpus}' but the corpus given is '{corpus.Spec}'.", nameof(corpus));
        }

        var tokenizer = Tokenizers.Create(recipe.Tokenizer);
        if (recipe.Config.VocabSize < tokenizer.VocabSize)
        {
            throw new ArgumentException($"The GPT vocabulary ({recipe.Config.VocabSize}) must hold the {tokenizer.VocabSize} ids of the {tokenizer.Name} tokenizer.", nameof(recipe));
        }

        var (trainIds, valIds) = corpus.Split(recipe.ValidationFraction, recipe.Seed);
        var train = tokenizer.EncodeDocuments(trainIds.Select(i => corpus.Documents[i].Bytes));
        var val = tokenizer.EncodeDocuments(valIds.Select(i => corpus.Documents[i].Bytes));
        int window = recipe.Config.Context + 1;
        if (train.Length <= window || val.Length <= window)
        {
            throw new ArgumentException("The corpus is too small for one context window in each split.", nameof(corpus));
        }

        var rng = new Rng(recipe.Seed);
        var model = new Gpt(recipe.Config, rng.NextUInt64());
        var sampler = rng.Fork();
        var optimizer = new AdamW(model.Parameters, weightDecay: recipe.WeightDecay);
        ILearningRateSchedule schedule = new WarmupSchedule(recipe.WarmupSteps, new CosineSchedule(recipe.LearningRate, Math.Max(1, recipe.Steps - recipe.WarmupSteps)));
        var batch = new int[recipe.BatchSize * window];
        var clock = Stopwatch.StartNew();
        for (int step = 0; step < recipe.Steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int b = 0; b < recipe.BatchSize; b++)
            {
                int start = sampler.NextInt(train.Length - window);
                train.AsSpan(start, window).CopyTo(batch.AsSpan(b * window, window));
            }

            model.ZeroGrad();
            float lr = schedule.At(step);
            float loss = model.LossAndBackward(batch, recipe.BatchSize, window);
            if (!float.IsFinite(loss))
            {
                throw new TrainingDivergedException($"The GPT training loss became {loss} at step {step + 1} of {recipe.Steps} (learning rate {lr}); lower the learning rate.");
            }

            optimizer.Step(lr);
            progress?.Report(new TrainingProgress(0, step + 1, recipe.Steps, loss, lr));
        }

        double seconds = clock.Elapsed.TotalSeconds;
        return new GptTrainingResult(model, ValidationLoss(model, val, window), UnigramLoss(train, val, recipe.Config.VocabSize, window), trainIds, valIds, seconds);
    }

    /// <summary>Mean next-token loss over consecutive non-overlapping windows of the validation stream (up to 64).</summary>
    public static double ValidationLoss(Gpt model, int[] val, int window)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(val);
        int windows = Math.Min(64, val.Length / window);
        double sum = 0;
        for (int w = 0; w < windows; w += 8)
        {
            int b = Math.Min(8, windows - w);
            sum += (double)model.Loss(val.AsSpan(w * window, b * window), b, window) * b;
        }

        return sum / windows;
    }

    /// <summary>Add-one-smoothed unigram NLL, scored on the same validation targets as <see cref="ValidationLoss"/>.</summary>
    public static double UnigramLoss(int[] train, int[] val, int vocab, int window)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(val);
        var counts = new double[vocab];
        foreach (var t in train)
        {
            counts[t]++;
        }

        double total = train.Length + vocab;
        int windows = Math.Min(64, val.Length / window);
        double sum = 0;
        long n = 0;
        for (int w = 0; w < windows; w++)
        {
            for (int i = 1; i < window; i++)
            {
                sum -= Math.Log((counts[val[w * window + i]] + 1) / total);
                n++;
            }
        }

        return sum / n;
    }
}
