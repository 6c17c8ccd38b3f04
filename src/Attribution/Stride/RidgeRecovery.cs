using System.Globalization;

namespace Attribution.Attribution.Stride;

/// <summary>Which estimator turns STRIDE's K measurements into per-example scores.</summary>
public enum StrideRecovery
{
    /// <summary>The Lasso (<see cref="LassoRecovery"/>): sparse, for K &lt; n (compressed sensing).</summary>
    Lasso,

    /// <summary>Ridge / damped least squares (<see cref="RidgeRecovery"/>): dense, for a determined or overdetermined design (K ≥ n).</summary>
    Ridge,
}

/// <summary>Options of the ridge recovery (<see cref="RidgeRecovery"/>).</summary>
public sealed record RidgeOptions
{
    /// <summary>
    /// γ in units of d (the diagonal of MᵀM): the penalty is ½·<see cref="Gamma"/>·d·‖w‖². Null = chosen per query by
    /// held-out subsets over <see cref="Grid"/> (<see cref="Folds"/> folds of the K rows, the least summed held-out
    /// squared error wins, then refitted on all rows).
    /// </summary>
    public double? Gamma { get; init; } = 1.0;

    /// <summary>The γ/d values tried by the held-out rule, largest first (warm starts run down the grid).</summary>
    public IReadOnlyList<double> Grid { get; init; } = [10, 3, 1, 0.3, 0.1, 0.03];

    /// <summary>Folds over the K rows for the held-out rule.</summary>
    public int Folds { get; init; } = 5;

    /// <summary>Seed of the row-to-fold assignment (shared by every query).</summary>
    public ulong FoldSeed { get; init; } = 0x5EED;

    /// <summary>Conjugate gradients stop when ‖residual‖ ≤ this fraction of ‖right-hand side‖.</summary>
    public double Tolerance { get; init; } = 1e-4;

    /// <summary>Cap on conjugate-gradient iterations per solve.</summary>
    public int MaxIterations { get; init; } = 500;

    /// <summary>Throws with the offending option when a value is out of range.</summary>
    public void Validate()
    {
        if (Gamma is { } g && !(g > 0 && double.IsFinite(g)))
        {
            throw new ArgumentException($"RidgeOptions: gamma (γ/d) must be a finite number > 0 or cv; got {g.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (Gamma is null && (Grid.Count == 0 || Grid.Any(v => !(v > 0 && double.IsFinite(v))) || Folds < 2))
        {
            throw new ArgumentException($"RidgeOptions: gamma=cv needs a non-empty grid of finite values > 0 and folds ≥ 2; got {Grid.Count} values, folds = {Folds}.");
        }

        if (!(Tolerance > 0) || MaxIterations < 1)
        {
            throw new ArgumentException($"RidgeOptions: tolerance must be > 0 and max-iterations ≥ 1; got {Tolerance}, {MaxIterations}.");
        }
    }
}

/// <summary>
/// STRIDE's recovery for K ≥ n: ridge regression of a query's K measurements y on the design's 0/1 membership matrix M,
/// <c>min_{w,b} ½‖y − b − M·w‖² + ½γ‖w‖²</c>, solved by conjugate gradients on the normal equations
/// <c>(M_cᵀM_c + γI) w = M_cᵀ(y − ȳ)</c> (M_c: M with its columns centred over the rows, never formed: M_c·v is M·v less its
/// mean, and M_cᵀu = Mᵀu for a centred u). One iteration costs O(n·d + K). γ = <see cref="RidgeOptions.Gamma"/>·d, or
/// chosen by held-out subsets. For K &lt; n the Lasso is the method's estimator; ridge is the least-squares one, and as
/// γ → ∞ its scores become Mᵀ(y − ȳ) (the dense tie-break's direction).
/// </summary>
public sealed class RidgeRecovery
{
    private readonly SubsetDesign _design;
    private readonly RidgeOptions _options;
    private readonly int[] _fold;

    /// <summary>Recovery over <paramref name="design"/> with <paramref name="options"/> (defaults when null).</summary>
    public RidgeRecovery(SubsetDesign design, RidgeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(design);
        _design = design;
        _options = options ?? new RidgeOptions();
        _options.Validate();
        _fold = [];
        if (_options.Gamma is null)
        {
            if (_options.Folds > design.Subsets)
            {
                throw new ArgumentException($"RidgeRecovery: {_options.Folds} folds need at least as many subsets; the design has K = {design.Subsets}.");
            }

            int[] perm = new Engine.Rng(_options.FoldSeed).Permutation(design.Subsets);
            _fold = new int[design.Subsets];
            for (int t = 0; t < perm.Length; t++)
            {
                _fold[perm[t]] = t % _options.Folds;
            }
        }
    }

    /// <summary>
    /// One query's scores ŵ [n] from its K measurements (positive = helpful, like the Lasso's) and the γ/d they were
    /// solved at (the fixed one, or the held-out rule's choice).
    /// </summary>
    public (double[] Weights, double Gamma) Recover(ReadOnlySpan<float> measurements)
    {
        int kk = _design.Subsets, n = _design.Examples;
        if (measurements.Length != kk)
        {
            throw new ArgumentException($"RidgeRecovery: got {measurements.Length} measurements; the design has K = {kk} subsets (one measurement per subset).");
        }

        var y = new double[kk];
        for (int k = 0; k < kk; k++)
        {
            y[k] = measurements[k];
            if (!double.IsFinite(y[k]))
            {
                throw new ArgumentException($"RidgeRecovery: measurement {k} is {y[k]}; every subset measurement must be finite.");
            }
        }

        var w = new double[n];
        if (_options.Gamma is { } fixedGamma)
        {
            Solve(y, null, fixedGamma * _design.Degree, w);
            return (w, fixedGamma);
        }

        // Held-out subsets: every fold walks the grid (largest γ first, warm-started), the summed held-out error picks γ.
        var grid = _options.Grid.OrderByDescending(v => v).ToArray();
        var error = new double[grid.Length];
        var keep = new bool[kk];
        var wf = new double[n];
        for (int f = 0; f < _options.Folds; f++)
        {
            for (int k = 0; k < kk; k++)
            {
                keep[k] = _fold[k] != f;
            }

            Array.Clear(wf);
            for (int g = 0; g < grid.Length; g++)
            {
                Solve(y, keep, grid[g] * _design.Degree, wf);
                error[g] += HeldOutError(y, keep, wf);
            }
        }

        int best = 0;
        for (int g = 1; g < grid.Length; g++)
        {
            best = error[g] < error[best] ? g : best;
        }

        for (int g = 0; g <= best; g++)
        {
            Solve(y, null, grid[g] * _design.Degree, w);
        }

        return (w, grid[best]);
    }

    /// <summary>
    /// Solves the ridge problem on all rows at an absolute <paramref name="gamma"/> (&gt; 0), from zero; returns ŵ [n].
    /// </summary>
    public double[] Solve(ReadOnlySpan<double> measurements, double gamma)
    {
        if (!(gamma > 0 && double.IsFinite(gamma)))
        {
            throw new ArgumentOutOfRangeException(nameof(gamma), $"RidgeRecovery.Solve: γ must be finite and > 0; got {gamma}.");
        }

        if (measurements.Length != _design.Subsets)
        {
            throw new ArgumentException($"RidgeRecovery: got {measurements.Length} measurements; the design has K = {_design.Subsets} subsets.");
        }

        var w = new double[_design.Examples];
        Solve(measurements.ToArray(), null, gamma, w);
        return w;
    }

    // CG on (M_cᵀM_c + γI) w = M_cᵀ y_c over the kept rows, warm from w.
    private void Solve(double[] y, bool[]? keep, double gamma, double[] w)
    {
        int n = _design.Examples, kk = _design.Subsets;
        var yc = new double[kk];
        Centre(y, keep, yc);
        var b = new double[n];
        Adjoint(yc, b);
        var r = new double[n];
        var p = new double[n];
        var ap = new double[n];
        var rows = new double[kk];
        Apply(w, keep, gamma, rows, ap);
        double rr = 0, bb = 0;
        for (int j = 0; j < n; j++)
        {
            r[j] = b[j] - ap[j];
            p[j] = r[j];
            rr += r[j] * r[j];
            bb += b[j] * b[j];
        }

        double stop = _options.Tolerance * _options.Tolerance * bb;
        for (int it = 0; it < _options.MaxIterations && rr > stop; it++)
        {
            Apply(p, keep, gamma, rows, ap);
            double pap = 0;
            for (int j = 0; j < n; j++)
            {
                pap += p[j] * ap[j];
            }

            double alpha = rr / pap;
            double next = 0;
            for (int j = 0; j < n; j++)
            {
                w[j] += alpha * p[j];
                r[j] -= alpha * ap[j];
                next += r[j] * r[j];
            }

            double beta = next / rr;
            rr = next;
            for (int j = 0; j < n; j++)
            {
                p[j] = r[j] + (beta * p[j]);
            }
        }
    }

    // destination = M_cᵀ M_c v + γ v over the kept rows (rows: scratch [K]).
    private void Apply(double[] v, bool[]? keep, double gamma, double[] rows, double[] destination)
    {
        Array.Clear(rows);
        for (int j = 0; j < v.Length; j++)
        {
            double vj = v[j];
            if (vj != 0)
            {
                foreach (int k in _design.SubsetsOf(j))
                {
                    rows[k] += vj;
                }
            }
        }

        Centre(rows, keep, rows);
        Adjoint(rows, destination);
        for (int j = 0; j < v.Length; j++)
        {
            destination[j] += gamma * v[j];
        }
    }

    // destination = source less its mean over the kept rows (dropped rows set to 0).
    private static void Centre(double[] source, bool[]? keep, double[] destination)
    {
        double sum = 0;
        int count = 0;
        for (int k = 0; k < source.Length; k++)
        {
            if (keep is null || keep[k])
            {
                sum += source[k];
                count++;
            }
        }

        double mean = count > 0 ? sum / count : 0;
        for (int k = 0; k < source.Length; k++)
        {
            destination[k] = keep is null || keep[k] ? source[k] - mean : 0;
        }
    }

    // destination = Mᵀu (u is zero on dropped rows, so this is the adjoint over the kept rows).
    private void Adjoint(double[] u, double[] destination)
    {
        for (int j = 0; j < destination.Length; j++)
        {
            double s = 0;
            foreach (int k in _design.SubsetsOf(j))
            {
                s += u[k];
            }

            destination[j] = s;
        }
    }

    // Squared error on the dropped rows of b + M·w, b = mean over the kept rows of (y − M·w).
    private double HeldOutError(double[] y, bool[] keep, double[] w)
    {
        var pred = new double[y.Length];
        for (int j = 0; j < w.Length; j++)
        {
            foreach (int k in _design.SubsetsOf(j))
            {
                pred[k] += w[j];
            }
        }

        double sum = 0;
        int count = 0;
        for (int k = 0; k < y.Length; k++)
        {
            if (keep[k])
            {
                sum += y[k] - pred[k];
                count++;
            }
        }

        double b = sum / count, error = 0;
        for (int k = 0; k < y.Length; k++)
        {
            if (!keep[k])
            {
                double e = y[k] - b - pred[k];
                error += e * e;
            }
        }

        return error;
    }
}
