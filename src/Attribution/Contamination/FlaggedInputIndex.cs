namespace Attribution.Attribution.Contamination;

/// <summary>
/// How close a query's input is to the nearest flagged training item's input (pure data).
/// </summary>
/// <param name="Index">Position of the nearest flagged item in its <see cref="FlaggedInputIndex"/> (−1 when none was searched).</param>
/// <param name="DocumentId">Its training example id (−1 when none).</param>
/// <param name="SourceId">Its source (−1 when none or unknown).</param>
/// <param name="Distance">Relative distance ‖query − item‖ ÷ ‖item‖ (+∞ when none was searched).</param>
/// <param name="Tolerance">The relative distance at which <see cref="Match"/> reaches 0.</param>
public sealed record InputMatch(int Index, long DocumentId, int SourceId, double Distance, double Tolerance)
{
    /// <summary>Not searched: a text query, or a policy without flagged inputs.</summary>
    public static InputMatch None { get; } = new(-1, -1, -1, double.PositiveInfinity, FlaggedInputIndex.DefaultTolerance);

    /// <summary>
    /// The policy's feature <c>input_match</c>: 1 − distance ÷ tolerance, clamped to [0, 1]: 1 for an exact copy, falling
    /// linearly to 0 at <see cref="Tolerance"/> (a near-exact copy: re-encoded, lightly noised or shifted by a few grey levels).
    /// </summary>
    public double Match => Math.Clamp(1 - (Distance / Tolerance), 0, 1);
}

/// <summary>
/// The inputs of the training items monitoring has flagged (a leaked benchmark, a takedown), searched for the one
/// nearest a query: for a model whose queries are not text, the analogue of the exact-span index (an answer to a copy of
/// a flagged training item leans on that item). Brute force over the flagged items (O(items × features) per query: the
/// flagged set is small next to the training set). Immutable, safe to share between threads; pure compute.
/// </summary>
public sealed class FlaggedInputIndex
{
    /// <summary>Relative distance at which the match feature reaches 0 (10 % of the item's norm).</summary>
    public const double DefaultTolerance = 0.1;

    private readonly float[] _inputs;
    private readonly double[] _norms;
    private readonly long[] _ids;
    private readonly int[] _sources;

    /// <summary>Indexes <paramref name="ids"/>.Count items of <paramref name="features"/> values each, row after row.</summary>
    /// <exception cref="ArgumentException">Misaligned lengths, no items, a non-finite value, an all-zero item or a repeated id.</exception>
    public FlaggedInputIndex(ReadOnlySpan<float> inputs, int features, IReadOnlyList<long> ids, IReadOnlyList<int>? sources = null, double tolerance = DefaultTolerance)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentOutOfRangeException.ThrowIfLessThan(features, 1);
        if (ids.Count == 0 || inputs.Length != ids.Count * features || (sources is not null && sources.Count != ids.Count))
        {
            throw new ArgumentException($"{ids.Count} flagged items of {features} features need {ids.Count * features} input values (got {inputs.Length}) and as many sources as ids (got {sources?.Count}); at least one item.", nameof(inputs));
        }

        if (!(tolerance > 0) || !double.IsFinite(tolerance))
        {
            throw new ArgumentException($"The match tolerance is {tolerance}; it must be positive and finite.", nameof(tolerance));
        }

        if (ids.Distinct().Count() != ids.Count)
        {
            throw new ArgumentException("A flagged item id is repeated; each flagged training item must be indexed once.", nameof(ids));
        }

        _inputs = inputs.ToArray();
        _norms = new double[ids.Count];
        for (int i = 0; i < ids.Count; i++)
        {
            double sum = 0;
            foreach (float v in _inputs.AsSpan(i * features, features))
            {
                if (!float.IsFinite(v))
                {
                    throw new ArgumentException($"Flagged item {ids[i]} has a non-finite input value.", nameof(inputs));
                }

                sum += (double)v * v;
            }

            _norms[i] = Math.Sqrt(sum);
            if (!(_norms[i] > 0))
            {
                throw new ArgumentException($"Flagged item {ids[i]} is all zeros: a relative distance to it is undefined.", nameof(inputs));
            }
        }

        Features = features;
        Tolerance = tolerance;
        _ids = [.. ids];
        _sources = sources is null ? [.. Enumerable.Repeat(-1, ids.Count)] : [.. sources];
    }

    /// <summary>Values per input.</summary>
    public int Features { get; }

    /// <summary>Flagged items.</summary>
    public int Count => _ids.Length;

    /// <summary>Relative distance at which <see cref="InputMatch.Match"/> reaches 0.</summary>
    public double Tolerance { get; }

    /// <summary>The flagged items' training example ids, in index order.</summary>
    public IReadOnlyList<long> Ids => _ids;

    /// <summary>The input of flagged item <paramref name="item"/> (0 ≤ item &lt; <see cref="Count"/>).</summary>
    public ReadOnlySpan<float> Input(int item) => _inputs.AsSpan(checked(item * Features), Features);

    /// <summary>The flagged item nearest <paramref name="query"/> (Euclidean, relative to the item's norm); <see cref="InputMatch.None"/> when the query has another width or a non-finite value.</summary>
    public InputMatch Find(ReadOnlySpan<float> query)
    {
        if (query.Length != Features)
        {
            return InputMatch.None;
        }

        int best = -1;
        double bestDistance = double.PositiveInfinity;
        for (int i = 0; i < _ids.Length; i++)
        {
            var row = _inputs.AsSpan(i * Features, Features);
            double sum = 0;
            for (int j = 0; j < row.Length; j++)
            {
                double d = query[j] - row[j];
                sum += d * d;
            }

            double relative = Math.Sqrt(sum) / _norms[i];
            if (relative < bestDistance)
            {
                bestDistance = relative;
                best = i;
            }
        }

        return best < 0 || !double.IsFinite(bestDistance) ? InputMatch.None : new InputMatch(best, _ids[best], _sources[best], bestDistance, Tolerance);
    }
}
