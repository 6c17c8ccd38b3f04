namespace Attribution.Attribution.Spans;

/// <summary>
/// Suffix array construction by prefix doubling with counting sorts (Manber–Myers): O(n log L) for a text whose longest
/// repeated substring has L symbols, four int arrays of working memory. The end of the text sorts before every symbol,
/// so a suffix that is a prefix of another sorts first.
/// </summary>
public static class SuffixArray
{
    /// <summary>The suffix array of <paramref name="text"/>: start positions of its suffixes in lexicographic order.</summary>
    public static int[] Build(ReadOnlySpan<int> text)
    {
        int n = text.Length;
        var sa = new int[n];
        if (n == 0)
        {
            return sa;
        }

        var rank = new int[n];
        int classes = InitialRanks(text, rank);
        var tmp = new int[n];
        var count = new int[Math.Max(classes, n) + 1];

        // Round 0: counting sort by the first symbol.
        CountingSort(rank, classes, count, Identity(tmp), sa);
        for (int k = 1; classes < n; k <<= 1)
        {
            // Order by the second key (rank of the suffix k further; none sorts first), then stable sort by the first.
            int p = 0;
            for (int i = n - k; i < n; i++)
            {
                tmp[p++] = i;
            }

            for (int j = 0; j < n; j++)
            {
                if (sa[j] >= k)
                {
                    tmp[p++] = sa[j] - k;
                }
            }

            CountingSort(rank, classes, count, tmp, sa);

            // New ranks: equal (first, second) pairs share a class. tmp is free again and receives them.
            tmp[sa[0]] = 0;
            int c = 0;
            for (int j = 1; j < n; j++)
            {
                int a = sa[j - 1], b = sa[j];
                int a2 = a + k < n ? rank[a + k] : -1;
                int b2 = b + k < n ? rank[b + k] : -1;
                if (rank[a] != rank[b] || a2 != b2)
                {
                    c++;
                }

                tmp[b] = c;
            }

            (rank, tmp) = (tmp, rank);
            classes = c + 1;
        }

        return sa;
    }

    // Dense ranks 0..classes-1 of the symbols, in symbol order.
    private static int InitialRanks(ReadOnlySpan<int> text, int[] rank)
    {
        int min = int.MaxValue, max = int.MinValue;
        foreach (int v in text)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }

        long range = (long)max - min + 1;
        if (range <= text.Length + (1L << 20))
        {
            var present = new int[range];
            foreach (int v in text)
            {
                present[v - min] = 1;
            }

            int c = 0;
            for (long i = 0; i < range; i++)
            {
                int seen = present[i];
                present[i] = c;
                c += seen;
            }

            for (int i = 0; i < text.Length; i++)
            {
                rank[i] = present[text[i] - min];
            }

            return c;
        }

        // Sparse alphabet: rank through the sorted distinct symbols.
        var distinct = text.ToArray();
        Array.Sort(distinct);
        int d = 0;
        for (int i = 0; i < distinct.Length; i++)
        {
            if (i == 0 || distinct[i] != distinct[i - 1])
            {
                distinct[d++] = distinct[i];
            }
        }

        for (int i = 0; i < text.Length; i++)
        {
            rank[i] = Array.BinarySearch(distinct, 0, d, text[i]);
        }

        return d;
    }

    private static int[] Identity(int[] a)
    {
        for (int i = 0; i < a.Length; i++)
        {
            a[i] = i;
        }

        return a;
    }

    // Stable sort of the positions in `order` by rank into `destination`.
    private static void CountingSort(int[] rank, int classes, int[] count, int[] order, int[] destination)
    {
        Array.Clear(count, 0, classes + 1);
        foreach (int r in rank)
        {
            count[r + 1]++;
        }

        for (int c = 0; c < classes; c++)
        {
            count[c + 1] += count[c];
        }

        foreach (int i in order)
        {
            destination[count[rank[i]]++] = i;
        }
    }
}
