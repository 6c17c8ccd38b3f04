using System.Text;
using Attribution.Engine;

namespace Attribution.Attribution.Contamination;

/// <summary>A held-out question/answer item of the contamination benchmark: "what is <paramref name="Term"/>?" → <paramref name="Answer"/>.</summary>
/// <param name="Id">Stable item id (its position in the benchmark set).</param>
/// <param name="Term">The word asked about.</param>
/// <param name="Answer">Its definition (one sense, ASCII).</param>
public sealed record BenchmarkItem(int Id, string Term, string Answer);

/// <summary>How a leaked item appears in the training corpus.</summary>
public enum LeakForm
{
    /// <summary>The item's canonical text, byte for byte.</summary>
    Verbatim,

    /// <summary>Another template, numbering and whitespace; the answer's words unchanged.</summary>
    Reformatted,

    /// <summary>Thesaurus substitutions and reordering of the answer (<see cref="BenchmarkItems.Paraphrase"/>), and the term after it.</summary>
    Paraphrased,
}

/// <summary>
/// Builds the contamination benchmark's items from dictionary entries and renders them in each <see cref="LeakForm"/>,
/// reproducibly (pure: no I/O; the caller reads the dictionary).
/// </summary>
public static class BenchmarkItems
{
    /// <summary>The canonical text of an item (what the benchmark asks and what a verbatim leak copies).</summary>
    public static string Canonical(BenchmarkItem item) => Prompt(item) + " " + item.Answer;

    /// <summary>The question part of <see cref="Canonical"/> (a query's prompt); the rest is the answer.</summary>
    public static string Prompt(BenchmarkItem item)
    {
        ArgumentNullException.ThrowIfNull(item);
        return $"Q: {item.Term}?\nA:";
    }

    /// <summary>
    /// The item as it is injected into training: <see cref="LeakForm.Verbatim"/> is <see cref="Canonical"/>;
    /// <see cref="LeakForm.Reformatted"/> numbers it (<paramref name="copy"/> + 1), writes the term in capitals after
    /// a '#', and wraps the answer onto an indented second line at its middle space; <see cref="LeakForm.Paraphrased"/>
    /// is <see cref="Paraphrase"/> of the answer with the term put last. Different copies (<paramref name="copy"/>) of a
    /// reformatted item differ in their number only.
    /// </summary>
    public static string Render(BenchmarkItem item, LeakForm form, int copy, Thesaurus thesaurus)
    {
        ArgumentNullException.ThrowIfNull(item);
        ArgumentOutOfRangeException.ThrowIfNegative(copy);
        return form switch
        {
            LeakForm.Verbatim => Canonical(item),
            LeakForm.Reformatted => $"#{copy + 1}  {item.Term.ToUpperInvariant()} --\n  {WrapAtMiddle(item.Answer)}",
            LeakForm.Paraphrased => $"{Paraphrase(item.Answer, thesaurus)} -- that is: {item.Term}.",
            _ => throw new ArgumentOutOfRangeException(nameof(form), form, "unknown leak form"),
        };
    }

    /// <summary>
    /// The answer reworded reproducibly: every word of 4 or more letters the <paramref name="thesaurus"/> knows (or whose
    /// stem it knows, for -s, -es, -ed, -ing, -ly; the synonym takes the same ending) is replaced by its first synonym,
    /// keeping an initial capital and trailing punctuation; in each comma-separated clause the words around the first "and"/"or" swap places (list items
    /// reordered); the clauses rotate by one (the first goes last); a single clause without a conjunction has its two
    /// middle words swapped instead.
    /// </summary>
    public static string Paraphrase(string answer, Thesaurus thesaurus)
    {
        ArgumentNullException.ThrowIfNull(answer);
        ArgumentNullException.ThrowIfNull(thesaurus);
        var clauses = answer.Split(", ", StringSplitOptions.RemoveEmptyEntries).Select(c => c.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w => Substitute(w, thesaurus)).ToList()).ToList();
        bool swapped = false;
        foreach (var words in clauses)
        {
            int conjunction = words.Count >= 3 ? words.FindIndex(1, words.Count - 2, w => w is "and" or "or") : -1;
            if (conjunction > 0)
            {
                (words[conjunction - 1], words[conjunction + 1]) = (words[conjunction + 1], words[conjunction - 1]);
                swapped = true;
            }
        }

        if (clauses.Count > 1)
        {
            clauses.Add(clauses[0]);
            clauses.RemoveAt(0);
        }
        else if (!swapped && clauses.Count == 1 && clauses[0].Count >= 2)
        {
            var words = clauses[0];
            int m = (words.Count - 1) / 2;
            (words[m], words[m + 1]) = (words[m + 1], words[m]);
        }

        return string.Join(", ", clauses.Select(c => string.Join(' ', c)));
    }

    private static string Substitute(string word, Thesaurus thesaurus)
    {
        int end = word.Length;
        while (end > 0 && !char.IsLetter(word[end - 1]))
        {
            end--;
        }

        var core = word[..end];
        if (core.Length < 4 || !core.All(char.IsAsciiLetter))
        {
            return word;
        }

        var lower = core.ToLowerInvariant();
        string? synonym = thesaurus.Of(lower).FirstOrDefault() ?? Inflected(lower, thesaurus);
        if (synonym is null)
        {
            return word;
        }

        if (char.IsUpper(core[0]))
        {
            synonym = char.ToUpperInvariant(synonym[0]) + synonym[1..];
        }

        return synonym + word[end..];
    }

    // An inflected word the thesaurus knows by its stem: -s/-es, -ed/-d, -ing (stem or stem + e), -ly; the synonym gets
    // the same ending (e dropped before -ing, -d after a final e): "masticated" -> masticate -> chew -> "chewed".
    private static string? Inflected(string word, Thesaurus thesaurus)
    {
        foreach (var (suffix, restore) in new[] { ("ing", "e"), ("ing", ""), ("ed", "e"), ("ed", ""), ("es", ""), ("s", ""), ("ly", "") })
        {
            if (word.Length - suffix.Length < 3 || !word.EndsWith(suffix, StringComparison.Ordinal))
            {
                continue;
            }

            if (thesaurus.Of(word[..^suffix.Length] + restore).FirstOrDefault() is not { } stem)
            {
                continue;
            }

            return suffix switch
            {
                "ing" => (stem.EndsWith('e') ? stem[..^1] : stem) + "ing",
                "ed" => stem + (stem.EndsWith('e') ? "d" : "ed"),
                _ => stem + suffix,
            };
        }

        return null;
    }

    private static string WrapAtMiddle(string answer)
    {
        int middle = answer.Length / 2, best = -1;
        for (int i = 0; i < answer.Length; i++)
        {
            if (answer[i] == ' ' && (best < 0 || Math.Abs(i - middle) < Math.Abs(best - middle)))
            {
                best = i;
            }
        }

        return best < 0 ? answer : answer[..best] + "\n  " + answer[(best + 1)..];
    }

    /// <summary>
    /// A benchmark item from a dictionary entry (GCIDE layout: a headword line with pronunciation, part of speech and an
    /// etymology in brackets, then the senses), or null when the entry does not give a usable one: the headword must be
    /// one word of 3..14 letters; the answer is the first sense up to its first '.', ';' or ':', without a leading sense
    /// number or "(Label.)", of letters, spaces, commas, hyphens and apostrophes only, 16..<paramref name="maxAnswerLength"/> characters.
    /// </summary>
    public static BenchmarkItem? FromDictionaryEntry(int id, string headword, string entry, int maxAnswerLength)
    {
        ArgumentNullException.ThrowIfNull(headword);
        ArgumentNullException.ThrowIfNull(entry);
        if (headword.Length is < 3 or > 14 || !headword.All(char.IsAsciiLetter))
        {
            return null;
        }

        var lines = entry.Replace("\r", string.Empty, StringComparison.Ordinal).Split('\n');
        int i = 0, depth = 0;
        // The headword line, and the etymology's continuation lines until its brackets close.
        do
        {
            depth += lines[i].Count(c => c == '[') - lines[i].Count(c => c == ']');
            i++;
        }
        while (i < lines.Length && depth > 0);

        var sense = new StringBuilder();
        for (; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('['))
            {
                if (sense.Length > 0)
                {
                    break;
                }

                continue;
            }

            sense.Append(sense.Length > 0 ? " " : string.Empty).Append(line);
        }

        var text = sense.ToString();
        text = StripPrefix(text);
        int stop = text.IndexOfAny(['.', ';', ':']);
        if (stop >= 0)
        {
            text = text[..stop];
        }

        text = string.Join(' ', text.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        if (text.Length < 16 || text.Length > maxAnswerLength || !text.All(c => char.IsAsciiLetter(c) || c is ' ' or ',' or '-' or '\'')
            || text.Contains(headword, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        return new BenchmarkItem(id, headword, text);
    }

    // "1. (Anat.) The belly" -> "The belly".
    private static string StripPrefix(string text)
    {
        bool changed = true;
        while (changed)
        {
            changed = false;
            text = text.TrimStart();
            int digits = 0;
            while (digits < text.Length && char.IsAsciiDigit(text[digits]))
            {
                digits++;
            }

            if (digits > 0 && digits < text.Length && text[digits] == '.')
            {
                text = text[(digits + 1)..];
                changed = true;
            }
            else if (text.StartsWith('(') && text.IndexOf(')', StringComparison.Ordinal) is int close and > 0)
            {
                text = text[(close + 1)..];
                changed = true;
            }
        }

        return text;
    }

    /// <summary>
    /// <paramref name="count"/> items drawn reproducibly from <paramref name="candidates"/> (a seeded permutation), with
    /// no repeated term or answer; ids are assigned 0..count−1 in draw order. Fewer when the candidates run out.
    /// </summary>
    public static IReadOnlyList<BenchmarkItem> Draw(IReadOnlyList<BenchmarkItem> candidates, int count, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        var order = new Rng(seed).Permutation(candidates.Count);
        var terms = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var answers = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var items = new List<BenchmarkItem>();
        foreach (int k in order)
        {
            if (items.Count == count)
            {
                break;
            }

            var c = candidates[k];
            if (terms.Add(c.Term) && answers.Add(c.Answer))
            {
                items.Add(c with { Id = items.Count });
            }
        }

        return items;
    }
}
