namespace Attribution.Attribution.Evaluation;

/// <summary>
/// Rank and linear correlations used by every evaluation protocol. Both return <see cref="double.NaN"/> when the
/// correlation is undefined (fewer than two points, or either side constant), so callers can skip and count such queries.
/// </summary>
public static class Correlation
{
    /// <summary>Pearson product-moment correlation, accumulated in double.</summary>
    public static double Pearson(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length != y.Length)
        {
            throw new ArgumentException($"Pearson needs equal lengths; got {x.Length} and {y.Length}.", nameof(y));
        }

        int n = x.Length;
        if (n < 2)
        {
            return double.NaN;
        }

        double mx = 0, my = 0;
        for (int i = 0; i < n; i++)
        {
            mx += x[i];
            my += y[i];
        }

        mx /= n;
        my /= n;
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++)
        {
            double dx = x[i] - mx, dy = y[i] - my;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }

        // A relative threshold: sums of floats that are "equal" can differ in the last bits after centring.
        if (sxx <= 1e-24 * SumSquares(x) || syy <= 1e-24 * SumSquares(y))
        {
            return double.NaN;
        }

        return Math.Clamp(sxy / Math.Sqrt(sxx * syy), -1.0, 1.0);
    }

    /// <summary>Spearman rank correlation: Pearson of the ranks, ties given their average rank (the SciPy definition).</summary>
    public static double Spearman(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length != y.Length)
        {
            throw new ArgumentException($"Spearman needs equal lengths; got {x.Length} and {y.Length}.", nameof(y));
        }

        var rx = new double[x.Length];
        var ry = new double[y.Length];
        Ranks(x, rx);
        Ranks(y, ry);
        return Pearson(rx, ry);
    }

    /// <summary>1-based ranks with ties averaged ("fractional ranking"). NaN inputs are rejected.</summary>
    public static void Ranks(ReadOnlySpan<double> values, Span<double> ranks)
    {
        if (ranks.Length != values.Length)
        {
            throw new ArgumentException($"ranks has {ranks.Length} slots for {values.Length} values.", nameof(ranks));
        }

        int n = values.Length;
        var order = new int[n];
        var keys = new double[n];
        for (int i = 0; i < n; i++)
        {
            if (double.IsNaN(values[i]))
            {
                throw new ArgumentException($"value {i} is NaN; ranks are undefined.", nameof(values));
            }

            order[i] = i;
            keys[i] = values[i];
        }

        Array.Sort(keys, order);
        int start = 0;
        while (start < n)
        {
            int end = start + 1;
            while (end < n && keys[end] == keys[start])
            {
                end++;
            }

            double rank = (start + end + 1) / 2.0; // average of 1-based ranks start+1 .. end
            for (int k = start; k < end; k++)
            {
                ranks[order[k]] = rank;
            }

            start = end;
        }
    }

    private static double SumSquares(ReadOnlySpan<double> v)
    {
        double s = 0;
        foreach (var a in v)
        {
            s += a * a;
        }

        return s;
    }
}
