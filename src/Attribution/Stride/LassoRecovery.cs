namespace Attribution.Attribution.Stride;

/// <summary>
/// STRIDE's sparse recovery (shared/docs/stride.md §6): turns a query's K subset measurements y into per-example
/// scores by the Lasso  min_{w,b} ½‖y − b − M·w‖² + λ Σ_j ω_j |w_j|  over the design's 0/1 membership matrix M.
/// Cyclic coordinate descent with warm starts down a geometric path from λ_max, sequential strong-rule screening and a
/// full KKT check at every λ; λ is picked by <see cref="LassoOptions.Rule"/> (default: held-out subsets).
/// </summary>
/// <remarks>
/// The intercept is handled by centring y and the columns of M over the rows in use, without forming the dense centred
/// matrix: the residual is kept as a sparse part plus one shared shift, and because the centred residual sums to zero,
/// c_jᵀr is a sum over example j's d subsets. Each coordinate update therefore costs O(d) and a full sweep O(n·d).
/// Optional per-example penalty factors ω_j (a prior: small ω favours an example, +∞ excludes it) and a
/// non-negativity constraint. Arithmetic in double; K is small, so measurements and residuals stay in cache.
/// </remarks>
public sealed class LassoRecovery
{
    private readonly SubsetDesign _design;
    private readonly LassoOptions _options;
    private readonly int[] _fold; // [K] fold of each row (cross-validation only)
    private readonly int[][] _foldCounts; // [folds][n] training-row count of each column with that fold held out

    /// <summary>Recovery over <paramref name="design"/> with <paramref name="options"/> (defaults when null).</summary>
    public LassoRecovery(SubsetDesign design, LassoOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(design);
        _design = design;
        _options = options ?? new LassoOptions();
        _options.Validate();
        _fold = [];
        _foldCounts = [];
        if (_options.Rule == LambdaRule.CrossValidation)
        {
            int folds = _options.Folds;
            if (folds > design.Subsets)
            {
                throw new ArgumentException($"LassoRecovery: {folds} folds need at least as many subsets; the design has K = {design.Subsets}.");
            }

            // Balanced folds over a seeded permutation of the rows, the same for every query.
            int[] perm = new Engine.Rng(_options.FoldSeed).Permutation(design.Subsets);
            _fold = new int[design.Subsets];
            for (int t = 0; t < perm.Length; t++)
            {
                _fold[perm[t]] = t % folds;
            }

            _foldCounts = new int[folds][];
            for (int f = 0; f < folds; f++)
            {
                var counts = new int[design.Examples];
                for (int j = 0; j < design.Examples; j++)
                {
                    foreach (int k in design.SubsetsOf(j))
                    {
                        counts[j] += _fold[k] != f ? 1 : 0;
                    }
                }

                _foldCounts[f] = counts;
            }
        }
    }

    /// <summary>The design the measurements index.</summary>
    public SubsetDesign Design => _design;

    /// <summary>
    /// Recovers one query's scores from its K measurements, choosing λ by the configured rule.
    /// <paramref name="penaltyFactors"/> (optional, [n], each &gt; 0, +∞ allowed) scale λ per example.
    /// </summary>
    public LassoFit Recover(ReadOnlySpan<float> measurements, ReadOnlySpan<double> penaltyFactors = default)
    {
        double[] y = ToDouble(measurements);
        double[] omega = Factors(penaltyFactors);
        var full = new PathState(_design, _options, null, null, y, omega);
        double lambdaMax = full.LambdaMax();
        double[] path = Path(lambdaMax);
        if (lambdaMax <= 0)
        {
            return full.Result(0, lambdaMax, [0], null);
        }

        if (_options.Rule == LambdaRule.FixedFraction)
        {
            return SolveTo(full, path, _options.FixedFraction * lambdaMax, lambdaMax);
        }

        // All folds advance down the path together so the walk can stop once the held-out error has not improved for
        // CvPatience consecutive λ values: the small-λ end, where many coordinates are active, is the costly part.
        var states = new PathState[_options.Folds];
        for (int f = 0; f < states.Length; f++)
        {
            var keep = new bool[_design.Subsets];
            for (int k = 0; k < keep.Length; k++)
            {
                keep[k] = _fold[k] != f;
            }

            states[f] = new PathState(_design, _options, keep, _foldCounts[f], y, omega);
        }

        var heldOut = new double[path.Length];
        heldOut.AsSpan().Fill(double.NaN);
        int best = 0;
        for (int l = 0; l < path.Length && l - best <= _options.CvPatience; l++)
        {
            double error = 0;
            foreach (var state in states)
            {
                state.SolveAt(path[l], path[Math.Max(l - 1, 0)]);
                error += state.HeldOutError();
            }

            heldOut[l] = error;
            if (error < heldOut[best])
            {
                best = l;
            }
        }

        double prev = path[0];
        for (int l = 0; l <= best; l++)
        {
            full.SolveAt(path[l], prev);
            prev = path[l];
        }

        return full.Result(path[best], lambdaMax, path[..(best + 1)], heldOut);
    }

    /// <summary>
    /// The Lasso solution at a given <paramref name="lambda"/> on all K rows, reached by warm starts down the path from
    /// λ_max (the path values above <paramref name="lambda"/>, then <paramref name="lambda"/> itself).
    /// </summary>
    public LassoFit Solve(ReadOnlySpan<double> measurements, double lambda, ReadOnlySpan<double> penaltyFactors = default)
    {
        if (!(lambda >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(lambda), $"LassoRecovery.Solve: λ must be ≥ 0; got {lambda}.");
        }

        double[] y = Checked(measurements.ToArray());
        var full = new PathState(_design, _options, null, null, y, Factors(penaltyFactors));
        double lambdaMax = full.LambdaMax();
        return SolveTo(full, Path(lambdaMax), lambda, lambdaMax);
    }

    /// <summary>λ_max for these measurements: max_j |c_jᵀ y_c| / ω_j (max_j c_jᵀ y_c / ω_j when non-negative).</summary>
    public double LambdaMax(ReadOnlySpan<double> measurements, ReadOnlySpan<double> penaltyFactors = default) =>
        new PathState(_design, _options, null, null, Checked(measurements.ToArray()), Factors(penaltyFactors)).LambdaMax();

    /// <summary>
    /// Recovers many queries: <paramref name="measurements"/> is [queries, K] row-major, <paramref name="scores"/>
    /// [queries, n]. Queries are independent and run in parallel.
    /// </summary>
    public void RecoverBatch(ReadOnlySpan<float> measurements, int queries, Span<float> scores)
    {
        int kk = _design.Subsets, n = _design.Examples;
        if (queries < 0 || measurements.Length != (long)queries * kk || scores.Length != (long)queries * n)
        {
            throw new ArgumentException(
                $"LassoRecovery.RecoverBatch: {queries} queries need {queries}·K = {(long)queries * kk} measurements and {(long)queries * n} scores; got {measurements.Length} and {scores.Length}.");
        }

        float[] ys = measurements.ToArray();
        var results = new double[queries][];
        Parallel.For(0, queries, q => results[q] = Recover(ys.AsSpan(q * kk, kk)).Weights);
        for (int q = 0; q < queries; q++)
        {
            var row = scores.Slice(q * n, n);
            for (int j = 0; j < n; j++)
            {
                row[j] = (float)results[q][j];
            }
        }
    }

    private LassoFit SolveTo(PathState state, double[] path, double lambda, double lambdaMax)
    {
        var used = new List<double>();
        double previous = lambdaMax;
        foreach (double l in path)
        {
            if (l <= lambda)
            {
                break;
            }

            state.SolveAt(l, previous);
            used.Add(l);
            previous = l;
        }

        state.SolveAt(lambda, previous);
        used.Add(lambda);
        return state.Result(lambda, lambdaMax, [.. used], null);
    }

    private double[] Path(double lambdaMax)
    {
        int length = _options.PathLength;
        var path = new double[length];
        for (int l = 0; l < length; l++)
        {
            path[l] = length == 1 ? lambdaMax : lambdaMax * Math.Pow(_options.PathMinRatio, (double)l / (length - 1));
        }

        return path;
    }

    private double[] ToDouble(ReadOnlySpan<float> measurements)
    {
        var y = new double[measurements.Length];
        for (int k = 0; k < y.Length; k++)
        {
            y[k] = measurements[k];
        }

        return Checked(y);
    }

    private double[] Checked(double[] y)
    {
        if (y.Length != _design.Subsets)
        {
            throw new ArgumentException($"LassoRecovery: got {y.Length} measurements; the design has K = {_design.Subsets} subsets (one measurement per subset).");
        }

        for (int k = 0; k < y.Length; k++)
        {
            if (!double.IsFinite(y[k]))
            {
                throw new ArgumentException($"LassoRecovery: measurement {k} is {y[k]}; every subset measurement must be finite.");
            }
        }

        return y;
    }

    private double[] Factors(ReadOnlySpan<double> penaltyFactors)
    {
        var omega = new double[_design.Examples];
        if (penaltyFactors.IsEmpty)
        {
            omega.AsSpan().Fill(1.0);
            return omega;
        }

        if (penaltyFactors.Length != omega.Length)
        {
            throw new ArgumentException($"LassoRecovery: {penaltyFactors.Length} penalty factors for n = {omega.Length} examples.");
        }

        for (int j = 0; j < omega.Length; j++)
        {
            if (!(penaltyFactors[j] > 0))
            {
                throw new ArgumentException($"LassoRecovery: penalty factor {j} is {penaltyFactors[j]}; factors must be > 0 (+∞ excludes the example).");
            }

            omega[j] = penaltyFactors[j];
        }

        return omega;
    }

    /// <summary>Coordinate-descent state on one set of rows (all of them, or the training rows of one fold).</summary>
    private sealed class PathState
    {
        private readonly SubsetDesign _design;
        private readonly LassoOptions _options;
        private readonly bool[]? _keep; // null = all rows
        private readonly int[]? _counts; // m_j: kept rows of column j (null = d for all)
        private readonly double[] _y;
        private readonly double[] _omega;
        private readonly double[] _normSq;
        private readonly double[] _x;
        private readonly double[] _r; // residual on kept rows = _r[k] + _shift
        private readonly double[] _g; // c_jᵀ r from the last full pass
        private readonly bool[] _inSet;
        private readonly List<int> _set = [];
        private readonly double _yMean;
        private readonly double _rows;
        private readonly double _stop;
        private double _shift;
        private int _sweeps;

        public PathState(SubsetDesign design, LassoOptions options, bool[]? keep, int[]? counts, double[] y, double[] omega)
        {
            _design = design;
            _options = options;
            _keep = keep;
            _counts = counts;
            _y = y;
            _omega = omega;
            int n = design.Examples, kk = design.Subsets;
            int rows = 0;
            double sum = 0;
            for (int k = 0; k < kk; k++)
            {
                if (Kept(k))
                {
                    rows++;
                    sum += y[k];
                }
            }

            _rows = rows;
            _yMean = options.FitIntercept ? sum / rows : 0;
            _r = new double[kk];
            double meanSq = 0;
            for (int k = 0; k < kk; k++)
            {
                if (Kept(k))
                {
                    _r[k] = y[k] - _yMean;
                    meanSq += _r[k] * _r[k];
                }
            }

            _stop = options.Tolerance * Math.Max(meanSq / rows, double.Epsilon);
            _normSq = new double[n];
            for (int j = 0; j < n; j++)
            {
                double m = Count(j);
                _normSq[j] = options.FitIntercept ? m - (m * m / rows) : m;
            }

            _x = new double[n];
            _g = new double[n];
            _inSet = new bool[n];
            FullGradient();
        }

        public double LambdaMax()
        {
            double max = 0;
            for (int j = 0; j < _x.Length; j++)
            {
                if (_normSq[j] <= 0 || double.IsPositiveInfinity(_omega[j]))
                {
                    continue;
                }

                double g = _options.Nonnegative ? _g[j] : Math.Abs(_g[j]);
                max = Math.Max(max, g / _omega[j]);
            }

            return max;
        }

        /// <summary>Solves at <paramref name="lambda"/>, warm from the current point, screening with the strong rule
        /// from <paramref name="previous"/>; returns when the KKT conditions hold on every coordinate.</summary>
        public void SolveAt(double lambda, double previous)
        {
            double strong = (2 * lambda) - previous;
            for (int j = 0; j < _x.Length; j++)
            {
                if (!_inSet[j] && Eligible(j) && Violates(j, strong))
                {
                    Add(j);
                }
            }

            while (true)
            {
                for (int sweep = 0; sweep < _options.MaxSweeps; sweep++)
                {
                    _sweeps++;
                    if (Sweep(lambda) < _stop)
                    {
                        break;
                    }
                }

                FullGradient();
                bool added = false;
                for (int j = 0; j < _x.Length; j++)
                {
                    if (!_inSet[j] && Eligible(j) && Violates(j, lambda))
                    {
                        Add(j);
                        added = true;
                    }
                }

                if (!added)
                {
                    return;
                }
            }
        }

        public double HeldOutError()
        {
            // Prediction on held-out rows: b + Σ_j x_j·M[k, j], with b = ȳ_train − Σ_j x_j m_j / K'.
            double b = _yMean;
            if (_options.FitIntercept)
            {
                foreach (int j in _set)
                {
                    b -= _x[j] * Count(j) / _rows;
                }
            }

            var pred = new double[_y.Length];
            foreach (int j in _set)
            {
                double xj = _x[j];
                if (xj != 0)
                {
                    foreach (int k in _design.SubsetsOf(j))
                    {
                        pred[k] += xj;
                    }
                }
            }

            double error = 0;
            for (int k = 0; k < _y.Length; k++)
            {
                if (!Kept(k))
                {
                    double e = _y[k] - b - pred[k];
                    error += e * e;
                }
            }

            return error;
        }

        public LassoFit Result(double lambda, double lambdaMax, double[] path, double[]? heldOut)
        {
            double b = _yMean;
            if (_options.FitIntercept)
            {
                foreach (int j in _set)
                {
                    b -= _x[j] * Count(j) / _rows;
                }
            }

            return new LassoFit((double[])_x.Clone(), b, lambda, lambdaMax, _sweeps, path, heldOut);
        }

        private double Sweep(double lambda)
        {
            double maxDecrease = 0;
            bool nonneg = _options.Nonnegative;
            foreach (int j in _set)
            {
                double nj = _normSq[j];
                double g = Gradient(j);
                double z = g + (nj * _x[j]);
                double threshold = lambda * _omega[j];
                double xn = z > threshold ? (z - threshold) / nj : (!nonneg && z < -threshold ? (z + threshold) / nj : 0);
                double delta = xn - _x[j];
                if (delta == 0)
                {
                    continue;
                }

                _x[j] = xn;
                foreach (int k in _design.SubsetsOf(j))
                {
                    if (Kept(k))
                    {
                        _r[k] -= delta;
                    }
                }

                if (_options.FitIntercept)
                {
                    _shift += delta * Count(j) / _rows;
                }

                maxDecrease = Math.Max(maxDecrease, nj * delta * delta);
            }

            return maxDecrease;
        }

        private double Gradient(int j)
        {
            double s = 0;
            int m = 0;
            foreach (int k in _design.SubsetsOf(j))
            {
                if (Kept(k))
                {
                    s += _r[k];
                    m++;
                }
            }

            return s + (m * _shift);
        }

        private void FullGradient()
        {
            for (int j = 0; j < _x.Length; j++)
            {
                _g[j] = Gradient(j);
            }
        }

        private bool Violates(int j, double lambda)
        {
            double g = _options.Nonnegative ? _g[j] : Math.Abs(_g[j]);
            return g > lambda * _omega[j];
        }

        private bool Eligible(int j) => _normSq[j] > 0 && !double.IsPositiveInfinity(_omega[j]);

        private void Add(int j)
        {
            _inSet[j] = true;
            _set.Add(j);
        }

        private bool Kept(int k) => _keep is null || _keep[k];

        private int Count(int j) => _counts is null ? _design.Degree : _counts[j];
    }
}
