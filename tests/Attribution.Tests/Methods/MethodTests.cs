using Attribution.Attribution;
using Attribution.Attribution.Kernels;
using Attribution.Attribution.Methods;
using Attribution.Engine.Models;

namespace Attribution.Tests.Methods;

public sealed class MethodTests
{
    private static AttributionProblem Problem(MlpLayout layout, int n, ulong seed, float weightDecay = 0f, int sources = 3, IReadOnlyList<float[]>? extra = null)
    {
        var theta = KernelTests.RandomTheta(layout, seed);
        var (x, y) = KernelTests.RandomData(layout, n, seed + 100);
        var src = Enumerable.Range(0, n).Select(i => (i * 7 + 3) % sources).ToArray();
        var checkpoints = extra is null ? null : new[] { theta }.Concat(extra).ToArray();
        return new AttributionProblem(layout, theta, x, y, src, sources, weightDecay, checkpoints);
    }

    private static QueryBatch Queries(MlpLayout layout, int q, ulong seed)
    {
        var (x, y) = KernelTests.RandomData(layout, q, seed);
        return new QueryBatch(x, y, layout.Widths[0]);
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = 0;
        foreach (var v in expected)
        {
            scale = Math.Max(scale, Math.Abs(v));
        }

        Assert.True(scale > 0, "reference scores are all zero");
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= relative * scale, $"entry {i}: expected {expected[i]}, got {actual[i]} (scale {scale:G3})");
        }
    }

    private static GradientFactors Grads(MlpLayout layout, float[] theta, float[] x, int[] y, ModelOutput output)
    {
        var model = new Mlp(layout);
        model.LoadFrom(theta);
        return model.PerExampleGradients(x, y, y.Length, output);
    }

    private static float[] Logits(MlpLayout layout, float[] theta, float[] x, int n)
    {
        var model = new Mlp(layout);
        model.LoadFrom(theta);
        var logits = new float[n * layout.Widths[^1]];
        model.Logits(x, n, logits);
        return logits;
    }

    [Fact]
    public void Forward_only_at_horizon_one_equals_step_size_times_grad_dot_on_an_mlp()
    {
        var layout = new MlpLayout([6, 8, 5, 3]);
        var problem = Problem(layout, 30, 1, weightDecay: 1e-3f);
        var queries = Queries(layout, 4, 2);
        var fo = new ForwardOnlyMethod(new ForwardOnlyOptions { Horizon = 1, StepSize = 0.1f, Epsilon = 1e-2f, Rank = 0, BatchSize = 10, UnitsPerBlock = 7 });
        fo.Precompute(problem);
        var gd = new TracInMethod(gradDot: true);
        gd.Precompute(problem);
        var expected = gd.Score(queries).Scores.Select(s => 0.1f * s).ToArray();
        AssertClose(expected, fo.Score(queries).Scores, 2e-3);
        // At K = 1 the response is exactly −η ∇ℓ_b(θ*), so its norm is η times the loss-gradient norm.
        var g = Grads(layout, problem.Theta, problem.TrainInputs, problem.TrainLabels, ModelOutput.Loss);
        var dense = new float[layout.ParameterCount];
        g.Dense(4, 1, dense);
        Assert.Equal(0.1 * Math.Sqrt(System.Numerics.Tensors.TensorPrimitives.Dot(dense, dense)), fo.ResponseNorms[4], 1e-3);
    }

    [Fact]
    public void The_simulator_keys_responses_by_position_and_rejects_an_example_outside_the_training_set()
    {
        // The simulator takes training-example indices (a source is the sum of its examples'): any subset in any order,
        // answered by position, each index simulated alone (the same response wherever it appears in the list).
        var layout = new MlpLayout([6, 8, 3]);
        var problem = Problem(layout, 20, 5, weightDecay: 1e-3f);
        var simulator = new ForwardOnlySimulator(problem, new ForwardOnlyOptions { Horizon = 5, StepSize = 0.1f, BatchSize = 10, UnitsPerBlock = 2, Propagation = ForwardPropagation.Trajectory });
        var got = new float[3][];
        simulator.Simulate([7, 2, 7], (i, r) => got[i] = r);
        var alone = new float[1][];
        simulator.Simulate([2], (i, r) => alone[i] = r);
        Assert.Equal(got[0], got[2]);
        Assert.Equal(alone[0], got[1]);
        Assert.NotEqual(got[0], got[1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => simulator.Simulate([3, 20], (_, _) => { }));
        Assert.Throws<ArgumentOutOfRangeException>(() => simulator.Simulate([-1], (_, _) => { }));
    }

    [Theory]
    [InlineData(true, 0f, ForwardPropagation.Trajectory)]
    [InlineData(false, 0f, ForwardPropagation.Trajectory)]
    [InlineData(true, 0.05f, ForwardPropagation.Trajectory)]
    [InlineData(true, 0f, ForwardPropagation.Spectral)]
    [InlineData(true, 0.05f, ForwardPropagation.Spectral)]
    [InlineData(true, 0.05f, ForwardPropagation.Spectral, 4)]
    public void Forward_only_matches_the_neumann_closed_form_on_linear_softmax(bool twoTrajectory, float lambda, ForwardPropagation propagation, int segments = 1)
    {
        // With segments > 1 the gradients are re-taken along the shared unperturbed full-batch trajectory, which does not
        // move from a converged θ* (damping pulls toward it): the segment maps must tile back into the same closed form.
        // The spectral propagator must reproduce the same closed form: at θ* (converged) the frozen-curvature map is exact.
        // A [5, 2] layout is L2-regularised logistic regression in softmax form; its Hessian is known in closed form.
        var layout = new MlpLayout([5, 2]);
        const int n = 40;
        const float wd = 0.05f, eta = 0.5f;
        var (x, y) = KernelTests.RandomData(layout, n, 3);
        var theta = new float[layout.ParameterCount];
        var grad = new float[theta.Length];
        var objective = new TrainingObjective(new AttributionProblem(layout, theta, x, y, weightDecay: wd));
        for (int it = 0; it < 3000; it++)
        {
            objective.Gradient(theta, grad);
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(grad, -1f, theta, theta);
        }

        var problem = new AttributionProblem(layout, theta, x, y, weightDecay: wd);
        var queries = Queries(layout, 3, 4);
        int p = layout.ParameterCount;
        var hessian = new double[p, p];
        var logits = Logits(layout, theta, x, n);
        for (int i = 0; i < n; i++)
        {
            double p1 = 1 / (1 + Math.Exp(logits[i * 2] - logits[i * 2 + 1]));
            double[] pr = [1 - p1, p1];
            for (int a = 0; a < p; a++)
            {
                for (int b = 0; b < p; b++)
                {
                    int ca = a < 10 ? a / 5 : a - 10, cb = b < 10 ? b / 5 : b - 10;
                    double xa = a < 10 ? x[i * 5 + a % 5] : 1, xb = b < 10 ? x[i * 5 + b % 5] : 1;
                    hessian[a, b] += ((ca == cb ? pr[ca] : 0) - pr[ca] * pr[cb]) * xa * xb / n;
                }
            }
        }

        for (int a = 0; a < p; a++)
        {
            hessian[a, a] += wd + lambda;
        }

        foreach (int k in new[] { 1, 10, 100 })
        {
            var method = new ForwardOnlyMethod(new ForwardOnlyOptions
            {
                Horizon = k, StepSize = eta, Epsilon = 1e-3f, Damping = lambda, BatchSize = 0, Rank = 0, TwoTrajectory = twoTrajectory,
                Propagation = propagation, OperatorSegments = Math.Min(segments, k),
            });
            method.Precompute(problem);
            var scores = method.Score(queries).Scores;
            var gq = Grads(layout, theta, queries.Inputs, queries.Labels, ModelOutput.Margin);
            var gb = Grads(layout, theta, x, y, ModelOutput.Loss);
            var gqDense = new float[queries.Count * p];
            var gbDense = new float[n * p];
            gq.Dense(0, queries.Count, gqDense);
            gb.Dense(0, n, gbDense);
            var expected = new float[queries.Count * n];
            for (int b = 0; b < n; b++)
            {
                var term = Enumerable.Range(0, p).Select(j => (double)gbDense[b * p + j]).ToArray();
                var sum = new double[p];
                for (int j = 0; j < k; j++)
                {
                    var ht = new double[p];
                    for (int a = 0; a < p; a++)
                    {
                        sum[a] += term[a];
                        for (int c = 0; c < p; c++)
                        {
                            ht[a] += hessian[a, c] * term[c];
                        }
                    }

                    for (int a = 0; a < p; a++)
                    {
                        term[a] -= eta * ht[a];
                    }
                }

                for (int q = 0; q < queries.Count; q++)
                {
                    double dot = 0;
                    for (int a = 0; a < p; a++)
                    {
                        dot += gqDense[q * p + a] * sum[a];
                    }

                    expected[q * n + b] = (float)(-eta * dot);
                }
            }

            // Float trajectories: the two-trajectory readout is O(ε²) accurate, the single-trajectory one O(ε).
            AssertClose(expected, scores, twoTrajectory ? 5e-3 : 5e-2);
        }
    }

    [Theory]
    [InlineData(2, 10, 0, 20)] // default: the 2 x 10 examples the horizon visits
    [InlineData(10, 10, 0, 60)] // the horizon covers the set: all of it
    [InlineData(2, 10, 7, 7)] // an explicit sample
    [InlineData(2, 10, 500, 60)] // a sample at least the set: all of it
    [InlineData(2, 0, 0, 60)] // full batch: all of it
    [InlineData(10, 10, 0, 25, 25)] // the visited examples capped (the default cap is 5,000)
    [InlineData(2, 10, 0, 20, 25)] // under the cap: all the visited ones
    [InlineData(2, 10, 40, 40, 25)] // an explicit sample is not capped
    public void Spectral_operator_is_fitted_on_the_examples_the_horizon_visits_by_default(int horizon, int batch, int sample, int expected, int cap = 5000)
    {
        // A fixed 1,000-example sample of 5,000 over-weighted its own examples' curvature 5x, ignored the others' and
        // halved η through its larger top Ritz value (LDS 0.265 vs 0.322 at 5,000/500/100): the default fits the
        // operator on the K·b examples the simulated mini-batches visit, each one's curvature weighted as in that run.
        var layout = new MlpLayout([5, 3]);
        var problem = Problem(layout, 60, 21, weightDecay: 1e-2f);
        var options = new ForwardOnlyOptions
        {
            Horizon = horizon, StepSize = 0.1f, BatchSize = batch, Rank = 0, Propagation = ForwardPropagation.Spectral, OperatorRank = 4,
            OperatorSample = sample, OperatorSampleCap = cap, InputBasisEnergy = 0,
        };
        var simulator = new ForwardOnlySimulator(problem, options);
        Assert.Equal(expected, simulator.OperatorSampleSize);

        // The operator is the one built on exactly those rows of the mini-batch sequence (same seed, same Lanczos start).
        var reference = new ForwardOnlySimulator(problem, options with { OperatorSample = expected });
        Assert.Equal(reference.Operator!.Eigenvalues, simulator.Operator!.Eigenvalues);
        var method = new ForwardOnlyMethod(options);
        method.Precompute(problem);
        Assert.Contains($"sample {expected},", method.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Forward_only_propagates_spectrally_on_an_mlp_by_default_and_by_the_trajectory_otherwise()
    {
        // Spectral is the MLP's default (FashionMNIST LDS 0.363 vs the trajectory's 0.352 at 5,000, 0.493 vs 0.427 at
        // 1,000, at a fraction of its CPU); the single-trajectory variant, ε given, and other models keep the trajectory.
        var layout = new MlpLayout([5, 4, 3]);
        var problem = Problem(layout, 30, 23, weightDecay: 1e-2f);
        var byDefault = new ForwardOnlySimulator(problem, new ForwardOnlyOptions { Horizon = 3, StepSize = 0.1f, BatchSize = 10 });
        Assert.Equal(ForwardPropagation.Spectral, byDefault.Propagation);
        Assert.NotNull(byDefault.Operator);
        Assert.Equal(ForwardPropagation.Trajectory, new ForwardOnlySimulator(problem, new ForwardOnlyOptions { Horizon = 3, StepSize = 0.1f, TwoTrajectory = false }).Propagation);
        var method = (ForwardOnlyMethod)MethodFactory.Create("forward-only", new Dictionary<string, string> { ["horizon"] = "3", ["eta"] = "0.1" });
        Assert.Null(method.Options.Propagation);
        method.Precompute(problem);
        Assert.Contains("propagation=spectral (operator rank 128", method.Describe(), StringComparison.Ordinal);
        var explicitSpectral = (ForwardOnlyMethod)MethodFactory.Create("forward-only", new Dictionary<string, string> { ["horizon"] = "3", ["eta"] = "0.1", ["propagation"] = "spectral" });
        explicitSpectral.Precompute(problem);
        var queries = Queries(layout, 3, 24);
        Assert.Equal(explicitSpectral.Score(queries).Scores, method.Score(queries).Scores);
        Assert.Equal(ForwardPropagation.Trajectory, ((ForwardOnlyMethod)MethodFactory.Create("forward-only", new Dictionary<string, string> { ["eps"] = "0.01" })).Options.Propagation);

        var (gpt, _, _) = global::Attribution.Tests.LanguageModels.GptGradientMethodTests.Build();
        Assert.Equal(ForwardPropagation.Trajectory, new ForwardOnlySimulator(gpt, new ForwardOnlyOptions { Horizon = 1, StepSize = 0.01f, BatchSize = 0 }).Propagation);
        var refused = Assert.Throws<ArgumentException>(() => new ForwardOnlySimulator(gpt, new ForwardOnlyOptions { Horizon = 1, StepSize = 0.01f, BatchSize = 0, OperatorRank = 8 }));
        Assert.Contains("add propagation=spectral", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Spectral_operator_drops_the_ritz_directions_clamped_to_the_complement_exactly()
    {
        // Ritz values at or below the weight decay are clamped to it, which is the complement's curvature: their directions
        // are mapped as the complement is, so Accumulate multiplies by the directions above it only (about half of 128 on
        // a FashionMNIST MLP). The response must equal φ(c) g + Σ_k (φ(max(a_k, wd)) − φ(c)) (v_k·g) v_k over all k.
        var layout = new MlpLayout([4, 6, 3]);
        var problem = Problem(layout, 40, 33, weightDecay: 1e-2f);
        int p = layout.ParameterCount;
        var options = new ForwardOnlyOptions { Horizon = 10, StepSize = 0.2f, BatchSize = 0, Rank = 0, Propagation = ForwardPropagation.Spectral, OperatorRank = p, InputBasisEnergy = 0 };
        var op = new ForwardOnlySimulator(problem, options).Operator!;
        Assert.InRange(op.ActiveRank, 1, op.Rank - 1); // a ReLU MLP's Hessian has negative curvature here
        var g = new float[2 * p];
        new global::Attribution.Engine.Rng(5).FillNormal(g);
        var got = (float[])g.Clone();
        op.Apply(got, 2, 0.2, 10, 0.0);
        double outside = TrajectoryOperator.Response(op.Complement, 0.2, 10);
        for (int u = 0; u < 2; u++)
        {
            var expected = new double[p];
            for (int i = 0; i < p; i++)
            {
                expected[i] = outside * g[u * p + i];
            }

            for (int k = 0; k < op.Rank; k++)
            {
                var v = op.Vectors.Slice(k * p, p);
                double dot = 0;
                for (int i = 0; i < p; i++)
                {
                    dot += v[i] * (double)g[u * p + i];
                }

                double scale = TrajectoryOperator.Response(Math.Max(op.Eigenvalues[k], op.Floor), 0.2, 10) - outside;
                for (int i = 0; i < p; i++)
                {
                    expected[i] += scale * dot * v[i];
                }
            }

            double norm = Math.Sqrt(expected.Sum(x => x * x));
            for (int i = 0; i < p; i++)
            {
                Assert.Equal(expected[i], got[u * p + i], 1e-5 * norm);
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Spectral_responses_are_stored_exactly_as_scaled_gradient_factors_plus_ritz_coefficients(int segments)
    {
        // An MLP example's gradient is rank one per layer (δ aᵀ, bias δ): the spectral response φ(c) g + Σ_k β_k (V_k·g) V_k
        // is stored as those factors scaled by φ(c) plus the m coefficients on the active Ritz vectors, kept once
        // (J segments: rank J). It must equal the dense response of the operator's GEMMs (Accumulate) to 1e-5 relative,
        // its norm too, and read out (JacobianScores) as the dense response's directional derivative does.
        var layout = new MlpLayout([6, 8, 5, 3]);
        var problem = Problem(layout, 30, 41, weightDecay: 1e-2f);
        int p = layout.ParameterCount;
        var options = new ForwardOnlyOptions
        {
            Horizon = 12, StepSize = 0.2f, BatchSize = 10, Rank = 2, Propagation = ForwardPropagation.Spectral, OperatorRank = 24, OperatorSegments = segments, InputBasisEnergy = 0,
        };
        var simulator = new ForwardOnlySimulator(problem, options);
        Assert.InRange(simulator.Operator!.ActiveRank, 1, 24);
        int[] examples = [4, 0, 17, 29, 4, 11];
        var dense = new float[examples.Length][];
        simulator.Simulate(examples, (i, r) => dense[i] = r);
        var norms = new float[examples.Length];
        var set = simulator.SimulateResponses(examples, ForwardOnlyMethod.LinearLayers(problem), options.Rank, options.Seed, norms);
        Assert.Equal(simulator.Operator.ActiveRank, set.DirectionCount);
        Assert.Equal(ResponseSet.RanksFor(set.Layers, segments), set.Ranks); // rank J per layer; full where that is smaller
        var stored = new float[p];
        for (int u = 0; u < examples.Length; u++)
        {
            set.Get(u, stored);
            AssertClose(dense[u], stored, 1e-5);
            double norm = Math.Sqrt(dense[u].Sum(v => (double)v * v));
            Assert.Equal(norm, norms[u], 1e-4 * norm);
            Assert.Equal(norm, set.Norm(u), 1e-4 * norm);
        }

        // Readout through the factors and the shared directions vs the dense responses: s(q, u) = ∇f_q · r_u.
        var queries = Queries(layout, 5, 8);
        var model = problem.CreateModel();
        var scores = new float[queries.Count * examples.Length];
        set.JacobianScores(model.ForwardModeGradients(queries.Batch, queries.Output), scores);
        var expected = new float[scores.Length];
        var gq = new float[p];
        for (int q = 0; q < queries.Count; q++)
        {
            model.OutputGradient(ForwardOnlySimulator.Rows(queries.Batch, [q]), queries.Output, default, gq, default);
            for (int u = 0; u < examples.Length; u++)
            {
                expected[q * examples.Length + u] = System.Numerics.Tensors.TensorPrimitives.Dot(gq, dense[u]);
            }
        }

        AssertClose(expected, scores, 1e-4);

        // The probe form: per-unit blocks (factors, then the coefficients) plus the directions as one shared tensor.
        var state = ForwardOnlyState.Export(model, set);
        Assert.Equal(ResponseSet.DirectionsTensor, state.ExampleTensors[^1].Name);
        Assert.Equal(2 * layout.LayerCount, state.Shared.Count); // per layer: the directions' weight blocks [m·out, in] and biases [m, out]
        Assert.Equal((set.DirectionCount * 8, 6), (state.Shared[0].Layout.Rows, state.Shared[0].Layout.Cols));
        var loaded = ForwardOnlyState.Load(model, state.ExampleTensors, state.Examples, state.Shared, options.Seed);
        var again = new float[scores.Length];
        loaded.JacobianScores(model.ForwardModeGradients(queries.Batch, queries.Output), again);
        Assert.Equal(scores, again);
        Assert.Contains("the shared directions need", Assert.Throws<ArgumentException>(() => ForwardOnlyState.Load(model, state.ExampleTensors, state.Examples, [], options.Seed)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Spectral_operator_of_an_mlp_uses_exact_hessian_products_equal_to_the_finite_difference_operator()
    {
        // The simulator builds an MLP's operator on the R-operator's exact Hessian-vector products (half the work of the
        // central difference); at full rank on a ReLU MLP its Ritz values must equal the finite-difference operator's
        // (the objective's own HVPs, mean loss plus weight decay), to the difference's O(h²) error.
        var layout = new MlpLayout([4, 3, 2]);
        var problem = Problem(layout, 25, 31, weightDecay: 1e-2f);
        int p = layout.ParameterCount;
        var options = new ForwardOnlyOptions
        {
            Horizon = 5, StepSize = 0.1f, BatchSize = 0, Rank = 0, Propagation = ForwardPropagation.Spectral, OperatorRank = p, InputBasisEnergy = 0,
        };
        var exact = new ForwardOnlySimulator(problem, options).Operator!;
        var reference = TrajectoryOperator.Build(new TrainingObjective(problem), problem.Theta, problem.WeightDecay, p, options.Seed);
        // Exact products stop on an invariant subspace (dead ReLUs give exactly flat, degenerate directions at the
        // weight decay); the central difference's noise reaches them too. The top of the spectrum is what propagates.
        Assert.InRange(exact.Rank, p / 2, p);
        double scale = reference.Eigenvalues.Max(Math.Abs);
        for (int k = 0; k < 6; k++)
        {
            Assert.True(Math.Abs(exact.Eigenvalues[k] - reference.Eigenvalues[k]) < 2e-3 * scale,
                $"Ritz value {k}: exact {exact.Eigenvalues[k]:G6} vs finite difference {reference.Eigenvalues[k]:G6} (scale {scale:G3})");
        }

        Assert.True(scale > 10 * problem.WeightDecay, $"the loss curvature must dominate the weight decay for the test to mean anything ({scale:G3})");
    }

    [Fact]
    public void Spectral_segments_follow_the_trajectorys_drifting_gradients_away_from_a_minimum()
    {
        // Away from a minimum the trajectory moves, so each unit's gradient changes along it. Taking it at every step of
        // the shared unperturbed trajectory (segments = K) must bring the spectral scores closer to the trajectory
        // simulation than taking it at θ* only: this protects the drift correction (the segment thetas, their
        // midpoints and the per-segment maps), not just its tiling.
        var layout = new MlpLayout([5, 3]);
        var problem = Problem(layout, 30, 11, weightDecay: 1e-2f);
        var queries = Queries(layout, 4, 12);
        int p = layout.ParameterCount;
        float[] Scores(ForwardPropagation propagation, int segments)
        {
            var method = new ForwardOnlyMethod(new ForwardOnlyOptions
            {
                Horizon = 20, StepSize = 0.3f, Epsilon = 1e-3f, BatchSize = 0, Rank = 0, Propagation = propagation,
                OperatorRank = p, OperatorSegments = segments, InputBasisEnergy = 0,
            });
            method.Precompute(problem);
            return method.Score(queries).Scores;
        }

        var trajectory = Scores(ForwardPropagation.Trajectory, 1);
        double Error(float[] s) => Math.Sqrt(s.Zip(trajectory, (a, b) => (double)(a - b) * (a - b)).Sum());
        double frozen = Error(Scores(ForwardPropagation.Spectral, 1)), drift = Error(Scores(ForwardPropagation.Spectral, 20));
        double norm = Math.Sqrt(trajectory.Sum(v => (double)v * v));
        Assert.True(frozen > 0.05 * norm, $"θ* must be far enough from a minimum for the drift to matter (error {frozen:G3} vs ‖s‖ {norm:G3})");
        Assert.True(drift < 0.5 * frozen, $"segments = K error {drift:G3} vs θ*-only error {frozen:G3} (‖s‖ {norm:G3})");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void Forward_only_source_scores_are_the_per_source_sums_of_its_example_scores(int rank)
    {
        // The one definition of a source's score (offline, eval and the Scorer): the sum of its examples' readouts.
        // Measured against sources simulated as whole units, the sum had the better source LDS (0.711 vs 0.455).
        var layout = new MlpLayout([10, 9, 6, 4]);
        var problem = Problem(layout, 25, 5, weightDecay: 1e-3f, sources: 4);
        var queries = Queries(layout, 5, 6);
        var method = new ForwardOnlyMethod(new ForwardOnlyOptions { Horizon = 5, Rank = rank, BatchSize = 8, UnitsPerBlock = 6, PowerIterations = 5 });
        method.Precompute(problem);
        var scores = method.Score(queries);
        var expected = new double[queries.Count * problem.SourceCount];
        for (int q = 0; q < queries.Count; q++)
        {
            for (int i = 0; i < problem.Count; i++)
            {
                expected[q * problem.SourceCount + problem.SourceIds[i]] += scores.Scores[q * problem.Count + i];
            }
        }

        var direct = method.ScoreSources(queries);
        Assert.Equal(expected.Length, direct.Length);
        Assert.All(expected, v => Assert.NotEqual(0, v));
        AssertClose(expected.Select(v => (float)v).ToArray(), direct, 1e-5);
        var (examples, both) = method.ScoreAll(queries);
        Assert.Equal(scores.Scores, examples.Scores);
        Assert.Equal(direct, both);
        Assert.Empty(method.ExportState().Sources); // no source units are simulated or stored
    }

    [Fact]
    public void A_method_served_from_its_responses_scores_exactly_as_the_precomputed_one()
    {
        var layout = new MlpLayout([10, 9, 6, 4]);
        var problem = Problem(layout, 20, 9, weightDecay: 1e-3f, sources: 3);
        var queries = Queries(layout, 4, 10);
        var options = new ForwardOnlyOptions { Horizon = 3, Rank = 2, BatchSize = 8, PowerIterations = 5, InputBasisEnergy = 0 };
        var method = new ForwardOnlyMethod(options);
        method.Precompute(problem);
        var served = ForwardOnlyMethod.FromResponses(layout, problem.Theta, method.ExampleResponses, problem.SourceIds, problem.SourceCount, options);
        var (expected, expectedSources) = method.ScoreAll(queries);
        var (actual, actualSources) = served.ScoreAll(queries);
        Assert.Equal(expected.Scores, actual.Scores);
        Assert.Equal(expectedSources, actualSources);
        Assert.Equal(queries.Count * problem.SourceCount, actualSources.Length);
        var predicted = served.Predict(queries.Inputs, queries.Count);
        var logits = Logits(layout, problem.Theta, queries.Inputs, queries.Count);
        for (int q = 0; q < queries.Count; q++)
        {
            var row = logits.AsSpan(q * 4, 4);
            Assert.Equal(row.IndexOf(System.Numerics.Tensors.TensorPrimitives.Max(row)), predicted[q]);
        }
    }

    [Fact]
    public void Forward_only_finite_difference_readout_agrees_with_the_jvp_readout()
    {
        var layout = new MlpLayout([10, 9, 6, 4]);
        var problem = Problem(layout, 12, 7, weightDecay: 1e-3f);
        var queries = Queries(layout, 3, 8);
        var jvp = new ForwardOnlyMethod(new ForwardOnlyOptions { Horizon = 5, StepSize = 0.05f, Rank = 0, BatchSize = 6 });
        var fd = new ForwardOnlyMethod(jvp.Options with { Readout = ForwardReadout.FiniteDifference, ReadoutEpsilon = 1e-4f });
        jvp.Precompute(problem);
        fd.Precompute(problem);
        AssertClose(jvp.Score(queries).Scores, fd.Score(queries).Scores, 2e-2);
    }

    [Fact]
    public void Low_rank_compressed_scores_correlate_with_uncompressed_scores()
    {
        var layout = new MlpLayout([20, 16, 8, 4]);
        var problem = Problem(layout, 30, 9, weightDecay: 1e-3f);
        var queries = Queries(layout, 6, 10);
        // The trajectory's responses are dense and stored at the options' rank (spectral ones on an MLP are stored exactly
        // as gradient factors plus Ritz coefficients, whatever the rank).
        var full = new ForwardOnlyMethod(new ForwardOnlyOptions { Horizon = 10, StepSize = 0.05f, Rank = 0, BatchSize = 10, Propagation = ForwardPropagation.Trajectory });
        var low = new ForwardOnlyMethod(full.Options with { Rank = 4 });
        full.Precompute(problem);
        low.Precompute(problem);
        double r = Pearson(full.Score(queries).Scores, low.Score(queries).Scores);
        Assert.True(r > 0.95, $"Pearson correlation of rank-4 with full responses: {r:F4}");
        Assert.True(low.StateBytes < full.StateBytes);
    }

    [Fact]
    public void Trak_equals_its_brute_force_projected_formula_and_the_unprojected_formula_when_k_covers_p()
    {
        var layout = new MlpLayout([3, 4, 3]);
        int p = layout.ParameterCount;
        var problem = Problem(layout, 300, 11);
        var queries = Queries(layout, 4, 12);
        var trak = new TrakMethod(new TrakOptions { ProjectionDim = 2 * p, RelativeDamping = 1e-7 });
        trak.Precompute(problem);
        var scores = trak.Score(queries).Scores;
        // Unprojected: s = g_q (GᵀG)⁺ Gᵀ Q in double via the eigen-decomposition of GᵀG.
        int n = problem.Count;
        var g = Grads(layout, problem.Theta, problem.TrainInputs, problem.TrainLabels, ModelOutput.Margin);
        var gd = new float[n * p];
        g.Dense(0, n, gd);
        var m = new double[p * p];
        for (int i = 0; i < n; i++)
        {
            for (int a = 0; a < p; a++)
            {
                for (int b = 0; b < p; b++)
                {
                    m[a * p + b] += (double)gd[i * p + a] * gd[i * p + b];
                }
            }
        }

        var (values, vectors) = Linalg.SymmetricEigen(m, p);
        double top = values.Max();
        var qd = new float[queries.Count * p];
        Grads(layout, problem.Theta, queries.Inputs, queries.Labels, ModelOutput.Margin).Dense(0, queries.Count, qd);
        var probs = Logits(layout, problem.Theta, problem.TrainInputs, n);
        var expected = new float[queries.Count * n];
        for (int q = 0; q < queries.Count; q++)
        {
            // w = (GᵀG)⁺ g_q.
            var w = new double[p];
            for (int e = 0; e < p; e++)
            {
                if (values[e] < 1e-9 * top)
                {
                    continue;
                }

                double c = 0;
                for (int a = 0; a < p; a++)
                {
                    c += vectors[a * p + e] * qd[q * p + a];
                }

                for (int a = 0; a < p; a++)
                {
                    w[a] += vectors[a * p + e] * c / values[e];
                }
            }

            for (int i = 0; i < n; i++)
            {
                double dot = 0;
                for (int a = 0; a < p; a++)
                {
                    dot += w[a] * gd[i * p + a];
                }

                var z = probs.AsSpan(i * 3, 3);
                double max = Math.Max(z[0], Math.Max(z[1], z[2]));
                double pc = Math.Exp(z[problem.TrainLabels[i]] - max) / (Math.Exp(z[0] - max) + Math.Exp(z[1] - max) + Math.Exp(z[2] - max));
                expected[q * n + i] = (float)(dot * (1 - pc));
            }
        }

        AssertClose(expected, scores, 2e-2);
    }

    [Fact]
    public void Trak_with_sjlt_projection_correlates_with_the_gaussian_projection()
    {
        var layout = new MlpLayout([6, 8, 4]);
        var problem = Problem(layout, 200, 13);
        var queries = Queries(layout, 4, 14);
        // With k ≥ p both projections preserve the gradient geometry, so they converge to the same scores.
        var gauss = new TrakMethod(new TrakOptions { ProjectionDim = 4 * layout.ParameterCount });
        var sjlt = new TrakMethod(new TrakOptions { ProjectionDim = 4 * layout.ParameterCount, Projector = TrakProjector.Sjlt });
        gauss.Precompute(problem);
        sjlt.Precompute(problem);
        double r = Pearson(gauss.Score(queries).Scores, sjlt.Score(queries).Scores);
        Assert.True(r > 0.99, $"Pearson correlation SJLT vs Gaussian: {r:F3}");
    }

    [Fact]
    public void Trak_ensemble_is_the_mean_of_single_model_scores()
    {
        var layout = new MlpLayout([6, 5, 3]);
        var second = KernelTests.RandomTheta(layout, 99);
        var problem = Problem(layout, 50, 15, extra: [second]);
        var queries = Queries(layout, 3, 16);
        var both = new TrakMethod(new TrakOptions { ProjectionDim = 16 });
        both.Precompute(problem);
        var first = new TrakMethod(new TrakOptions { ProjectionDim = 16, Models = 1 });
        first.Precompute(problem);
        var onlySecond = new TrakMethod(new TrakOptions { ProjectionDim = 16 });
        onlySecond.Precompute(new AttributionProblem(layout, second, problem.TrainInputs, problem.TrainLabels, problem.SourceIds, problem.SourceCount));
        var a = first.Score(queries).Scores;
        var b = onlySecond.Score(queries).Scores;
        AssertClose(a.Zip(b, (u, v) => 0.5f * (u + v)).ToArray(), both.Score(queries).Scores, 1e-4);
    }

    [Fact]
    public void Influence_cg_equals_exact_influence_on_a_tiny_mlp()
    {
        var layout = new MlpLayout([4, 5, 3]);
        var problem = Problem(layout, 60, 17, weightDecay: 1e-2f);
        var queries = Queries(layout, 3, 18);
        var exact = new InfluenceFunctionMethod(new InfluenceOptions { Damping = 1.0, Solver = InfluenceSolver.Exact });
        var cg = new InfluenceFunctionMethod(new InfluenceOptions { Damping = 1.0, Solver = InfluenceSolver.ConjugateGradient, MaxIterations = 200, Tolerance = 1e-6 });
        exact.Precompute(problem);
        cg.Precompute(problem);
        AssertClose(exact.Score(queries).Scores, cg.Score(queries).Scores, 1e-2);
        Assert.InRange(cg.LastIterations, 1, 200);
    }

    [Fact]
    public void Influence_with_huge_damping_is_grad_dot_over_lambda()
    {
        var layout = new MlpLayout([4, 5, 3]);
        var problem = Problem(layout, 40, 19);
        var queries = Queries(layout, 3, 20);
        var inf = new InfluenceFunctionMethod(new InfluenceOptions { Damping = 1e4, Solver = InfluenceSolver.Exact });
        inf.Precompute(problem);
        var gd = new TracInMethod(gradDot: true);
        gd.Precompute(problem);
        AssertClose(gd.Score(queries).Scores, inf.Score(queries).Scores.Select(s => s * 1e4f).ToArray(), 1e-2);
    }

    [Fact]
    public void Tracin_sums_weighted_grad_dot_over_checkpoints_and_source_scores_are_exact_sums()
    {
        var layout = new MlpLayout([6, 5, 3]);
        var second = KernelTests.RandomTheta(layout, 77);
        var plain = Problem(layout, 20, 21);
        var problem = new AttributionProblem(layout, plain.Theta, plain.TrainInputs, plain.TrainLabels, plain.SourceIds, plain.SourceCount)
        {
            TrainingCheckpoints = [new[] { plain.Theta, second }],
        };
        var queries = Queries(layout, 2, 22);
        var tracin = new TracInMethod(checkpointWeights: [0.5f, 2f]);
        tracin.Precompute(problem);
        var gd1 = new TracInMethod(gradDot: true);
        gd1.Precompute(problem);
        var gd2 = new TracInMethod(gradDot: true);
        gd2.Precompute(new AttributionProblem(layout, second, problem.TrainInputs, problem.TrainLabels, problem.SourceIds, problem.SourceCount));
        var expected = gd1.Score(queries).Scores.Zip(gd2.Score(queries).Scores, (a, b) => 0.5f * a + 2f * b).ToArray();
        var matrix = tracin.Score(queries);
        AssertClose(expected, matrix.Scores, 1e-5);
        IAttributionMethod asInterface = tracin;
        var sources = asInterface.ScoreSources(queries);
        for (int q = 0; q < queries.Count; q++)
        {
            for (int s = 0; s < problem.SourceCount; s++)
            {
                double sum = Enumerable.Range(0, problem.Count).Where(i => problem.SourceIds[i] == s).Sum(i => (double)matrix.Scores[q * problem.Count + i]);
                Assert.Equal(sum, sources[q * problem.SourceCount + s], 1e-5);
            }
        }
    }

    [Fact]
    public void Grad_dot_is_positive_for_a_duplicate_of_the_query()
    {
        var layout = new MlpLayout([6, 5, 3]);
        var problem = Problem(layout, 10, 23);
        var gd = new TracInMethod(gradDot: true);
        gd.Precompute(problem);
        var queries = new QueryBatch(problem.TrainInputs.AsSpan(0, 6).ToArray(), [problem.TrainLabels[0]], 6);
        Assert.True(gd.Score(queries).Scores[0] > 0);
    }

    [Theory]
    [InlineData("forward-only", "forward-only")]
    [InlineData("Forward-Only-Single", "forward-only-single")]
    [InlineData("trak", "trak")]
    [InlineData("tracin", "tracin")]
    [InlineData("grad-dot", "grad-dot")]
    [InlineData("if", "if")]
    public void Factory_creates_every_method_by_name(string name, string expected) =>
        Assert.Equal(expected, MethodFactory.Create(name).Name);

    [Fact]
    public void Tracin_without_training_checkpoints_is_refused_not_grad_dot()
    {
        // It used to fall back to θ* alone and give Grad-Dot's scores byte for byte under TracIn's name.
        var layout = new MlpLayout([6, 5, 3]);
        var e = Assert.Throws<MethodOptionException>(() => MethodFactory.Create("tracin").Precompute(Problem(layout, 10, 3)));
        Assert.Contains("--save-every", e.Message, StringComparison.Ordinal);
        var weights = MethodFactory.Create("tracin", new Dictionary<string, string> { ["weights"] = "1,2,3" });
        var problem = Problem(layout, 10, 3);
        var withCheckpoints = new AttributionProblem(layout, problem.Theta, problem.TrainInputs, problem.TrainLabels) { TrainingCheckpoints = [new[] { problem.Theta }] };
        Assert.Contains("3 checkpoint weights but training saved 1", Assert.Throws<MethodOptionException>(() => weights.Precompute(withCheckpoints)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("trak", "k=8")]
    [InlineData("forward-only", "horizon=2,batch=10")]
    [InlineData("grad-dot", "")]
    [InlineData("if", "solver=exact")]
    public void More_models_than_the_problem_holds_are_refused_never_truncated(string name, string options)
    {
        // trak:models=10 on one trained model used to run TRAK-1 and describe itself as models=1.
        var opts = options.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(o => o.Split('=')).ToDictionary(kv => kv[0], kv => kv[1]);
        opts["models"] = "3";
        var layout = new MlpLayout([4, 3, 3]);
        var method = MethodFactory.Create(name, opts);
        var e = Assert.Throws<MethodOptionException>(() => method.Precompute(Problem(layout, 10, 4, extra: [KernelTests.RandomTheta(layout, 5)])));
        Assert.Contains("models=3 needs 3 independently trained models but only 2 were given", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_ensemble_averages_each_models_scores_with_that_model_as_theta_star()
    {
        var layout = new MlpLayout([6, 5, 3]);
        var second = KernelTests.RandomTheta(layout, 31);
        var problem = Problem(layout, 25, 30, extra: [second]);
        var queries = Queries(layout, 3, 32);
        var ensemble = MethodFactory.Create("grad-dot", new Dictionary<string, string> { ["models"] = "2" });
        Assert.IsType<EnsembleMethod>(ensemble);
        ensemble.Precompute(problem);
        IAttributionMethod one = new TracInMethod(gradDot: true);
        one.Precompute(problem);
        IAttributionMethod two = new TracInMethod(gradDot: true);
        two.Precompute(new AttributionProblem(layout, second, problem.TrainInputs, problem.TrainLabels, problem.SourceIds, problem.SourceCount));
        var expected = one.Score(queries).Scores.Zip(two.Score(queries).Scores, (a, b) => 0.5f * (a + b)).ToArray();
        AssertClose(expected, ensemble.Score(queries).Scores, 1e-6);
        AssertClose(one.ScoreSources(queries).Zip(two.ScoreSources(queries), (a, b) => 0.5f * (a + b)).ToArray(), ensemble.ScoreSources(queries), 1e-5);
        Assert.Contains("averaged over 2 independently trained models", ensemble.Describe(), StringComparison.Ordinal);
        var forward = MethodFactory.Create("forward-only", new Dictionary<string, string> { ["models"] = "4", ["horizon"] = "5" });
        Assert.Equal(4, Assert.IsType<EnsembleMethod>(forward).Models);
        Assert.Equal("forward-only", forward.Name);
    }

    [Fact]
    public void Forward_only_averaged_over_training_checkpoints_simulates_and_reads_out_at_each_of_the_last_ones()
    {
        var layout = new MlpLayout([6, 5, 3]);
        var problem = Problem(layout, 30, 40);
        var saved = new[] { KernelTests.RandomTheta(layout, 41), KernelTests.RandomTheta(layout, 42), problem.Theta };
        problem = new AttributionProblem(layout, problem.Theta, problem.TrainInputs, problem.TrainLabels, problem.SourceIds, problem.SourceCount)
        {
            TrainingCheckpoints = [saved],
        };
        var queries = Queries(layout, 4, 43);
        var spec = new Dictionary<string, string> { ["checkpoints"] = "2", ["horizon"] = "4", ["eta"] = "0.1", ["batch"] = "10" };
        var averaged = Assert.IsType<EnsembleMethod>(MethodFactory.Create("forward-only", spec));
        averaged.Precompute(problem);
        Assert.Contains("2 training checkpoints of one model spread over its run", averaged.Describe(), StringComparison.Ordinal);

        // Two of three spread over the run: saved[1] and the model itself, each simulated and read out at that checkpoint.
        var options = new ForwardOnlyOptions { Horizon = 4, StepSize = 0.1f, BatchSize = 10, Rank = 0 };
        var members = saved[1..].Select(theta =>
        {
            var m = new ForwardOnlyMethod(options);
            m.Precompute(new AttributionProblem(layout, theta, problem.TrainInputs, problem.TrainLabels, problem.SourceIds, problem.SourceCount));
            return m.Score(queries).Scores;
        }).ToArray();
        AssertClose(members[0].Zip(members[1], (a, b) => 0.5f * (a + b)).ToArray(), averaged.Score(queries).Scores, 1e-5);

        var tooFew = MethodFactory.Create("forward-only", new Dictionary<string, string>(spec) { ["checkpoints"] = "4" });
        var e = Assert.Throws<MethodOptionException>(() => tooFew.Precompute(problem));
        Assert.Contains("checkpoints=4 needs 4 checkpoints saved along training but 3 were given", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(10, 5, new[] { 1, 3, 5, 7, 9 })]
    [InlineData(10, 10, new[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 })]
    [InlineData(10, 3, new[] { 3, 6, 9 })]
    [InlineData(10, 1, new[] { 9 })]
    [InlineData(20, 2, new[] { 9, 19 })]
    public void Training_checkpoints_are_spread_evenly_over_the_run_ending_at_the_last(int saved, int members, int[] expected) =>
        Assert.Equal(expected, Enumerable.Range(0, members).Select(m => EnsembleMethod.SpreadCheckpoint(m, members, saved)));

    [Theory]
    [InlineData(1000, 100, 4.0, 40)]
    [InlineData(5000, 100, 4.0, 200)]
    [InlineData(1050, 100, 1.0, 11)] // a partial last batch rounds up
    [InlineData(40, 100, 4.0, 4)] // a batch above n is full batch: one step per epoch
    [InlineData(1000, 0, 2.5, 3)]
    public void The_horizon_in_epochs_is_that_many_passes_of_the_shared_mini_batches(int n, int batch, double epochs, int steps)
    {
        var options = new ForwardOnlyOptions { HorizonEpochs = epochs, BatchSize = batch };
        Assert.Equal(steps, options.StepsFor(n, ForwardPropagation.Spectral));
        Assert.Equal(steps, options.StepsFor(n, ForwardPropagation.Trajectory));
        Assert.Equal(7, (options with { HorizonEpochs = null, Horizon = 7 }).StepsFor(n, ForwardPropagation.Spectral));
    }

    [Fact]
    public void The_default_horizon_is_epochs_for_the_spectral_propagation_and_steps_for_the_others()
    {
        var d = new ForwardOnlyOptions();
        Assert.Equal((int)Math.Ceiling(ForwardOnlyOptions.DefaultHorizonEpochs * 5000 / 100), d.StepsFor(5000, ForwardPropagation.Spectral));
        Assert.Equal(ForwardOnlyOptions.DefaultHorizonSteps, d.StepsFor(5000, ForwardPropagation.Trajectory));
        Assert.Equal(ForwardOnlyOptions.DefaultHorizonSteps, d.StepsFor(5000, ForwardPropagation.Tangent));

        // The simulator resolves it against the problem's training set (30 examples, batches of 10: 3 steps an epoch).
        var layout = new MlpLayout([4, 5, 3]);
        var simulator = new ForwardOnlySimulator(Problem(layout, 30, 50), new ForwardOnlyOptions { BatchSize = 10, StepSize = 0.1f, OperatorRank = 4 });
        Assert.Equal(ForwardPropagation.Spectral, simulator.Propagation);
        Assert.Equal((int)Math.Ceiling(ForwardOnlyOptions.DefaultHorizonEpochs * 3), simulator.Horizon);
        var method = new ForwardOnlyMethod(new ForwardOnlyOptions { HorizonEpochs = 2, BatchSize = 10, StepSize = 0.1f, OperatorRank = 4 });
        method.Precompute(Problem(layout, 30, 50));
        Assert.Equal(6, method.Horizon);
        Assert.Contains("K=6 (2 epochs)", method.Describe(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("forward-only", "horizon=40,horizon-epochs=4", "give one of them")]
    [InlineData("forward-only", "horizon=0", "at least 1 step")]
    [InlineData("forward-only", "checkpoints=0", "must be at least 1")]
    public void Horizon_and_checkpoint_options_that_cannot_be_honoured_are_refused(string name, string options, string why)
    {
        var opts = options.Split(',').Select(o => o.Split('=')).ToDictionary(kv => kv[0], kv => kv[1]);
        var e = Assert.Throws<MethodOptionException>(() => MethodFactory.Create(name, opts));
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new ForwardOnlyOptions { Horizon = 40, HorizonEpochs = 4 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ForwardOnlyOptions { HorizonEpochs = -1 }.Validate());
    }

    [Theory]
    [InlineData("trak", "sjlt-nonzeros=2", "projector=sjlt only")]
    [InlineData("if", "solver=exact,iterations=5", "exact solver does not iterate")]
    [InlineData("forward-only", "eta=0.01,power-iterations=5", "h_max is not estimated")]
    [InlineData("forward-only", "readout-eps=1e-3", "readout=fd only")]
    [InlineData("forward-only", "rank=0,basis=0.9", "low-rank responses")]
    [InlineData("forward-only-single", "operator-segments=5", "add propagation=spectral")]
    [InlineData("forward-only", "eps=1e-2,operator-segments=5", "add propagation=spectral")] // eps asks for the trajectory
    [InlineData("forward-only", "propagation=spectral,eps=1e-2", "linear in ε")]
    [InlineData("forward-only", "propagation=trajectory,operator-rank=256", "add propagation=spectral")]
    [InlineData("trak", "models=0", "at least 1")]
    public void Options_that_would_have_no_effect_are_refused(string name, string options, string why)
    {
        var opts = options.Split(',').Select(o => o.Split('=')).ToDictionary(kv => kv[0], kv => kv[1]);
        var e = Assert.Throws<MethodOptionException>(() => MethodFactory.Create(name, opts));
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cg_options_without_a_solver_select_cg()
    {
        var layout = new MlpLayout([4, 5, 3]);
        var method = (InfluenceFunctionMethod)MethodFactory.Create("if", new Dictionary<string, string> { ["iterations"] = "7" });
        method.Precompute(Problem(layout, 20, 9, weightDecay: 1e-2f)); // 43 parameters: auto would pick the exact solver
        Assert.Contains("solver=cg", method.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Factory_rejects_unknown_names_and_options_listing_the_valid_ones()
    {
        var e = Assert.Throws<MethodOptionException>(() => MethodFactory.Create("lissa"));
        Assert.Contains("forward-only, forward-only-single, trak, tracin, grad-dot, if", e.Message, StringComparison.Ordinal);
        var o = Assert.Throws<MethodOptionException>(() => MethodFactory.Create("trak", new Dictionary<string, string> { ["kk"] = "5" }));
        Assert.Contains("projector", o.Message, StringComparison.Ordinal);
        var method = (ForwardOnlyMethod)MethodFactory.Create("forward-only", new Dictionary<string, string> { ["horizon"] = "7", ["eps"] = "0.01", ["rank"] = "0" });
        Assert.Equal(7, method.Options.Horizon);
        Assert.Equal(0.01f, method.Options.Epsilon);
    }

    internal static double Pearson(float[] a, float[] b)
    {
        double ma = a.Average(v => (double)v), mb = b.Average(v => (double)v);
        double sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sab += (a[i] - ma) * (b[i] - mb);
            saa += (a[i] - ma) * (a[i] - ma);
            sbb += (b[i] - mb) * (b[i] - mb);
        }

        return sab / Math.Sqrt(saa * sbb);
    }
}
