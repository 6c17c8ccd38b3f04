using Attribution.Attribution.Contamination;
using Attribution.Attribution.Spans;
using Attribution.Engine.Data;

namespace Attribution.Tests.Spans;

/// <summary>
/// The normalised-text stage of contamination evidence: layout (case, punctuation, numbering, template markers, line
/// wrapping) does not hide a copy, and a paraphrase that keeps its rare words is found by the rarity-weighted overlap.
/// </summary>
public sealed class NormalizedTextIndexTests
{
    private static readonly string[] Corpus =
    [
        "#3  ABACUS --\n  a frame with beads sliding\n  on wires, for counting",
        "The cat sat on the mat, and the dog ran.",
        "A small genus of plants.",
        "Beads, counting frames and wires: a history of the abacus.",
        "the the the of of of",
    ];

    private static NormalizedTextIndex Build() => NormalizedTextIndex.Build(Corpus, [.. Corpus.Select((_, i) => 100L + i)], [.. Corpus.Select((_, i) => i % 2)]);

    [Fact]
    public void Words_AreLowerCase_WithoutPunctuationNumbersOrOneLetterWords()
    {
        Assert.Equal(["abacus", "frame", "with", "beads", "sliding", "on", "wires", "for", "counting"], TextNormalizer.Words(Corpus[0]));
        Assert.Equal(["abacus", "frame", "with", "beads", "sliding", "on", "wires", "for", "counting"], TextNormalizer.Words("Q: abacus?\nA: A frame with beads sliding on wires, for counting"));
        Assert.Equal(["x2", "utf8"], TextNormalizer.Words("12 x2 3.5 UTF8 ü"));
        Assert.Empty(TextNormalizer.Words(" -- #1 ?! "));
    }

    [Fact]
    public void A_reformatted_copy_matches_as_one_run_of_all_its_words()
    {
        var m = Build().Find("Q: abacus?\nA: A frame with beads sliding on wires, for counting", minWords: 3, maxDocuments: 4);
        Assert.Equal((9, 9, 1, 1.0), (m.Words, m.SpanWords, m.SpanCount, m.Coverage));
        Assert.Equal([100L], m.Documents.Select(d => d.Id));
        Assert.Equal(1.0, m.Overlap, 12);
        Assert.Equal(100L, m.OverlapDocument!.Id);
    }

    [Fact]
    public void Overlap_weighs_words_by_rarity_and_ignores_order()
    {
        var index = Build();
        // Reordered, with "frame" -> "shape": every other word is held by document 0; "shape" is in no document.
        var m = index.Find("counting, for wires on sliding beads with shape abacus", minWords: 3, maxDocuments: 4);
        // df: counting 2, for 1, wires 2, on 2, sliding 1, beads 2, with 1, abacus 2 of N = 5 documents; shape 0.
        double W(int df) => Math.Log(6.0 / (df + 1));
        double held = (5 * W(2)) + (3 * W(1));
        Assert.Equal(held / (held + W(0)), m.Overlap, 12);
        Assert.Equal(100L, m.OverlapDocument!.Id);
        Assert.Equal(0, m.SpanWords); // no run of 3 words in document order
        Assert.Equal([100L], m.Documents.Select(d => d.Id));
    }

    [Fact]
    public void A_query_of_common_or_unknown_words_overlaps_little()
    {
        var index = Build();
        var common = index.Find("the of the", 3, 4);
        Assert.Equal(1.0, common.Overlap, 12); // documents 3 and 4 hold both ...
        var clean = index.Find("the quixotic zephyr of hydrangeas", 3, 4);
        Assert.InRange(clean.Overlap, 0, 0.15); // ... but next to rare unknown words common ones weigh little
        Assert.Equal(TextMatch.None with { Words = 0 }, index.Find("?? 12", 3, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => index.Find("abacus", 0, 4));
    }

    [Fact]
    public void CorpusMatcher_reads_the_same_documents_as_the_exact_span_index()
    {
        var tokenizer = ByteTokenizer.Instance;
        var framed = Corpus.Select(t => tokenizer.EncodeDocument(System.Text.Encoding.UTF8.GetBytes(t))).ToArray();
        var matcher = new CorpusMatcher(SpanIndex.Build(framed, [.. Corpus.Select((_, i) => 100L + i)], [.. Corpus.Select((_, i) => i % 2)]), tokenizer);
        Assert.Equal(Build().WordCount, matcher.Text.WordCount);

        var query = tokenizer.Encode("Q: abacus?\nA: A frame with beads sliding on wires, for counting");
        var e = matcher.Find(query, new CorpusMatchOptions(MinTokens: 8, MinWords: 3, MaxDocuments: 4));
        // The exact span is cut by the line break of the reformatted copy; the normalised text matches whole.
        Assert.InRange(e.Length, 8, query.Length - 1);
        Assert.Equal((9, 1.0), (e.Text.SpanWords, e.Text.Coverage));
        Assert.Equal([100L], ContaminationPolicy.SpanDocuments(e).Order());
        Assert.Equal(ContaminationFeatures.Count, ContaminationFeatures.Of(e, AttributionEvidence.None).Length);
        Assert.Equal([1.0, 1.0], ContaminationFeatures.Of(e, AttributionEvidence.None)[6..8]);
    }
}
