using Attribution.Engine.Models;
using Attribution.Engine.Optim;

namespace Attribution.Engine.Training;

/// <summary>
/// How <see cref="DocumentTrainer"/> trains: whole documents as rows (never windows across documents), shuffled per
/// epoch, AdamW with a linear warm-up and a cosine decay to zero over all steps.
/// </summary>
public sealed record DocumentTrainingRecipe
{
    /// <summary>Passes over the documents.</summary>
    public int Epochs { get; init; } = 3;

    /// <summary>Documents per optimiser step.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>AdamW peak learning rate.</summary>
    public float LearningRate { get; init; } = 1e-3f;

    /// <summary>Linear warm-up steps before the cosine decay.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>AdamW decoupled weight decay.</summary>
    public float WeightDecay { get; init; }

    /// <summary>Canonical text of every field (what a cache of trained models keys on).</summary>
    public string Key => FormattableString.Invariant($"epochs={Epochs};batch={BatchSize};lr={LearningRate};warmup={WarmupSteps};wd={WeightDecay}");

    /// <summary>Throws when a field cannot train.</summary>
    public void Validate()
    {
        if (Epochs < 1 || BatchSize < 1 || WarmupSteps < 0 || !(LearningRate > 0) || !float.IsFinite(LearningRate) || !(WeightDecay >= 0))
        {
            throw new ArgumentException($"DocumentTrainingRecipe: epochs and batch must be >= 1, warm-up >= 0, learning rate > 0 and weight decay >= 0: {this}.");
        }
    }
}

/// <summary>
/// Trains a <see cref="Gpt"/> on documents one row each: a document of token ids (the tokenizer's document start first)
/// becomes inputs <c>ids[0..^1]</c> and next-token targets <c>ids[1..]</c>, padded with ignored targets to the longest
/// document of its batch. Training on a document subset therefore sees exactly those documents and nothing of the
/// others, which is what retraining-based evaluation (LDS) needs. Deterministic per (start parameters, documents, seed).
/// </summary>
public static class DocumentTrainer
{
    /// <summary>
    /// Trains <paramref name="model"/> in place on <paramref name="documents"/>; <paramref name="onEpoch"/> (optional)
    /// sees the model after each epoch (e.g. to keep checkpoints for TracIn). Returns the mean training loss of the last epoch.
    /// </summary>
    public static double Train(Gpt model, IReadOnlyList<int[]> documents, DocumentTrainingRecipe recipe, ulong seed,
        Action<int, Gpt>? onEpoch = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentNullException.ThrowIfNull(recipe);
        recipe.Validate();
        if (documents.Count == 0)
        {
            throw new ArgumentException("DocumentTrainer: no documents to train on.", nameof(documents));
        }

        foreach (var d in documents)
        {
            CheckDocument(d, model.Config);
        }

        int stepsPerEpoch = (documents.Count + recipe.BatchSize - 1) / recipe.BatchSize;
        int total = stepsPerEpoch * recipe.Epochs;
        ILearningRateSchedule schedule = recipe.WarmupSteps > 0
            ? new WarmupSchedule(recipe.WarmupSteps, new CosineSchedule(recipe.LearningRate, Math.Max(1, total - recipe.WarmupSteps)))
            : new CosineSchedule(recipe.LearningRate, total);
        var optimizer = new AdamW(model.Parameters, weightDecay: recipe.WeightDecay);
        var rng = new Rng(seed);
        double lastEpoch = 0;
        long step = 0;
        for (int epoch = 0; epoch < recipe.Epochs; epoch++)
        {
            var order = rng.Permutation(documents.Count);
            double sum = 0;
            for (int start = 0; start < order.Length; start += recipe.BatchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int count = Math.Min(recipe.BatchSize, order.Length - start);
                var batch = new int[count][];
                for (int b = 0; b < count; b++)
                {
                    batch[b] = documents[order[start + b]];
                }

                var (inputs, targets, seqLen) = Rows(batch);
                model.ZeroGrad();
                float loss = model.LossAndBackward(inputs, targets, count, seqLen);
                float lr = schedule.At(step);
                if (!float.IsFinite(loss))
                {
                    throw new TrainingDivergedException($"The document-training loss became {loss} at step {step + 1} of {total} (learning rate {lr}); lower the learning rate.");
                }

                optimizer.Step(lr);
                step++;
                sum += loss;
            }

            lastEpoch = sum / stepsPerEpoch;
            onEpoch?.Invoke(epoch + 1, model);
        }

        return lastEpoch;
    }

    /// <summary>
    /// One row per document: inputs <c>ids[0..^1]</c> and targets <c>ids[1..]</c>, padded to the longest document with
    /// the first document's first id as input and -1 (ignored) as target. Returns the row length.
    /// </summary>
    public static (int[] Inputs, int[] Targets, int SequenceLength) Rows(IReadOnlyList<int[]> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        int seqLen = 1;
        foreach (var d in documents)
        {
            if (d is null || d.Length < 2)
            {
                throw new ArgumentException("DocumentTrainer: every document needs at least two token ids (the document start and one token).", nameof(documents));
            }

            seqLen = Math.Max(seqLen, d.Length - 1);
        }

        var inputs = new int[documents.Count * seqLen];
        var targets = new int[documents.Count * seqLen];
        Array.Fill(targets, -1);
        if (documents.Count > 0)
        {
            Array.Fill(inputs, documents[0][0]);
        }

        for (int b = 0; b < documents.Count; b++)
        {
            var d = documents[b];
            d.AsSpan(0, d.Length - 1).CopyTo(inputs.AsSpan(b * seqLen));
            d.AsSpan(1).CopyTo(targets.AsSpan(b * seqLen));
        }

        return (inputs, targets, seqLen);
    }

    private static void CheckDocument(int[] document, GptConfig config)
    {
        if (document is null || document.Length < 2 || document.Length - 1 > config.Context)
        {
            throw new ArgumentException($"DocumentTrainer: a document has {document?.Length ?? 0} ids; it needs 2..{config.Context + 1} (the context plus one) to train as one row.", nameof(document));
        }

        foreach (var id in document)
        {
            if ((uint)id >= (uint)config.VocabSize)
            {
                throw new ArgumentException($"DocumentTrainer: token id {id} is outside the vocabulary 0..{config.VocabSize - 1}.", nameof(document));
            }
        }
    }
}
