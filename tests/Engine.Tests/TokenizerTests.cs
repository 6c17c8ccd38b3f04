using System.Text;
using Attribution.Engine.Data;

namespace Attribution.Engine.Tests;

/// <summary>GPT-2's BPE gives the ids GPT-2 checkpoints were trained on; every tokenizer round-trips text.</summary>
public class TokenizerTests
{
    // Ids from OpenAI's GPT-2 vocabulary (identical in Hugging Face's GPT2TokenizerFast and tiktoken "gpt2").
    [Theory]
    [InlineData("Hello world", new[] { 15496, 995 })]
    [InlineData("Hello, world!", new[] { 15496, 11, 995, 0 })]
    [InlineData(" the", new[] { 262 })]
    [InlineData("<|endoftext|>", new[] { 50256 })]
    public void Gpt2_GivesGpt2Ids(string text, int[] ids)
    {
        Assert.Equal(ids, Gpt2Tokenizer.Instance.Encode(text));
    }

    [Theory]
    [InlineData("bytes")]
    [InlineData("gpt2")]
    public void EncodeDecodeRoundTripsTextIncludingNonAsciiAndWhitespace(string name)
    {
        var t = Tokenizers.Create(name);
        Assert.Equal(name, t.Name);
        foreach (var text in new[] { "", "Hello world", "  two  spaces\n\ttab", "naïve café — 東京 🙂", "BOFH excuse #42: solar flares" })
        {
            var ids = t.Encode(text);
            Assert.All(ids, id => Assert.InRange(id, 0, t.VocabSize - 1));
            Assert.Equal(text, t.Decode(ids));
            var doc = t.EncodeDocument(Encoding.UTF8.GetBytes(text));
            Assert.Equal(t.DocumentStart, doc[0]);
            Assert.Equal(text, t.Decode(doc));
        }
    }

    [Fact]
    public void Gpt2_FramesDocumentsWithOneEndOfTextAndRejectsIdsOutsideTheVocabulary()
    {
        var t = Gpt2Tokenizer.Instance;
        Assert.Equal([50256, 15496, 995, 50256, 15496], t.EncodeDocuments([Encoding.UTF8.GetBytes("Hello world"), Encoding.UTF8.GetBytes("Hello")]));
        Assert.Equal(50257, t.VocabSize);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => t.Decode([15496, 50257]));
        Assert.Contains("50257", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Tokenizers.Create("gpt4"));
    }

    [Fact]
    public void Gpt2_IsMuchShorterThanBytesOnEnglish()
    {
        const string text = "The quick brown fox jumps over the lazy dog. A computer is a machine that follows instructions.";
        int bpe = Gpt2Tokenizer.Instance.Encode(text).Length, bytes = ByteTokenizer.Instance.Encode(text).Length;
        Assert.Equal(text.Length, bytes);
        Assert.InRange(bpe, bytes / 6, bytes / 3);
    }
}
