using System.Numerics.Tensors;
using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// The reference readout of forward-only attribution for any model (<see cref="ForwardReadout.FiniteDifference"/>):
/// <c>[f_q(θ* + ε r_u) − f_q(θ* − ε r_u)] / (2ε)</c> for every query and unit of a <see cref="ResponseSet"/>, two
/// forward passes of the model per unit. The JVP readout (<see cref="ResponseSet.JacobianScores"/>) agrees to O(ε²).
/// </summary>
public static class ForwardOnlyReadout
{
    /// <summary>Fills <paramref name="scores"/> [queries, units] with the two-sided difference of the queries' outputs along each unit's response.</summary>
    public static void FiniteDifference(IModel model, ReadOnlySpan<float> theta, QueryBatch queries, ResponseSet set, float epsilon, Span<float> scores, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(set);
        int p = model.ParameterCount, q = queries.Count;
        if (theta.Length != p || set.ParameterCount != p || scores.Length < (long)q * set.Units)
        {
            throw new ArgumentException($"FiniteDifference: θ of {theta.Length}, a set of {set.ParameterCount} parameters and {scores.Length} scores for a model of {p} parameters, {q} queries and {set.Units} units.");
        }

        var r = new float[p];
        var shifted = new float[p];
        var plus = new float[q];
        var minus = new float[q];
        for (int u = 0; u < set.Units; u++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            set.Get(u, r);
            TensorPrimitives.MultiplyAdd(r, epsilon, theta, shifted);
            model.LoadFrom(shifted);
            model.Outputs(queries.Batch, queries.Output, plus);
            TensorPrimitives.MultiplyAdd(r, -epsilon, theta, shifted);
            model.LoadFrom(shifted);
            model.Outputs(queries.Batch, queries.Output, minus);
            for (int j = 0; j < q; j++)
            {
                scores[j * set.Units + u] = (float)(((double)plus[j] - minus[j]) / (2.0 * epsilon));
            }
        }
    }
}
