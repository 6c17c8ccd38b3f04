using Attribution.Engine;

namespace Attribution.Attribution.Stride;

/// <summary>
/// STRIDE's measurement design (shared/docs/stride.md §2): <see cref="Subsets"/> training subsets over
/// <see cref="Examples"/> training examples, each example in exactly <see cref="Degree"/> distinct subsets. The membership
/// matrix <c>M ∈ {0,1}^{K×n}</c> is the adjacency matrix of a left-d-regular bipartite graph; drawn at random it is a
/// good expander with high probability, which is what the ℓ1 recovery guarantee needs.
/// </summary>
/// <remarks>
/// Drawn as a random configuration with balanced right side: the <c>n·d</c> membership slots are dealt out so that every
/// subset has <c>⌊n·d/K⌋</c> or <c>⌈n·d/K⌉</c> members, shuffled, and any example that drew a subset twice has the
/// repeat swapped with a random other slot (a swap that creates no repeat on either side); when d &gt; K/2 the same is
/// done for the K − d subsets each example is left out of. Balance is exact (±1), which
/// keeps subset-level operators trained on equally sized data. Stored sparsely both ways: per example its sorted d
/// subset ids, per subset its sorted members.
/// </remarks>
public sealed class SubsetDesign
{
    private readonly int[] _exampleSubsets; // [n, d], each row sorted
    private readonly int[] _subsetOffsets; // [K + 1]
    private readonly int[] _subsetMembers; // [n·d], each subset's block sorted

    private SubsetDesign(int examples, int subsets, int degree, ulong seed, int[] exampleSubsets)
    {
        Examples = examples;
        Subsets = subsets;
        Degree = degree;
        Seed = seed;
        _exampleSubsets = exampleSubsets;
        _subsetOffsets = new int[subsets + 1];
        foreach (int k in exampleSubsets)
        {
            _subsetOffsets[k + 1]++;
        }

        for (int k = 0; k < subsets; k++)
        {
            _subsetOffsets[k + 1] += _subsetOffsets[k];
        }

        _subsetMembers = new int[exampleSubsets.Length];
        var fill = _subsetOffsets[..^1];
        for (int i = 0; i < examples; i++)
        {
            foreach (int k in SubsetsOf(i))
            {
                _subsetMembers[fill[k]++] = i; // examples visited in order, so each block comes out sorted
            }
        }
    }

    /// <summary>Number of training examples n (columns of M).</summary>
    public int Examples { get; }

    /// <summary>Number of subsets K (rows of M).</summary>
    public int Subsets { get; }

    /// <summary>Subsets per example d (ones per column of M).</summary>
    public int Degree { get; }

    /// <summary>The seed the design was drawn from; the same (n, K, d, seed) always gives the same design.</summary>
    public ulong Seed { get; }

    /// <summary>
    /// Draws a design. Throws when <paramref name="degree"/> is not in [1, <paramref name="subsets"/>] (an example cannot be
    /// in more distinct subsets than exist) or the sizes are not positive.
    /// </summary>
    public static SubsetDesign Create(int examples, int subsets, int degree, ulong seed)
    {
        if (examples < 1 || subsets < 1 || degree < 1 || degree > subsets)
        {
            throw new ArgumentException(
                $"SubsetDesign: need examples ≥ 1, subsets K ≥ 1 and 1 ≤ degree d ≤ K; got n = {examples}, K = {subsets}, d = {degree}.");
        }

        long slots = (long)examples * degree;
        if (slots > Array.MaxLength)
        {
            throw new ArgumentException($"SubsetDesign: n·d = {slots} membership slots exceed the largest array; lower n or d.");
        }

        var rng = new Rng(seed);
        if (2 * degree > subsets)
        {
            // Dense designs: draw which K − d subsets each example is left out of (a sparse design of the same kind, whose
            // balance carries over to the complement) instead of repairing repeats among mostly-full rows.
            int[] left = Draw(examples, subsets, subsets - degree, rng);
            var rows = new int[slots];
            var mark = new bool[subsets];
            int outDegree = subsets - degree;
            for (int i = 0; i < examples; i++)
            {
                Array.Clear(mark);
                foreach (int k in left.AsSpan(i * outDegree, outDegree))
                {
                    mark[k] = true;
                }

                int at = i * degree;
                for (int k = 0; k < subsets; k++)
                {
                    if (!mark[k])
                    {
                        rows[at++] = k;
                    }
                }
            }

            return new SubsetDesign(examples, subsets, degree, seed, rows);
        }

        return new SubsetDesign(examples, subsets, degree, seed, Draw(examples, subsets, degree, rng));
    }

    /// <summary>
    /// A design given as every example's <paramref name="degree"/> subset ids (<paramref name="exampleSubsets"/>, n·d
    /// values, example-major), e.g. shipped in a probe set: the examples may come in any order. Throws when an id is
    /// outside 0..K−1 or repeated within an example.
    /// </summary>
    public static SubsetDesign FromMemberships(int subsets, int degree, ulong seed, int[] exampleSubsets)
    {
        ArgumentNullException.ThrowIfNull(exampleSubsets);
        if (subsets < 1 || degree < 1 || degree > subsets || exampleSubsets.Length == 0 || exampleSubsets.Length % degree != 0)
        {
            throw new ArgumentException($"SubsetDesign: {exampleSubsets.Length} memberships for K = {subsets}, d = {degree}; need a positive multiple of d with 1 ≤ d ≤ K.");
        }

        var mark = new bool[subsets];
        for (int i = 0; i < exampleSubsets.Length / degree; i++)
        {
            var ids = exampleSubsets.AsSpan(i * degree, degree);
            foreach (int k in ids)
            {
                if ((uint)k >= (uint)subsets || mark[k])
                {
                    throw new ArgumentException($"SubsetDesign: example {i}'s subsets [{string.Join(", ", ids.ToArray())}] must be {degree} distinct ids in 0..{subsets - 1}.");
                }

                mark[k] = true;
            }

            foreach (int k in ids)
            {
                mark[k] = false;
            }
        }

        return new SubsetDesign(exampleSubsets.Length / degree, subsets, degree, seed, exampleSubsets);
    }

    private static int[] Draw(int examples, int subsets, int degree, Rng rng)
    {
        long slots = (long)examples * degree;
        // Balanced right side: subset k gets ⌊nd/K⌋ slots, plus one for the first (nd mod K) of a random order.
        var stubs = new int[slots];
        int pos = 0;
        int baseSize = (int)(slots / subsets);
        int extra = (int)(slots % subsets);
        int[] order = rng.Permutation(subsets);
        for (int k = 0; k < subsets; k++)
        {
            int size = baseSize + (order[k] < extra ? 1 : 0);
            stubs.AsSpan(pos, size).Fill(k);
            pos += size;
        }

        rng.Shuffle<int>(stubs);
        RepairRepeats(stubs, examples, degree, rng);
        for (int i = 0; i < examples; i++)
        {
            stubs.AsSpan(i * degree, degree).Sort();
        }

        return stubs;
    }

    /// <summary>The d subsets example <paramref name="example"/> belongs to, ascending.</summary>
    public ReadOnlySpan<int> SubsetsOf(int example)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(example);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(example, Examples);
        return _exampleSubsets.AsSpan(example * Degree, Degree);
    }

    /// <summary>The members of subset <paramref name="subset"/>, ascending.</summary>
    public ReadOnlySpan<int> MembersOf(int subset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(subset);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(subset, Subsets);
        return _subsetMembers.AsSpan(_subsetOffsets[subset], _subsetOffsets[subset + 1] - _subsetOffsets[subset]);
    }

    /// <summary>All memberships as [n, d] row-major subset ids (row i = <see cref="SubsetsOf"/>(i)).</summary>
    public ReadOnlySpan<int> MembershipByExample => _exampleSubsets;

    /// <summary>|N(S)|: how many distinct subsets the given examples touch (at most |S|·d; an expander keeps it close).</summary>
    public int NeighbourhoodSize(ReadOnlySpan<int> examples)
    {
        var seen = new HashSet<int>();
        foreach (int i in examples)
        {
            foreach (int k in SubsetsOf(i))
            {
                seen.Add(k);
            }
        }

        return seen.Count;
    }

    /// <summary><paramref name="destination"/>[K] = M·<paramref name="x"/>[n]: each subset's sum of its members' values.</summary>
    public void Multiply(ReadOnlySpan<double> x, Span<double> destination)
    {
        if (x.Length != Examples || destination.Length != Subsets)
        {
            throw new ArgumentException($"SubsetDesign.Multiply: x has {x.Length} values (need n = {Examples}), destination {destination.Length} (need K = {Subsets}).");
        }

        for (int k = 0; k < Subsets; k++)
        {
            double s = 0;
            foreach (int i in MembersOf(k))
            {
                s += x[i];
            }

            destination[k] = s;
        }
    }

    /// <summary><paramref name="destination"/>[n] = Mᵀ·<paramref name="y"/>[K]: each example's sum over its d subsets.</summary>
    public void MultiplyTransposed(ReadOnlySpan<double> y, Span<double> destination)
    {
        if (y.Length != Subsets || destination.Length != Examples)
        {
            throw new ArgumentException($"SubsetDesign.MultiplyTransposed: y has {y.Length} values (need K = {Subsets}), destination {destination.Length} (need n = {Examples}).");
        }

        for (int i = 0; i < Examples; i++)
        {
            double s = 0;
            foreach (int k in SubsetsOf(i))
            {
                s += y[k];
            }

            destination[i] = s;
        }
    }

    private static void RepairRepeats(int[] stubs, int examples, int degree, Rng rng)
    {
        // Expected repeats per example ≈ d²/(2K), so almost every example passes untouched; a repeat is swapped with a
        // random slot of another example when the swap leaves both without repeats. With d ≤ K a valid partner exists
        // among the many slots whose subset neither example holds; the attempt cap only guards against a logic error.
        int slots = stubs.Length;
        for (int i = 0; i < examples; i++)
        {
            var row = stubs.AsSpan(i * degree, degree);
            for (int p = 0; p < degree; p++)
            {
                int attempts = 0;
                while (Contains(row, row[p], except: p))
                {
                    if (++attempts > 1_000_000)
                    {
                        throw new InvalidOperationException($"SubsetDesign: could not remove a repeated subset for example {i} (n = {examples}, d = {degree}).");
                    }

                    int q = rng.NextInt(slots);
                    int j = q / degree;
                    if (j == i)
                    {
                        continue;
                    }

                    var other = stubs.AsSpan(j * degree, degree);
                    int qi = q - (j * degree);
                    if (!Contains(row, other[qi], except: p) && !Contains(other, row[p], except: qi))
                    {
                        (row[p], other[qi]) = (other[qi], row[p]);
                    }
                }
            }
        }
    }

    private static bool Contains(ReadOnlySpan<int> row, int value, int except)
    {
        for (int t = 0; t < row.Length; t++)
        {
            if (t != except && row[t] == value)
            {
                return true;
            }
        }

        return false;
    }
}
