namespace Attribution.Attribution.Contamination;

/// <summary>
/// Calibrates a <see cref="ContaminationPolicy"/> on a calibration split (never on the queries it is evaluated on):
/// <see cref="Fit"/> fits the logistic weights on leaked and clean calibration queries (L2-regularised, standardised
/// features, Newton's method), then <see cref="Calibrate"/> sets the threshold so that at most the target share of the
/// clean calibration queries alerts.
/// </summary>
public static class ContaminationCalibration
{
    /// <summary>
    /// Default confidence of <see cref="ThresholdForFalseAlertRate"/>: the chosen threshold's false-alert rate on new
    /// clean queries is at most the target with this probability over the draw of the calibration queries.
    /// </summary>
    public const double DefaultConfidence = 0.9;

    /// <summary>
    /// The threshold that holds the false-alert rate on NEW clean queries at most <paramref name="falseAlertRate"/> with
    /// probability <paramref name="confidence"/> over the calibration draw (training-conditional split-conformal). With the
    /// n clean scores sorted from the largest, the threshold is the (k+1)-th largest (an alert when a score is strictly
    /// above it, so at most k calibration scores alert); for a new clean query exchangeable with the calibration ones, that
    /// threshold's false-alert rate is distributed Beta(k+1, n−k), and it exceeds the rate α with probability
    /// P(Binomial(n, α) ≤ k). k is the largest with that probability at most 1 − <paramref name="confidence"/>.
    /// (The plain conformal rule, k+1 = ⌊α(n+1)⌋, bounds the rate only in expectation over calibration draws: with a few
    /// hundred clean queries a single draw's rate lands above α about half the time; that is what made the contamination
    /// table's measured false-alert rate 1.3 %.) When even k = 0 fails, i.e. n is below
    /// <see cref="MinimumCleanQueries"/>, no calibration threshold can promise the rate and this returns the largest clean
    /// score (no calibration query alerts); callers should say so.
    /// </summary>
    /// <exception cref="ArgumentException">No clean scores, a non-finite score, a rate outside [0, 1) or a confidence outside (0, 1).</exception>
    public static double ThresholdForFalseAlertRate(IReadOnlyList<double> cleanScores, double falseAlertRate, double confidence = DefaultConfidence)
    {
        ArgumentNullException.ThrowIfNull(cleanScores);
        if (cleanScores.Count == 0)
        {
            throw new ArgumentException("No clean calibration scores: the threshold for a false-alert rate needs clean queries.", nameof(cleanScores));
        }

        if (cleanScores.Any(s => !double.IsFinite(s)))
        {
            throw new ArgumentException("A clean calibration score is not finite.", nameof(cleanScores));
        }

        var sorted = cleanScores.OrderDescending().ToArray();
        return sorted[AlertsAllowed(sorted.Length, falseAlertRate, confidence)];
    }

    /// <summary>
    /// How many of <paramref name="n"/> clean calibration queries may score above the threshold (the k of
    /// <see cref="ThresholdForFalseAlertRate"/>): the largest k with P(Binomial(n, rate) ≤ k) ≤ 1 − confidence, or 0 when
    /// none is.
    /// </summary>
    /// <exception cref="ArgumentException">n below 1, a rate outside [0, 1) or a confidence outside (0, 1).</exception>
    public static int AlertsAllowed(int n, double falseAlertRate, double confidence = DefaultConfidence)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        if (!(falseAlertRate >= 0 && falseAlertRate < 1))
        {
            throw new ArgumentException($"The target false-alert rate is {falseAlertRate}; it must lie in [0, 1).", nameof(falseAlertRate));
        }

        if (!(confidence > 0 && confidence < 1))
        {
            throw new ArgumentException($"The confidence is {confidence}; it must lie in (0, 1).", nameof(confidence));
        }

        if (falseAlertRate == 0)
        {
            return 0;
        }

        // P(Binomial(n, α) ≤ k), accumulated in log space (n·ln(1 − α) underflows for large n).
        double delta = 1 - confidence, logTerm = n * Math.Log(1 - falseAlertRate), logRatio = Math.Log(falseAlertRate) - Math.Log(1 - falseAlertRate);
        double logCdf = logTerm;
        int k = -1;
        for (int i = 0; i < n; i++)
        {
            if (logCdf > Math.Log(delta))
            {
                break;
            }

            k = i;
            logTerm += Math.Log((double)(n - i) / (i + 1)) + logRatio;
            logCdf = LogAdd(logCdf, logTerm);
        }

        return Math.Max(k, 0);
    }

    /// <summary>
    /// Fewest clean calibration queries for which some threshold holds <paramref name="falseAlertRate"/> with
    /// <paramref name="confidence"/>: (1 − rate)^n ≤ 1 − confidence (230 for 1 % at 0.9).
    /// </summary>
    public static int MinimumCleanQueries(double falseAlertRate, double confidence = DefaultConfidence) =>
        falseAlertRate is > 0 and < 1 && confidence is > 0 and < 1
            ? (int)Math.Ceiling((Math.Log(1 - confidence) / Math.Log(1 - falseAlertRate)) - 1e-9)
            : throw new ArgumentException($"A rate in (0, 1) and a confidence in (0, 1) are needed; got {falseAlertRate} and {confidence}.", nameof(falseAlertRate));

    private static double LogAdd(double a, double b) => a > b ? a + Math.Log(1 + Math.Exp(b - a)) : b + Math.Log(1 + Math.Exp(a - b));

    /// <summary><paramref name="options"/> with the threshold for <paramref name="falseAlertRate"/> on the clean calibration queries' evidence.</summary>
    public static ContaminationPolicyOptions Calibrate(ContaminationPolicyOptions options, IReadOnlyList<(SpanEvidence Span, AttributionEvidence Attribution)> clean, double falseAlertRate)
    {
        ArgumentNullException.ThrowIfNull(clean);
        var policy = new ContaminationPolicy(options);
        var scores = clean.Select(c => policy.Score(c.Span, c.Attribution)).ToArray();
        return options with { Threshold = ThresholdForFalseAlertRate(scores, falseAlertRate) };
    }

    /// <summary>
    /// Fits the weights of the features <paramref name="evidence"/> reads on calibration queries (<paramref name="leaked"/>
    /// true for a leaked item), then picks the threshold for <paramref name="falseAlertRate"/> on the clean ones.
    /// </summary>
    /// <param name="evidence">Evidence of each calibration query.</param>
    /// <param name="leaked">Label of each calibration query.</param>
    /// <param name="kind">Which stages the fitted policy reads.</param>
    /// <param name="falseAlertRate">Target share of clean queries that alert.</param>
    /// <param name="l2">Ridge penalty on the standardised weights (keeps separable data finite).</param>
    /// <exception cref="ArgumentException">Mismatched lengths, or fewer than one leaked and one clean query.</exception>
    public static ContaminationPolicyOptions Fit(IReadOnlyList<(SpanEvidence Span, AttributionEvidence Attribution)> evidence, IReadOnlyList<bool> leaked,
        ContaminationEvidenceKind kind, double falseAlertRate, double l2 = 1e-2)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        ArgumentNullException.ThrowIfNull(leaked);
        var features = evidence.Select(e => ContaminationFeatures.Of(e.Span, e.Attribution)).ToArray();
        var (weights, bias) = FitLogistic(features, leaked, kind, l2);
        var fitted = new ContaminationPolicyOptions { Evidence = kind, Weights = weights, Bias = bias };
        var clean = evidence.Where((_, i) => !leaked[i]).ToArray();
        return Calibrate(fitted, clean, falseAlertRate);
    }

    /// <summary>
    /// Cross-fitting: for each fold, <see cref="Fit"/> on the queries of the other folds, then the score and threshold of
    /// the fold's own queries under that fit; so no query's score or threshold was chosen with its own label.
    /// </summary>
    /// <returns>Each query's out-of-fold score and the threshold it is compared with (an alert when above).</returns>
    /// <exception cref="ArgumentException">Mismatched lengths, fewer than two folds, or a training part without both classes.</exception>
    public static (double[] Scores, double[] Thresholds) CrossFit(IReadOnlyList<(SpanEvidence Span, AttributionEvidence Attribution)> evidence,
        IReadOnlyList<bool> leaked, IReadOnlyList<int> folds, ContaminationEvidenceKind kind, double falseAlertRate, double l2 = 1e-2)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        ArgumentNullException.ThrowIfNull(leaked);
        ArgumentNullException.ThrowIfNull(folds);
        if (leaked.Count != evidence.Count || folds.Count != evidence.Count)
        {
            throw new ArgumentException($"{evidence.Count} queries need as many labels and folds; got {leaked.Count} and {folds.Count}.", nameof(folds));
        }

        var distinct = folds.Distinct().Order().ToArray();
        if (distinct.Length < 2)
        {
            throw new ArgumentException("Cross-fitting needs at least two folds.", nameof(folds));
        }

        var scores = new double[evidence.Count];
        var thresholds = new double[evidence.Count];
        foreach (int fold in distinct)
        {
            var train = Enumerable.Range(0, evidence.Count).Where(i => folds[i] != fold).ToArray();
            var options = Fit([.. train.Select(i => evidence[i])], [.. train.Select(i => leaked[i])], kind, falseAlertRate, l2);
            var policy = new ContaminationPolicy(options);
            for (int i = 0; i < evidence.Count; i++)
            {
                if (folds[i] == fold)
                {
                    scores[i] = policy.Score(evidence[i].Span, evidence[i].Attribution);
                    thresholds[i] = options.Threshold;
                }
            }
        }

        return (scores, thresholds);
    }

    /// <summary>
    /// L2-regularised logistic regression on the features <paramref name="kind"/> reads (the others get weight 0):
    /// standardised to mean 0 and deviation 1 on these rows, Newton's method, then mapped back to raw-feature weights.
    /// A feature constant on the rows gets weight 0.
    /// </summary>
    internal static (double[] Weights, double Bias) FitLogistic(IReadOnlyList<double[]> features, IReadOnlyList<bool> labels, ContaminationEvidenceKind kind, double l2)
    {
        int n = features.Count, f = ContaminationFeatures.Count;
        if (labels.Count != n)
        {
            throw new ArgumentException($"{n} calibration queries need {n} labels; got {labels.Count}.", nameof(labels));
        }

        if (!labels.Contains(true) || !labels.Contains(false))
        {
            throw new ArgumentException("Fitting the contamination score needs leaked and clean calibration queries (at least one of each).", nameof(labels));
        }

        if (!(l2 > 0) || !double.IsFinite(l2))
        {
            throw new ArgumentException($"The ridge penalty is {l2}; it must be positive and finite.", nameof(l2));
        }

        var used = Enumerable.Range(0, f).Where(j => ContaminationFeatures.Uses(kind, j)).ToList();
        var mean = new double[f];
        var scale = new double[f];
        foreach (int j in used.ToArray())
        {
            mean[j] = features.Average(x => x[j]);
            scale[j] = Math.Sqrt(features.Average(x => (x[j] - mean[j]) * (x[j] - mean[j])));
            if (!(scale[j] > 1e-12))
            {
                used.Remove(j);
            }
        }

        int p = used.Count + 1; // standardised weights, then the intercept
        var w = new double[p];
        var row = new double[p];
        for (int iteration = 0; iteration < 100; iteration++)
        {
            var gradient = new double[p];
            var hessian = new double[p, p];
            for (int i = 0; i < n; i++)
            {
                for (int a = 0; a < used.Count; a++)
                {
                    row[a] = (features[i][used[a]] - mean[used[a]]) / scale[used[a]];
                }

                row[p - 1] = 1;
                double z = 0;
                for (int a = 0; a < p; a++)
                {
                    z += w[a] * row[a];
                }

                double prob = 1 / (1 + Math.Exp(-z)), residual = prob - (labels[i] ? 1 : 0), curvature = Math.Max(prob * (1 - prob), 1e-12);
                for (int a = 0; a < p; a++)
                {
                    gradient[a] += residual * row[a];
                    for (int b = 0; b < p; b++)
                    {
                        hessian[a, b] += curvature * row[a] * row[b];
                    }
                }
            }

            for (int a = 0; a < p - 1; a++)
            {
                gradient[a] += l2 * n * w[a];
                hessian[a, a] += l2 * n;
            }

            hessian[p - 1, p - 1] += 1e-9 * n;
            var step = Solve(hessian, gradient);
            double largest = 0;
            for (int a = 0; a < p; a++)
            {
                w[a] -= step[a];
                largest = Math.Max(largest, Math.Abs(step[a]));
            }

            if (largest < 1e-10)
            {
                break;
            }
        }

        var weights = new double[f];
        double bias = w[p - 1];
        for (int a = 0; a < used.Count; a++)
        {
            int j = used[a];
            weights[j] = w[a] / scale[j];
            bias -= w[a] * mean[j] / scale[j];
        }

        return (weights, bias);
    }

    // Gaussian elimination with partial pivoting on a small dense system (the Hessian is positive definite).
    private static double[] Solve(double[,] matrix, double[] rhs)
    {
        int n = rhs.Length;
        var a = (double[,])matrix.Clone();
        var b = (double[])rhs.Clone();
        for (int c = 0; c < n; c++)
        {
            int pivot = c;
            for (int r = c + 1; r < n; r++)
            {
                if (Math.Abs(a[r, c]) > Math.Abs(a[pivot, c]))
                {
                    pivot = r;
                }
            }

            for (int k = 0; k < n; k++)
            {
                (a[c, k], a[pivot, k]) = (a[pivot, k], a[c, k]);
            }

            (b[c], b[pivot]) = (b[pivot], b[c]);
            for (int r = c + 1; r < n; r++)
            {
                double factor = a[r, c] / a[c, c];
                for (int k = c; k < n; k++)
                {
                    a[r, k] -= factor * a[c, k];
                }

                b[r] -= factor * b[c];
            }
        }

        var x = new double[n];
        for (int r = n - 1; r >= 0; r--)
        {
            double s = b[r];
            for (int k = r + 1; k < n; k++)
            {
                s -= a[r, k] * x[k];
            }

            x[r] = s / a[r, r];
        }

        return x;
    }
}

/// <summary>Detection metrics of alert scores against leaked/clean labels.</summary>
public static class AlertMetrics
{
    /// <summary>
    /// Area under the ROC curve: the probability that a random leaked query scores above a random clean one (ties count
    /// half); NaN when either class is empty.
    /// </summary>
    public static double Auroc(IReadOnlyList<double> scores, IReadOnlyList<bool> leaked)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(leaked);
        if (scores.Count != leaked.Count)
        {
            throw new ArgumentException($"{scores.Count} scores and {leaked.Count} labels.", nameof(leaked));
        }

        // Mann–Whitney U from mid-ranks.
        var order = Enumerable.Range(0, scores.Count).OrderBy(i => scores[i]).ToArray();
        var rank = new double[order.Length];
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j + 1 < order.Length && scores[order[j + 1]] == scores[order[i]])
            {
                j++;
            }

            for (int k = i; k <= j; k++)
            {
                rank[order[k]] = ((i + j) / 2.0) + 1;
            }

            i = j + 1;
        }

        long positives = leaked.Count(l => l), negatives = leaked.Count - positives;
        if (positives == 0 || negatives == 0)
        {
            return double.NaN;
        }

        double sum = 0;
        for (int i = 0; i < rank.Length; i++)
        {
            if (leaked[i])
            {
                sum += rank[i];
            }
        }

        return (sum - (positives * (positives + 1) / 2.0)) / (positives * (double)negatives);
    }

    /// <summary>Share of the queries of one class (leaked when <paramref name="ofLeaked"/>) whose score is strictly above <paramref name="threshold"/>; NaN when the class is empty.</summary>
    public static double AlertRate(IReadOnlyList<double> scores, IReadOnlyList<bool> leaked, double threshold, bool ofLeaked)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(leaked);
        int total = 0, above = 0;
        for (int i = 0; i < scores.Count; i++)
        {
            if (leaked[i] == ofLeaked)
            {
                total++;
                above += scores[i] > threshold ? 1 : 0;
            }
        }

        return total == 0 ? double.NaN : (double)above / total;
    }
}
