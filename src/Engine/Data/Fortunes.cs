using System.Text;

namespace Attribution.Engine.Data;

/// <summary>One fortune: its stable id, its source (the file it came from) and its bytes.</summary>
/// <param name="Id">Index over all documents in source-then-file order.</param>
/// <param name="SourceId">Index of the source in ordinal file-name order.</param>
/// <param name="Bytes">The text's raw bytes (no trailing newline).</param>
public sealed record FortuneDocument(int Id, int SourceId, byte[] Bytes);

/// <summary>
/// The fortunes corpus (Debian <c>fortunes</c>): one document per fortune, one source per file. Files are read in
/// ordinal name order so ids never depend on directory enumeration order; index files (<c>.dat</c>), <c>.u8</c>
/// duplicates, symbolic links and sub-directories are skipped. Documents are separated by lines holding only <c>%</c>.
/// </summary>
public sealed class FortunesCorpus
{
    /// <summary>Where Debian installs the files.</summary>
    public const string DefaultDirectory = "/usr/share/games/fortunes";

    private FortunesCorpus(string[] sources, FortuneDocument[] documents)
    {
        Sources = sources;
        Documents = documents;
    }

    /// <summary>Source names (file names), index = source id.</summary>
    public IReadOnlyList<string> Sources { get; }

    /// <summary>All documents, index = document id.</summary>
    public IReadOnlyList<FortuneDocument> Documents { get; }

    /// <summary>Loads every source file in <paramref name="directory"/>.</summary>
    public static FortunesCorpus Load(string? directory = null)
    {
        directory ??= DefaultDirectory;
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"Fortunes directory '{directory}' is missing. Install the Debian package fortunes (sudo apt-get install fortunes), or pass the directory that holds the fortune files.");
        }

        var files = new DirectoryInfo(directory).EnumerateFiles()
            .Where(f => f.LinkTarget is null && !f.Name.EndsWith(".dat", StringComparison.Ordinal) && !f.Name.EndsWith(".u8", StringComparison.Ordinal) && !f.Name.StartsWith('.'))
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToArray();
        if (files.Length == 0)
        {
            throw new DataFormatException(directory, "holds no fortune files; install the Debian package fortunes.");
        }

        var sources = new List<string>();
        var documents = new List<FortuneDocument>();
        foreach (var file in files)
        {
            int sourceId = sources.Count;
            int before = documents.Count;
            foreach (var doc in Split(File.ReadAllBytes(file.FullName)))
            {
                documents.Add(new FortuneDocument(documents.Count, sourceId, doc));
            }

            if (documents.Count > before)
            {
                sources.Add(file.Name);
            }
        }

        return new FortunesCorpus(sources.ToArray(), documents.ToArray());
    }

    /// <summary>Splits a fortune file into documents at lines that hold only <c>%</c>; empty documents are dropped.</summary>
    public static IEnumerable<byte[]> Split(byte[] content)
    {
        ArgumentNullException.ThrowIfNull(content);
        int start = 0, lineStart = 0;
        for (int i = 0; i <= content.Length; i++)
        {
            if (i < content.Length && content[i] != (byte)'\n')
            {
                continue;
            }

            var line = content.AsSpan(lineStart, i - lineStart);
            if (line.Length > 0 && line[^1] == (byte)'\r')
            {
                line = line[..^1];
            }

            bool separator = line.Length == 1 && line[0] == (byte)'%';
            if (separator || i == content.Length)
            {
                int end = separator ? lineStart : content.Length;
                var doc = Trim(content.AsSpan(start, end - start));
                if (doc.Length > 0)
                {
                    yield return doc.ToArray();
                }

                start = i + 1;
            }

            lineStart = i + 1;
        }
    }

    /// <summary>
    /// A seeded split of document ids into train and validation (each ascending); <paramref name="validationFraction"/>
    /// of the documents, rounded, go to validation.
    /// </summary>
    public (int[] Train, int[] Validation) Split(double validationFraction, ulong seed)
    {
        if (!(validationFraction >= 0 && validationFraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "Must be in [0, 1).");
        }

        int n = Documents.Count;
        int nVal = (int)Math.Round(n * validationFraction);
        var perm = new Rng(seed).Permutation(n);
        var val = perm[..nVal];
        var train = perm[nVal..];
        Array.Sort(val);
        Array.Sort(train);
        return (train, val);
    }

    /// <summary>Text of a document, decoded as UTF-8 (invalid bytes become U+FFFD); for display only.</summary>
    public string Text(int id) => Encoding.UTF8.GetString(Documents[id].Bytes);

    private static ReadOnlySpan<byte> Trim(ReadOnlySpan<byte> s)
    {
        while (s.Length > 0 && (s[^1] == (byte)'\n' || s[^1] == (byte)'\r'))
        {
            s = s[..^1];
        }

        return s;
    }
}

/// <summary>
/// Byte-level tokeniser: tokens 0..255 are bytes, then <see cref="Bos"/>, <see cref="Eos"/> and <see cref="Pad"/>.
/// </summary>
public static class ByteTokenizer
{
    /// <summary>Beginning-of-document token.</summary>
    public const int Bos = 256;

    /// <summary>End-of-document token.</summary>
    public const int Eos = 257;

    /// <summary>Padding token.</summary>
    public const int Pad = 258;

    /// <summary>Vocabulary size (259).</summary>
    public const int VocabSize = 259;

    /// <summary>BOS, the bytes, EOS.</summary>
    public static int[] Encode(ReadOnlySpan<byte> bytes)
    {
        var tokens = new int[bytes.Length + 2];
        tokens[0] = Bos;
        for (int i = 0; i < bytes.Length; i++)
        {
            tokens[i + 1] = bytes[i];
        }

        tokens[^1] = Eos;
        return tokens;
    }

    /// <summary>The bytes of the byte tokens; special tokens are dropped; anything else is an error.</summary>
    public static byte[] Decode(ReadOnlySpan<int> tokens)
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
                throw new ArgumentOutOfRangeException(nameof(tokens), t, $"Token {t} at position {i} is outside the vocabulary of {VocabSize}.");
            }
        }

        return bytes.ToArray();
    }

    /// <summary>Concatenates the encodings of the given documents (BOS doc EOS BOS doc EOS ...).</summary>
    public static int[] EncodeDocuments(IEnumerable<byte[]> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        var all = new List<int>();
        foreach (var d in documents)
        {
            all.AddRange(Encode(d));
        }

        return all.ToArray();
    }
}
