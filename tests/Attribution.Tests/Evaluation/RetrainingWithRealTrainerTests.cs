using Attribution.Attribution.Evaluation;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Attribution.Tests.Evaluation;

/// <summary>
/// The harness driven by the real trainer and a real method on a tiny problem: removing the examples a method scores
/// as most helpful must lower the query's margin more than removing random ones, and LDS must be clearly positive.
/// </summary>
public class RetrainingWithRealTrainerTests
{
    private const int Features = 784, N = 300, Q = 12;
    private static readonly int[] Widths = [Features, 16, FashionMnist.Classes];

    /// <summary>A tiny seeded FashionMNIST problem: 300 training images, 12 test images; pool ids are 0..N−1.</summary>
    private static (ClassificationSet Train, float[] TestX, int[] TestY) Data()
    {
        var raw = FashionMnist.Load();
        var train = raw.Train.Select(SubsetSelector.Select(raw.Train.Count, N, 11), Normalization.FashionMnist);
        var test = raw.Test.Select(SubsetSelector.Select(raw.Test.Count, Q, 12), Normalization.FashionMnist);
        var pool = new ClassificationSet(train.Inputs, train.Labels, Enumerable.Range(0, N).ToArray(), Features, FashionMnist.Classes);
        return (pool, test.Inputs, test.Labels);
    }

    private static RetrainAndMeasure Retrainer(ClassificationSet pool, float[] testX, int[] testY, out Func<int, float[]> trainFull)
    {
        // The product recipe (SGD momentum 0.9, lr 0.05 cosine, wd 5e-4, batch 128), shortened to 20 epochs.
        var template = TrainingRecipe.DefaultMlp([], [], epochs: 20) with { Model = new ModelSpec { Widths = Widths } };
        float[] Train(int[] subset, int seed, CancellationToken ct) =>
            MlpTrainer.Train(template with { Data = template.Data with { TrainIds = subset }, Seed = (ulong)seed }, pool, null, null, ct).Model.ToFlat();
        trainFull = seed => Train(Enumerable.Range(0, N).ToArray(), seed, default);
        return (subset, seed, ct) =>
        {
            var mlp = new Mlp(new MlpLayout(Widths));
            mlp.LoadFrom(Train(subset, seed, ct));
            var margins = new float[testY.Length];
            mlp.Margins(testX, testY, testY.Length, margins);
            return margins;
        };
    }

    [Fact]
    public void Removing_top_scored_examples_lowers_the_margin_more_than_random_removal_with_the_real_trainer()
    {
        var (pool, testX, testY) = Data();
        var retrain = Retrainer(pool, testX, testY, out var trainFull);
        var problem = new AttributionProblem(new MlpLayout(Widths), trainFull(5), pool.Inputs, pool.Labels, weightDecay: 5e-4f);
        var method = MethodFactory.Create("grad-dot");
        method.Precompute(problem);
        var scores = method.Score(new QueryBatch(testX, testY, Features));

        // Removing a query's 60 most helpful examples (a fifth of the pool) against 60 random ones, two seeds averaged.
        var result = TopKRemoval.Run(scores, [0, 1, 2, 3, 4, 5, 6, 7], k: 60, seeds: [5, 6], randomSeed: 9, retrain);
        Assert.True(result.TopK.Mean > 0, $"removing the top-60 should lower margins on average; mean drop {result.TopK.Mean:F3}");
        Assert.True(result.TopK.Mean > result.Random.Mean + 0.1,
            $"top-60 removal drop {result.TopK.Mean:F3} should exceed random-60 removal drop {result.Random.Mean:F3}");
        Assert.True(result.TopKDrop.Count(d => d > 0) >= 6, $"most queries should drop: {string.Join(", ", result.TopKDrop)}");
    }

    [Fact]
    public void Lds_of_grad_dot_scores_is_positive_and_below_the_noise_ceiling_on_a_tiny_real_training_problem()
    {
        var (pool, testX, testY) = Data();
        var retrain = Retrainer(pool, testX, testY, out var trainFull);
        var problem = new AttributionProblem(new MlpLayout(Widths), trainFull(5), pool.Inputs, pool.Labels, weightDecay: 5e-4f);
        var method = MethodFactory.Create("grad-dot");
        method.Precompute(problem);
        var scores = method.Score(new QueryBatch(testX, testY, Features));
        var plan = SubsetPlan.Draw(N, 24, 0.5, seed: 3, seedsPerSubset: 2);
        var truth = RetrainingHarness.RunLds(plan, Q, retrain);
        var lds = Lds.Compute(scores, plan.Subsets, truth.Primary);
        var ceiling = truth.NoiseCeiling()!;
        Assert.InRange(lds.Mean, 0.05, 1.0);
        Assert.True(ceiling.Mean >= lds.Mean - 0.1, $"noise ceiling {ceiling.Mean:F3} should bound LDS {lds.Mean:F3} (up to sampling noise)");
    }
}
