using System.Globalization;
using Attribution.Attribution;
using Attribution.Engine.Data;
using Attribution.Engine.Training;

namespace Attribution.Cli.Evaluation;

/// <summary>
/// Binds the evaluation harness to the engine: the training recipe every ground-truth model uses (the product's MLP
/// recipe: SGD momentum 0.9, lr 0.05 cosine per step, weight decay 5e-4, batch 128) and the method factory.
/// </summary>
internal sealed class BenchmarkRecipe
{
    private readonly TrainingRecipe _template;

    private BenchmarkRecipe(TrainingRecipe template) => _template = template;

    /// <summary>The standard recipe with <paramref name="epochs"/> epochs (ids and widths are filled per model).</summary>
    public static BenchmarkRecipe Standard(int epochs) => new(TrainingRecipe.DefaultMlp([], [], epochs));

    /// <summary>Canonical text of everything in the recipe that changes a trained model, except data ids and seed.</summary>
    public string Key => string.Create(CultureInfo.InvariantCulture,
        $"opt={_template.Optimizer.Kind};lr={_template.Optimizer.LearningRate};momentum={_template.Optimizer.Momentum};nesterov={_template.Optimizer.Nesterov};wd={_template.Optimizer.WeightDecay};schedule={_template.Schedule.Kind};minlr={_template.Schedule.MinLearningRate};warmup={_template.Schedule.WarmupSteps};epochs={_template.Epochs};batch={_template.BatchSize};init={_template.Model.Init}");

    /// <summary>A <see cref="TrainModel"/> that trains the recipe on pool indices of <paramref name="pool"/>.</summary>
    public TrainModel Trainer(int[] widths, ClassificationSet pool) => (subset, seed, cancellationToken, checkpoints) =>
    {
        var ids = new int[subset.Length];
        for (int k = 0; k < subset.Length; k++)
        {
            ids[k] = pool.Ids[subset[k]];
        }

        var recipe = _template with
        {
            Model = _template.Model with { Widths = widths },
            Data = _template.Data with { TrainIds = ids, TestIds = [] },
            Seed = (ulong)seed,
        };
        return MlpTrainer.Train(recipe, pool, null, null, cancellationToken, checkpoints: checkpoints).Model.ToFlat();
    };

    /// <summary>Creates a method by command-line name with its options (the product's <see cref="MethodFactory"/>).</summary>
    public static IAttributionMethod CreateMethod(string name, IReadOnlyDictionary<string, string> options) => MethodFactory.Create(name, options);
}
