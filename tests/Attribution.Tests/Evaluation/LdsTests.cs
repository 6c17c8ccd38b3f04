using Attribution.Attribution.Evaluation;
using Attribution.Engine;

namespace Attribution.Attribution.Tests.Evaluation;

public class LdsTests
{
    private const int N = 200, Q = 40, M = 100;

    /// <summary>A linear datamodel: output of a model trained on S for query q is Σ_{i∈S} w[q, i] (+ optional noise).</summary>
    private static float[] Weights(ulong seed)
    {
        var w = new float[Q * N];
        new Rng(seed).FillNormal(w);
        return w;
    }

    private static RetrainAndMeasure LinearRetrainer(float[] w, double noise) => (subset, seed, _) =>
    {
        var rng = new Rng((ulong)seed);
        var y = new float[Q];
        for (int q = 0; q < Q; q++)
        {
            double s = 0;
            foreach (var i in subset)
            {
                s += w[(q * N) + i];
            }

            y[q] = (float)(s + (noise * rng.NextNormal()));
        }

        return y;
    };

    private static ScoreMatrix Matrix(float[] scores) => new(scores, Q, N, new int[N], 1);

    [Fact]
    public void Lds_is_one_when_scores_are_the_exact_linear_datamodel()
    {
        var w = Weights(1);
        var plan = SubsetPlan.Draw(N, M, 0.5, seed: 7);
        var truth = RetrainingHarness.RunLds(plan, Q, LinearRetrainer(w, 0));
        var lds = Lds.Compute(Matrix(w), plan.Subsets, truth.Primary);
        Assert.Equal(1.0, lds.Mean, 6);
        Assert.Equal(Q, lds.Queries);
        Assert.Equal(0, lds.Skipped);
    }

    [Fact]
    public void A_query_with_non_finite_scores_is_skipped_and_the_others_are_unchanged()
    {
        // Protects eval runs: a method returning NaN/∞ for one query used to abort the whole run ("ranks are undefined")
        // after an hour of precompute; the query is now skipped and every other query keeps its exact LDS.
        var w = Weights(3);
        var plan = SubsetPlan.Draw(N, M, 0.5, seed: 9);
        var truth = RetrainingHarness.RunLds(plan, Q, LinearRetrainer(w, 0));
        var broken = (float[])w.Clone();
        broken[(5 * N) + 3] = float.NaN;
        broken[(9 * N) + 0] = float.PositiveInfinity;
        var lds = Lds.Compute(Matrix(broken), plan.Subsets, truth.Primary);
        Assert.Equal(2, lds.Skipped);
        Assert.Equal(Q - 2, lds.Queries);
        Assert.True(double.IsNaN(lds.PerQuery[5]) && double.IsNaN(lds.PerQuery[9]));
        Assert.Equal(1.0, lds.Mean, 6);
    }

    [Fact]
    public void Lds_is_minus_one_when_scores_have_the_wrong_sign()
    {
        var w = Weights(2);
        var plan = SubsetPlan.Draw(N, M, 0.5, seed: 8);
        var truth = RetrainingHarness.RunLds(plan, Q, LinearRetrainer(w, 0));
        var lds = Lds.Compute(Matrix(w.Select(v => -v).ToArray()), plan.Subsets, truth.Primary);
        Assert.Equal(-1.0, lds.Mean, 6);
    }

    [Fact]
    public void Lds_with_seed_noise_lands_at_the_gaussian_rank_correlation_and_matches_the_noise_ceiling()
    {
        // Subset sums of 100 N(0,1) scores around their mean have std ≈ sqrt(200·0.25) ≈ 7.07; noise of the same std
        // gives Pearson ρ = 1/√2 and Spearman (6/π)·asin(ρ/2) ≈ 0.690 for Gaussian pairs.
        var w = Weights(3);
        var plan = SubsetPlan.Draw(N, M, 0.5, seed: 9, seedsPerSubset: 2);
        var truth = RetrainingHarness.RunLds(plan, Q, LinearRetrainer(w, Math.Sqrt(N * 0.25)));
        var lds = Lds.Compute(Matrix(w), plan.Subsets, truth.Primary);
        double expected = 6 / Math.PI * Math.Asin(Math.Sqrt(0.5) / 2);
        Assert.InRange(lds.Mean, expected - 0.05, expected + 0.05);
        Assert.InRange(lds.Ci95, 0.005, 0.05);

        // Two noisy seeds of the same subsets share the signal: ρ = 0.5, Spearman ≈ 0.483.
        var ceiling = truth.NoiseCeiling();
        Assert.NotNull(ceiling);
        Assert.InRange(ceiling.Mean, (6 / Math.PI * Math.Asin(0.25)) - 0.05, (6 / Math.PI * Math.Asin(0.25)) + 0.05);

        // Averaging the two seeds halves the noise variance: ρ = sqrt(2/3), so LDS against the mean is higher.
        var ldsMean = Lds.Compute(Matrix(w), plan.Subsets, truth.Mean());
        Assert.True(ldsMean.Mean > lds.Mean + 0.03, $"mean-of-seeds LDS {ldsMean.Mean} should beat single-seed {lds.Mean}");
    }

    [Fact]
    public void Lds_skips_queries_whose_predictions_are_constant()
    {
        var w = Weights(4);
        var scores = (float[])w.Clone();
        Array.Clear(scores, 0, N); // query 0 gets all-zero scores: every subset predicts 0
        var plan = SubsetPlan.Draw(N, 20, 0.5, seed: 10);
        var truth = RetrainingHarness.RunLds(plan, Q, LinearRetrainer(w, 0));
        var lds = Lds.Compute(Matrix(scores), plan.Subsets, truth.Primary);
        Assert.Equal(1, lds.Skipped);
        Assert.True(double.IsNaN(lds.PerQuery[0]));
        Assert.Equal(1.0, lds.Mean, 6);
    }

    [Fact]
    public void Predict_sums_the_members_scores_of_each_subset()
    {
        float[] scores = [1, 2, 3, 4, /* query 1 */ 10, 20, 30, 40];
        var predicted = Lds.Predict(scores, 2, 4, [[0, 2], [1, 2, 3]]);
        Assert.Equal([4, 40, 9, 90], predicted);
    }

    [Fact]
    public void Subset_draw_is_deterministic_sorted_distinct_and_of_size_alpha_n()
    {
        var a = SubsetPlan.Draw(101, 5, 0.3, seed: 42, seedsPerSubset: 2);
        var b = SubsetPlan.Draw(101, 5, 0.3, seed: 42, seedsPerSubset: 2);
        var c = SubsetPlan.Draw(101, 5, 0.3, seed: 43, seedsPerSubset: 2);
        for (int j = 0; j < 5; j++)
        {
            Assert.Equal(a.Subsets[j], b.Subsets[j]);
            Assert.Equal(a.Seeds[j], b.Seeds[j]);
            Assert.Equal(30, a.Subsets[j].Length);
            Assert.Equal(a.Subsets[j].Order(), a.Subsets[j]);
            Assert.Equal(30, a.Subsets[j].Distinct().Count());
            Assert.NotEqual(a.Seeds[j][0], a.Seeds[j][1]);
        }

        Assert.NotEqual(a.Subsets[0], c.Subsets[0]);
        Assert.NotEqual(a.Subsets[0], a.Subsets[1]);
    }

    [Fact]
    public void Bad_subsets_alpha_and_delegate_outputs_are_rejected_with_the_offending_value()
    {
        var e = Assert.Throws<ArgumentException>(() => new SubsetPlan(10, 0.5, 0, [[1, 12]], [[0]]));
        Assert.Contains("12", e.Message, StringComparison.Ordinal);
        Assert.Contains("0..9", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new SubsetPlan(10, 0.5, 0, [[3, 3]], [[0]]));
        Assert.Throws<ArgumentOutOfRangeException>(() => SubsetPlan.Draw(10, 5, 1.0, 0));
        var lds = Assert.Throws<ArgumentException>(() => Lds.Predict(new float[8], 2, 4, [[0, 4]]));
        Assert.Contains("index 4", lds.Message, StringComparison.Ordinal);

        var plan = SubsetPlan.Draw(N, 3, 0.5, seed: 1);
        var wrong = Assert.Throws<InvalidOperationException>(() => RetrainingHarness.RunLds(plan, Q, (_, _, _) => new float[Q - 1]));
        Assert.Contains($"{Q} queries", wrong.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => RetrainingHarness.RunLds(plan, Q, (_, _, _) => Enumerable.Repeat(float.NaN, Q).ToArray()));
    }

    [Fact]
    public void Loo_correlation_is_one_for_the_linear_datamodel_and_uses_removal_deltas()
    {
        var w = Weights(5);
        int[] removed = [3, 17, 40, 99, 150, 199];
        var truth = LeaveOneOut.Run(N, removed, [11], Q, LinearRetrainer(w, 0));
        // Removing example i changes the output of query q by exactly −w[q, i].
        Assert.Equal(-w[(2 * N) + 40], truth.Delta[(2 * Q) + 2], 3);
        var loo = LeaveOneOut.Correlate(Matrix(w), truth);
        Assert.Equal(1.0, loo.Mean, 4);
        var reversed = LeaveOneOut.Correlate(Matrix(w.Select(v => -v).ToArray()), truth);
        Assert.Equal(-1.0, reversed.Mean, 4);
        Assert.Throws<ArgumentException>(() => LeaveOneOut.Run(N, [N], [1], Q, LinearRetrainer(w, 0)));
    }

    [Fact]
    public void Top_k_removal_drops_the_margin_by_the_removed_scores_and_beats_random_removal()
    {
        var w = Weights(6);
        var scores = Matrix(w);
        int[] queries = [0, 5, 9];
        var result = TopKRemoval.Run(scores, queries, 10, [1], randomSeed: 3, LinearRetrainer(w, 0));
        for (int a = 0; a < queries.Length; a++)
        {
            double expected = scores.TopK(queries[a], 10).Sum(t => (double)t.Score);
            Assert.Equal(expected, result.TopKDrop[a], 3);
        }

        Assert.True(result.TopK.Mean > result.Random.Mean + 5, $"top-k drop {result.TopK.Mean} vs random {result.Random.Mean}");
        Assert.Throws<ArgumentOutOfRangeException>(() => TopKRemoval.Run(scores, [Q], 10, [1], 3, LinearRetrainer(w, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => TopKRemoval.Run(scores, [0], N, [1], 3, LinearRetrainer(w, 0)));
    }
}
