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

    [Fact]
    public void Render_GivesTheThreeFormsAsDocumented()
    {
        var item = new BenchmarkItem(0, "Abditive", "Having the quality of hiding");
        Assert.Equal("Q: Abditive?\nA: Having the quality of hiding", BenchmarkItems.Render(item, LeakForm.Verbatim, 3));
        Assert.Equal(BenchmarkItems.Canonical(item), BenchmarkItems.Prompt(item) + " " + item.Answer);
        Assert.Equal("#4  ABDITIVE --\n  Having the\n  quality of hiding", BenchmarkItems.Render(item, LeakForm.Reformatted, 3));
        // Having->With, the->this, quality->character, of->from; one clause, so the two middle words swap; term last.
        Assert.Equal("With this from character hiding -- that is: Abditive.", BenchmarkItems.Render(item, LeakForm.Paraphrased, 0));
        Assert.Equal(BenchmarkItems.Render(item, LeakForm.Paraphrased, 0), BenchmarkItems.Render(item, LeakForm.Paraphrased, 5));
    }

    [Fact]
    public void Paraphrase_RotatesClauses_AndKeepsCapitalsAndPunctuation()
    {
        Assert.Equal("plus pelvis, This belly", BenchmarkItems.Paraphrase("The belly, and pelvis"));
        Assert.Equal("zebra quagga", BenchmarkItems.Paraphrase("quagga zebra"));
        Assert.Equal("word", BenchmarkItems.Paraphrase("word"));
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
