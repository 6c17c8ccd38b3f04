using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Training;

namespace Attribution.Ingest;

/// <summary>
/// What Ingest states about a run beyond its example ids: the recipe every checkpoint event carries (architecture and
/// training recipe, from <c>run.json</c>) and the inputs every batch event carries (so the Simulator reads no data set of
/// its own). The data set is loaded once, on first use.
/// </summary>
public sealed class RunData(TrainingRecipe recipe, string? dataDirectory)
{
    private RawImageSet? _train;

    /// <summary>The run's training recipe (<c>run.json</c>).</summary>
    public TrainingRecipe Recipe { get; } = recipe ?? throw new ArgumentNullException(nameof(recipe));

    /// <summary>The recipe as the checkpoint event states it.</summary>
    public CheckpointRecipe CheckpointRecipe => new("mlp:" + string.Join('-', Recipe.Model.Widths), Recipe.Optimizer.LearningRate, Recipe.Optimizer.WeightDecay,
        Recipe.BatchSize, Recipe.Seed, Recipe.Data.Name);

    /// <summary>Features per example.</summary>
    public int Features => Recipe.Model.Widths[0];

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
