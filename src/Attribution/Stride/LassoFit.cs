namespace Attribution.Attribution.Stride;

/// <summary>One query's recovered per-example influence (shared/docs/stride.md §6) and how λ was reached.</summary>
public sealed class LassoFit
{
    internal LassoFit(double[] weights, double intercept, double lambda, double lambdaMax, int sweeps, double[] pathLambdas, double[]? heldOutError)
    {
        Weights = weights;
        Intercept = intercept;
        Lambda = lambda;
        LambdaMax = lambdaMax;
        Sweeps = sweeps;
        PathLambdas = pathLambdas;
        HeldOutError = heldOutError;
        foreach (double w in weights)
        {
            NonZeros += w != 0 ? 1 : 0;
        }
    }

    /// <summary>ŵ [n]: positive = training on the example lowers the query's loss (helpfulness convention).</summary>
    public double[] Weights { get; }

    /// <summary>Fitted intercept b of y ≈ b + M·w (0 without <see cref="LassoOptions.FitIntercept"/>).</summary>
    public double Intercept { get; }

    /// <summary>The λ of this solution.</summary>
    public double Lambda { get; }

    /// <summary>λ_max = max_j |c_jᵀ y_c| / ω_j: the smallest λ whose solution is all zero.</summary>
    public double LambdaMax { get; }

    /// <summary>Number of non-zero scores (at most K for a Lasso solution in general position).</summary>
    public int NonZeros { get; }

    /// <summary>Coordinate-descent sweeps spent on the final (all-rows) path, counting active-set sweeps.</summary>
    public int Sweeps { get; }

    /// <summary>The λ values of the path, descending (the chosen one included).</summary>
    public double[] PathLambdas { get; }

    /// <summary>Summed held-out squared error per path λ (cross-validation only, NaN past the early stop; null otherwise).</summary>
    public double[]? HeldOutError { get; }
}
