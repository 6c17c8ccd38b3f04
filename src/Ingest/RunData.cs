using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Training;

namespace Attribution.Ingest;

/// <summary>
/// What Ingest states about a run beyond its example ids: the recipe every checkpoint event carries (architecture and
/// training recipe, from <c>run.json</c>) and the data every batch event carries (a classifier's inputs, a language
/// model's documents), so the Simulator reads no data set and no file of its own.
/// </summary>
public abstract class RunData
{
    /// <summary>The recipe as the checkpoint event states it.</summary>
    public abstract CheckpointRecipe CheckpointRecipe { get; }

    /// <summary>Bytes one example adds to a batch event (at most; for chunking under the brokers' message limit).</summary>
    public abstract int BytesPerExample { get; }

    /// <summary>The batch event of <paramref name="exampleIds"/>, carrying their data; <paramref name="where"/> names the file in errors.</summary>
    public abstract TrainingBatch Batch(string runId, long step, long[] exampleIds, long[] sourceIds, string where);

    /// <summary>The data of the run in <paramref name="scanner"/>'s directory: a language-model run or a classifier run.</summary>
    public static RunData Load(RunScanner scanner, string? dataDirectory)
    {
        ArgumentNullException.ThrowIfNull(scanner);
        return LanguageRun.IsLanguageRun(scanner.Directory) ? LanguageRun.Load(scanner.Directory) : new ClassifierRun(scanner.LoadRecipe(), dataDirectory);
    }
}

/// <summary>A classifier run (<c>./pipeline train</c>, <see cref="TrainingRecipe"/>): batches carry inputs and labels.</summary>
public sealed class ClassifierRun(TrainingRecipe recipe, string? dataDirectory) : RunData
{
    private RawImageSet? _train;

    /// <summary>The run's training recipe (<c>run.json</c>).</summary>
    public TrainingRecipe Recipe { get; } = recipe ?? throw new ArgumentNullException(nameof(recipe));

    /// <inheritdoc />
    public override CheckpointRecipe CheckpointRecipe => new("mlp:" + string.Join('-', Recipe.Model.Widths), Recipe.Optimizer.LearningRate, Recipe.Optimizer.WeightDecay,
        Recipe.BatchSize, Recipe.Seed, Recipe.Data.Name);

    /// <summary>Features per example.</summary>
    public int Features => Recipe.Model.Widths[0];

    /// <inheritdoc />
    public override int BytesPerExample => 4 + (4 * Features);

    /// <inheritdoc />
    public override TrainingBatch Batch(string runId, long step, long[] exampleIds, long[] sourceIds, string where) =>
        new(runId, step, exampleIds, sourceIds, Payload(exampleIds, where));

    /// <summary>The <see cref="BatchPayload"/> (inputs and labels, normalised as the recipe trained on them) of <paramref name="exampleIds"/>.</summary>
    public byte[] Payload(IReadOnlyList<long> exampleIds, string where)
    {
        ArgumentNullException.ThrowIfNull(exampleIds);
        if (Recipe.Data.Name != "fashion-mnist")
        {
            throw new RunFormatException($"{where}: data set '{Recipe.Data.Name}' is not one Ingest can read inputs from (known: fashion-mnist).");
        }

        try
        {
            _train ??= FashionMnist.Load(dataDirectory).Train;
        }
        catch (Exception e) when (e is IOException or DataFormatException or UnauthorizedAccessException)
        {
            throw new RunFormatException($"{where}: cannot read the fashion-mnist training set ({e.Message}); install it (dataset-fashion-mnist) or set Ingest:DataDirectory.", e);
        }

        var ids = new int[exampleIds.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = exampleIds[i] is >= 0 and <= int.MaxValue ? (int)exampleIds[i]
                : throw new RunFormatException($"{where}: example id {exampleIds[i]} is not an index into the fashion-mnist training set.");
        }

        try
        {
            var set = _train.Select(ids, Recipe.Data.Normalization);
            return BatchPayload.Encode(set.Inputs, set.Labels, set.Features);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new RunFormatException($"{where}: {e.Message}", e);
        }
    }
}
