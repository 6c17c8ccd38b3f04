using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Engine.Models;

namespace Attribution.Tests.Methods;

/// <summary>
/// <c>propagation=tangent</c> carries every unit of a block along the unperturbed trajectory with exact Hessian-vector
/// products (<see cref="MlpCurvature"/>) instead of running two ±ε trajectories per unit. These tests hold the
/// R-operator to finite differences of the model's own gradient, the unit gradients to the model's, and the simulated
/// responses to the two-trajectory simulation they replace (the ε → 0 limit of the same map).
/// </summary>
public sealed class TangentPropagationTests
{
    private static double Norm(float[] v) => Math.Sqrt(v.Sum(x => (double)x * x));

    private static double RelativeError(float[] actual, float[] expected) =>
        Math.Sqrt(actual.Zip(expected, (a, b) => (double)(a - b) * (a - b)).Sum()) / Norm(expected);

    [Theory]
    [InlineData(new[] { 6, 5, 4, 3 }, 3, 11)]
    [InlineData(new[] { 8, 3 }, 2, 7)]
    [InlineData(new[] { 5, 7, 4 }, 1, 9)]
    public void Stacked_hessian_vector_products_equal_finite_differences_of_the_models_gradient(int[] widths, int slots, int batch)
    {
        var layout = new MlpLayout(widths);
        var theta = KernelTests.RandomTheta(layout, 3);
        var (x, y) = KernelTests.RandomData(layout, batch, 4);
        float weight = 1f / batch;
        var curvature = new MlpCurvature(layout, theta, x, y, weight);
        var directions = new MlpStack(layout, slots);
        var v = new float[slots][];
        for (int s = 0; s < slots; s++)
        {
            v[s] = KernelTests.RandomTheta(layout, (ulong)(20 + s));
            directions.SetSlot(s, v[s]);
        }

        var products = new MlpStack(layout, slots);
        curvature.Multiply(directions, products);
        var model = new Mlp(layout);
        var weights = Enumerable.Repeat(weight, batch).ToArray();
        var actual = new float[layout.ParameterCount];
        for (int s = 0; s < slots; s++)
        {
            // Central difference of the model's gradient in double-rounded steps: (g(θ + hv) − g(θ − hv)) / 2h.
            const float h = 1e-3f;
            var plus = new float[layout.ParameterCount];
            var minus = new float[layout.ParameterCount];
            model.LoadFrom([.. theta.Zip(v[s], (t, d) => t + h * d)]);
            model.OutputGradient(x, y, batch, ModelOutput.Loss, weights, plus, default);
            model.LoadFrom([.. theta.Zip(v[s], (t, d) => t - h * d)]);
            model.OutputGradient(x, y, batch, ModelOutput.Loss, weights, minus, default);
            float[] expected = [.. plus.Zip(minus, (a, b) => (a - b) / (2 * h))];
            products.GetSlot(s, actual);
            // Float32 differences at h = 1e-3 are good to ~1e-3 relative; a missing R-operator term (e.g. e·ȧᵀ) is O(1).
            Assert.True(RelativeError(actual, expected) < 5e-3, $"slot {s}: relative error {RelativeError(actual, expected):G3}");
        }
    }

    [Fact]
    public void Row_gradients_are_added_to_their_slots_as_the_models_weighted_gradient()
    {
        var layout = new MlpLayout([6, 5, 4, 3]);
        var theta = KernelTests.RandomTheta(layout, 5);
        var (bx, by) = KernelTests.RandomData(layout, 4, 6);
        var curvature = new MlpCurvature(layout, theta, bx, by, 0.25f);
        var (x, y) = KernelTests.RandomData(layout, 5, 7);
        var gradient = new MlpStack(layout, 5);
        var before = KernelTests.RandomTheta(layout, 8);
        for (int s = 0; s < 5; s++)
        {
            gradient.SetSlot(s, before); // added to, not overwritten
        }

        curvature.AddRowGradients(x, y, 0.7f, gradient);
        var model = new Mlp(layout);
        model.LoadFrom(theta);
        var actual = new float[layout.ParameterCount];
        for (int s = 0; s < 5; s++)
        {
            var expected = new float[layout.ParameterCount];
            model.OutputGradient(x.AsSpan(s * 6, 6), y.AsSpan(s, 1), 1, ModelOutput.Loss, [0.7f], expected, default);
            gradient.GetSlot(s, actual);
            for (int j = 0; j < actual.Length; j++)
            {
                Assert.Equal(before[j] + expected[j], actual[j], 1e-5);
            }
        }

        Assert.Throws<ArgumentException>(() => curvature.AddRowGradients(x, y, 1f, new MlpStack(layout, 4)));
    }

    // 60 examples, mini-batches of 10, K = 20, weight decay and proximal damping; a ReLU MLP and softmax regression.
    private static AttributionProblem Problem(int[] widths)
    {
        var layout = new MlpLayout(widths);
        var theta = KernelTests.RandomTheta(layout, 41);
        var (x, y) = KernelTests.RandomData(layout, 60, 42);
        return new AttributionProblem(layout, theta, x, y, weightDecay: 1e-3f);
    }

    // The two-trajectory simulation's central difference and its tangent agree to O(ε²) and float rounding where the
    // map is smooth. On a ReLU MLP the ±ε trajectories can straddle a ReLU kink (a row whose pre-activation is within
    // ~ε·‖r‖ of 0): the difference then jumps and is not the derivative (here, at ε = 1e-3 and K = 5, unit 4 of 0..4
    // differs by 60 %; at ε = 1e-4 it agrees to 1e-3), so the ReLU case compares at ε = 1e-4.
    [Theory]
    [InlineData(new[] { 12, 10, 6, 4 }, 1e-4f, 100, 5e-3)] // measured worst ≈ 2e-3
    [InlineData(new[] { 12, 10, 6, 4 }, 1e-4f, 7, 5e-3)]
    [InlineData(new[] { 12, 4 }, 1e-3f, 100, 5e-4)] // softmax regression: no kinks, measured ≈ 5e-5
    public void Tangent_responses_equal_the_two_trajectory_simulation_unit_by_unit(int[] widths, float epsilon, int block, double tolerance)
    {
        var problem = Problem(widths);
        var trajectory = new ForwardOnlyOptions { StepSize = 0.1f, BatchSize = 10, Horizon = 20, Damping = 0.05f, UnitsPerBlock = block, Epsilon = epsilon, Propagation = ForwardPropagation.Trajectory };
        var tangent = trajectory with { Propagation = ForwardPropagation.Tangent };
        // Examples in an order that is not the training order, some in the same shared mini-batches.
        int[] units = [.. Enumerable.Range(0, 20), 45, 31, 30];
        var expected = new float[units.Length][];
        var actual = new float[units.Length][];
        new ForwardOnlySimulator(problem, trajectory).Simulate(units, (u, r) => expected[u] = r);
        new ForwardOnlySimulator(problem, tangent).Simulate(units, (u, r) => actual[u] = r);
        double worst = 0;
        for (int u = 0; u < units.Length; u++)
        {
            Assert.True(Norm(expected[u]) > 1e-2, $"unit {u}: degenerate response");
            worst = Math.Max(worst, RelativeError(actual[u], expected[u]));
        }

        Assert.True(worst < tolerance, $"worst relative error tangent vs two-trajectory: {worst:G3}");
    }

    private static IAttributionMethod Create(string spec)
    {
        var (name, options) = MethodFactory.ParseSpec(spec);
        return MethodFactory.Create(name, options);
    }

    [Fact]
    public void Tangent_is_refused_where_it_cannot_run()
    {
        var layout = new MlpLayout([12, 10, 6, 4]);
        var theta = KernelTests.RandomTheta(layout, 41);
        var (x, y) = KernelTests.RandomData(layout, 60, 42);
        var generic = new AttributionProblem(() => new Mlp(layout), theta, ModelBatch.Classification(x, y));
        var tangent = new ForwardOnlyOptions { Propagation = ForwardPropagation.Tangent, StepSize = 0.1f };
        var e = Assert.Throws<ArgumentException>(() => new ForwardOnlySimulator(generic, tangent));
        Assert.Contains("needs an MLP", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => (tangent with { TwoTrajectory = false }).Validate());
        var refused = Assert.Throws<MethodOptionException>(() => Create("forward-only:propagation=tangent,eps=1e-2"));
        Assert.Contains("eps", refused.Message, StringComparison.Ordinal);
        Assert.Equal(ForwardPropagation.Tangent, ((ForwardOnlyMethod)Create("forward-only:propagation=tangent")).Options.Propagation);
    }
}
