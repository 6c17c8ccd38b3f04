namespace Attribution.Attribution.Contamination;

/// <summary>
/// Single-word synonyms from a dictionary's synonym lists (GCIDE's "Syn:" lines: WordNet synsets and Webster's "Syn. --"
/// lists), for reproducible paraphrases. A word's own list comes first (its first listed sense first); words that
/// only appear in other entries' lists get those entries' headwords. Immutable; pure (the caller reads the dictionary).
/// </summary>
public sealed class Thesaurus
{
    private readonly Dictionary<string, string[]> _synonyms;

    private Thesaurus(Dictionary<string, string[]> synonyms) => _synonyms = synonyms;

    /// <summary>Words with at least one synonym.</summary>
    public int Count => _synonyms.Count;

    /// <summary>Synonyms of <paramref name="word"/> (lower case, letters only, at least 3), best first; empty when it has none.</summary>
    public IReadOnlyList<string> Of(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        return _synonyms.TryGetValue(word.ToLowerInvariant(), out var s) ? s : [];
    }

    /// <summary>
    /// The thesaurus of dictionary entries (headword, entry text in GCIDE layout). A synonym list starts at a line whose
    /// text begins "Syn:" and runs over the indented lines after it up to a blank line or a "[source]" line; its parts
    /// (split at commas and semicolons, "To " and "Syn. --" dropped, cross-references "See {...}" dropped) are kept when
    /// they are one word of 3 or more ASCII letters.
    /// </summary>
    public static Thesaurus FromDictionary(IEnumerable<(string Headword, string Entry)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var own = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var reverse = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (headword, entry) in entries)
        {
            var head = headword.ToLowerInvariant();
            if (!IsWord(head))
            {
                continue;
            }

            foreach (var word in SynonymLists(entry).SelectMany(Words))
            {
                if (word != head)
                {
                    AddDistinct(own, head, word);
                    AddDistinct(reverse, word, head);
                }
            }
        }

        var merged = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var word in own.Keys.Concat(reverse.Keys).Distinct())
        {
            merged[word] = own.TryGetValue(word, out var o) ? [.. o] : [.. reverse[word]];
        }

        return new Thesaurus(merged);
    }

    private static void AddDistinct(Dictionary<string, List<string>> map, string key, string value)
    {
        if (!map.TryGetValue(key, out var list))
        {
            map[key] = list = [];
        }

        if (!list.Contains(value, StringComparer.Ordinal))
        {
            list.Add(value);
        }
    }

    private static IEnumerable<string> SynonymLists(string entry)
    {
        var lines = entry.Replace("\r", string.Empty, StringComparison.Ordinal).Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var text = lines[i].Trim();
            if (!text.StartsWith("Syn:", StringComparison.Ordinal))
            {
                continue;
            }

            var list = text[4..];
            while (i + 1 < lines.Length && lines[i + 1].StartsWith(' ') && lines[i + 1].Trim() is { Length: > 0 } next && !next.StartsWith('['))
            {
                list += " " + next;
                i++;
            }

            yield return list;
        }
    }

    private static IEnumerable<string> Words(string list)
    {
        // Webster's lists: "Syn. - To fascinate; enchant; ... See {Refer}."
        int see = list.IndexOf("See {", StringComparison.Ordinal);
        if (see >= 0)
        {
            list = list[..see];
        }

        list = list.Replace("Syn.", string.Empty, StringComparison.Ordinal);
        foreach (var part in list.Split([',', ';'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var word = part.Trim('-', '.', ' ');
            if (word.StartsWith("To ", StringComparison.OrdinalIgnoreCase))
            {
                word = word[3..];
            }

            word = word.ToLowerInvariant();
            if (IsWord(word))
            {
                yield return word;
            }
        }
    }

    private static bool IsWord(string word) => word.Length >= 3 && word.All(char.IsAsciiLetterLower);
}
