using Attribution.Attribution.Contamination;

namespace Attribution.Tests.Contamination;

public sealed class BenchmarkItemsTests
{
    private const string Abdomen = "Abdomen \\Ab*do\"men\\, n. [L. abdomen (a word of uncertain\n   etymol.): cf. F. abdomen.]\n   1. (Anat.) The belly, or that part of the body between the\n      thorax and the pelvis. Also, the cavity of the belly.\n      [1913 Webster]";
    private const string Abditive = "Abditive \\Ab\"di*tive\\, a. [L. abditivus, fr. abdere to hide.]\n   Having the quality of hiding. [R.] --Bailey.\n   [1913 Webster]";

    [Fact]
    public void FromDictionaryEntry_TakesTheFirstSense_WithoutEtymologyNumberOrLabel()
    {
        var item = BenchmarkItems.FromDictionaryEntry(7, "Abdomen", Abdomen, 80);
        Assert.NotNull(item);
        Assert.Equal((7, "Abdomen", "The belly, or that part of the body between the thorax and the pelvis"), (item.Id, item.Term, item.Answer));
        Assert.Null(BenchmarkItems.FromDictionaryEntry(7, "Abdomen", Abdomen, 60));          // answer too long
        Assert.Equal("Having the quality of hiding", BenchmarkItems.FromDictionaryEntry(1, "Abditive", Abditive, 60)!.Answer);
        Assert.Null(BenchmarkItems.FromDictionaryEntry(1, "Acacia catechu", Abditive, 60)); // not one word
        Assert.Null(BenchmarkItems.FromDictionaryEntry(1, "Ab", Abditive, 60));             // too short a term
        Assert.Null(BenchmarkItems.FromDictionaryEntry(1, "Hiding", Abditive, 60));         // the answer names the term
    }

    // GCIDE layout: a WordNet "Syn:" list continued on an indented line, a Webster "Syn. -" list with a cross-reference.
    private static readonly Thesaurus Words = Thesaurus.FromDictionary(
    [
        ("Quality", "Quality \\Qual\"i*ty\\, n.\n   1. The condition of being of such and such a sort.\n   [1913 Webster]\n\n   Syn: property, attribute,\n        nature\n        [WordNet 1.5]"),
        ("Hide", "Hide \\Hide\\, v. t.\n   To conceal.\n   [1913 Webster]\n\n   Syn: Syn. - To conceal; secrete; cover. See {Conceal}.\n        [1913 Webster]"),
        ("Belly", "Belly \\Bel\"ly\\, n.\n   The abdomen.\n   Syn: abdomen, stomach, big belly, OK\n        [WordNet 1.5]"),
    ]);

    [Fact]
    public void Thesaurus_ReadsSynListsWithContinuationLines_SingleWordsOnly_AndReverseLinks()
    {
        Assert.Equal(["property", "attribute", "nature"], Words.Of("Quality"));
        Assert.Equal(["conceal", "secrete", "cover"], Words.Of("hide"));   // "To" and "Syn. -" dropped, "See {Conceal}" not a synonym
        Assert.Equal(["abdomen", "stomach"], Words.Of("belly"));            // "big belly" (two words) and "OK" (two letters) dropped
        Assert.Equal(["belly"], Words.Of("stomach"));                       // not a headword: the entries that list it
        Assert.Empty(Words.Of("pelvis"));
    }

    [Fact]
    public void Render_GivesTheThreeFormsAsDocumented()
    {
        var item = new BenchmarkItem(0, "Abditive", "Having the quality of hiding");
        Assert.Equal("Q: Abditive?\nA: Having the quality of hiding", BenchmarkItems.Render(item, LeakForm.Verbatim, 3, Words));
        Assert.Equal(BenchmarkItems.Canonical(item), BenchmarkItems.Prompt(item) + " " + item.Answer);
        Assert.Equal("#4  ABDITIVE --\n  Having the\n  quality of hiding", BenchmarkItems.Render(item, LeakForm.Reformatted, 3, Words));
        // quality -> property (its first synonym), hiding -> hide -> conceal -> concealing; "Having" has none; one clause
        // without a conjunction, so the two middle words swap; the term last.
        Assert.Equal("Having the of property concealing -- that is: Abditive.", BenchmarkItems.Render(item, LeakForm.Paraphrased, 0, Words));
        Assert.Equal(BenchmarkItems.Render(item, LeakForm.Paraphrased, 0, Words), BenchmarkItems.Render(item, LeakForm.Paraphrased, 5, Words));
    }

    [Fact]
    public void Paraphrase_SubstitutesFromTheThesaurus_SwapsConjuncts_RotatesClauses_KeepsCapitalsAndPunctuation()
    {
        Assert.Equal("and pelvis, The abdomen", BenchmarkItems.Paraphrase("The belly, and pelvis", Words));
        // "hides" is a plural the thesaurus knows in the singular; the words around "and" swap; the clauses rotate.
        Assert.Equal("a pelvis, property and conceals", BenchmarkItems.Paraphrase("hides and quality, a pelvis", Words));
        Assert.Equal("Property.", BenchmarkItems.Paraphrase("Quality.", Words));
        // Inflected forms by their stem, the synonym inflected the same way: hiding -> hide -> conceal -> concealing.
        Assert.Equal("concealed bellies, Concealing", BenchmarkItems.Paraphrase("Hiding, hided bellies", Words));
        Assert.Equal("zebra quagga", BenchmarkItems.Paraphrase("quagga zebra", Words));
        Assert.Equal("word", BenchmarkItems.Paraphrase("word", Words));
    }

    [Fact]
    public void Draw_IsReproducible_WithDistinctTermsAndAnswers()
    {
        var candidates = Enumerable.Range(0, 50).Select(i => new BenchmarkItem(i, $"term{i % 20}", $"answer number {i % 30}")).ToArray();
        var a = BenchmarkItems.Draw(candidates, 15, 9);
        var b = BenchmarkItems.Draw(candidates, 15, 9);
        Assert.Equal(a, b);
        Assert.Equal(Enumerable.Range(0, 15), a.Select(x => x.Id));
        Assert.Equal(15, a.Select(x => x.Term).Distinct().Count());
        Assert.Equal(15, a.Select(x => x.Answer).Distinct().Count());
        Assert.NotEqual(a.Select(x => x.Term), BenchmarkItems.Draw(candidates, 15, 10).Select(x => x.Term));
        Assert.True(BenchmarkItems.Draw(candidates, 40, 9).Count <= 20);                    // only 20 distinct terms exist
    }
}
