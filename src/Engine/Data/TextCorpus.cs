using System.Text;

namespace Attribution.Engine.Data;

/// <summary>Where a group of documents came from.</summary>
/// <param name="Id">Index in <see cref="TextCorpus.Sources"/>.</param>
/// <param name="Name">Stable name: <c>fortunes/&lt;file&gt;</c> for a fortune file, or the dictd database name.</param>
/// <param name="Package">The Debian package that installs it.</param>
/// <param name="Licence">Licence of the text, from the package's copyright file.</param>
/// <param name="Path">The file read.</param>
public sealed record CorpusSource(int Id, string Name, string Package, string Licence, string Path);

/// <summary>One training document.</summary>
/// <param name="Index">Position in <see cref="TextCorpus.Documents"/> (what splits and token streams use).</param>
/// <param name="Id">Stable id: the first 63 bits of FNV-1a-64 over UTF-8 <c>source name + "\n" + key</c>, the same in
/// every corpus that includes the source, whatever else it includes.</param>
/// <param name="SourceId">Index of its <see cref="CorpusSource"/>.</param>
/// <param name="Key">Key within the source: the fortune's ordinal in its file ("17"), or a dictionary entry's headword
/// ("#2" appended for a repeated headword).</param>
/// <param name="Bytes">The text as stored (UTF-8), trailing newlines removed.</param>
public sealed record TextDocument(int Index, long Id, int SourceId, string Key, byte[] Bytes);

/// <summary>
/// A training corpus of documents from Debian text packages, each tagged with its source. Built from a spec: a comma-
/// separated list of <c>fortunes</c> (every fortune file of <c>fortunes</c>, <c>fortunes-min</c> and the topic packs
/// installed: one source per file), <c>fortunes/&lt;file&gt;</c> (one file), and the dictd databases <c>foldoc</c>,
/// <c>jargon</c>, <c>devil</c> (one document per entry). Sources are ordered by name whatever the spec's order, documents
/// by position within their source, so a spec always gives the same indices, and <see cref="TextDocument.Id"/> does not
/// depend on the spec at all. (<c>bible-kjv-text</c> ships only a compressed binary for its own reader: not supported.)
/// </summary>
public sealed class TextCorpus
{
    private TextCorpus(string spec, CorpusSource[] sources, TextDocument[] documents)
    {
        Spec = spec;
        Sources = sources;
        Documents = documents;
    }

    /// <summary>The normalised spec (parts sorted, duplicates removed).</summary>
    public string Spec { get; }

    /// <summary>Sources, index = source id.</summary>
    public IReadOnlyList<CorpusSource> Sources { get; }

    /// <summary>Documents, index = <see cref="TextDocument.Index"/>.</summary>
    public IReadOnlyList<TextDocument> Documents { get; }

    /// <summary>Loads the documents of <paramref name="spec"/> (e.g. "fortunes,foldoc,jargon,devil").</summary>
    /// <exception cref="ArgumentException">An unknown part of the spec.</exception>
    /// <exception cref="FileNotFoundException">A source is not installed; the message names the Debian package.</exception>
    public static TextCorpus Load(string spec, CorpusLocations? locations = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        locations ??= CorpusLocations.Debian;
        var parts = spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var files = new SortedDictionary<string, (string Package, string Licence, string Path, bool Dict)>(StringComparer.Ordinal);
        foreach (var part in parts)
        {
            foreach (var (name, package, licence, path, dict) in CorpusCatalog.Resolve(part, locations))
            {
                files[name] = (package, licence, path, dict);
            }
        }

        var sources = new List<CorpusSource>();
        var documents = new List<TextDocument>();
        var ids = new Dictionary<long, string>();
        foreach (var (name, (package, licence, path, dict)) in files)
        {
            var source = new CorpusSource(sources.Count, name, package, licence, path);
            int before = documents.Count;
            var entries = dict ? DictdDatabase.Read(path) : FortuneFile.Split(File.ReadAllBytes(path)).Select((d, i) => (i.ToString(System.Globalization.CultureInfo.InvariantCulture), d));
            foreach (var (key, bytes) in entries)
            {
                long id = StableId(name, key);
                if (!ids.TryAdd(id, $"{name} {key}"))
                {
                    throw new DataFormatException(path, $"document '{key}' has the same stable id as '{ids[id]}' (64-bit hash collision); rename or drop one of them.");
                }

                documents.Add(new TextDocument(documents.Count, id, source.Id, key, bytes));
            }

            if (documents.Count > before)
            {
                sources.Add(source);
            }
        }

        if (documents.Count == 0)
        {
            throw new DataFormatException(spec, "the corpus holds no documents.");
        }

        return new TextCorpus(string.Join(',', parts), [.. sources], [.. documents]);
    }

    /// <summary>FNV-1a-64 of UTF-8 <c>source + "\n" + key</c>, top bit cleared.</summary>
    public static long StableId(string source, string key)
    {
        ulong h = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(source + "\n" + key))
        {
            h = (h ^ b) * 1099511628211UL;
        }

        return (long)(h & 0x7FFF_FFFF_FFFF_FFFFUL);
    }

    /// <summary>
    /// A seeded split of document indices into train and validation (each ascending); <paramref name="validationFraction"/>
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

    /// <summary>Text of a document, decoded as UTF-8 (invalid bytes become U+FFFD).</summary>
    public string Text(int index) => Encoding.UTF8.GetString(Documents[index].Bytes);
}

/// <summary>Directories the corpus reads (Debian's by default; tests point them elsewhere).</summary>
/// <param name="FortunesDirectory">Fortune files.</param>
/// <param name="DictdDirectory">dictd databases (<c>NAME.index</c> + <c>NAME.dict.dz</c>).</param>
public sealed record CorpusLocations(string FortunesDirectory, string DictdDirectory)
{
    /// <summary>Where Debian installs them.</summary>
    public static CorpusLocations Debian { get; } = new("/usr/share/games/fortunes", "/usr/share/dictd");
}

/// <summary>The sources a spec may name, with their Debian package and licence.</summary>
internal static class CorpusCatalog
{
    private const string FortunesLicence = "BSD (fortune-mod); the fortunes are quotations from their authors";

    // Fortune files outside the base `fortunes` package (the rest are `fortunes`'), by file name or prefix.
    private static readonly (string File, string Package, string Licence)[] FortunePacks =
    [
        ("fortunes", "fortunes-min", FortunesLicence),
        ("literature", "fortunes-min", FortunesLicence),
        ("riddles", "fortunes-min", FortunesLicence),
        ("bofh-excuses", "fortunes-bofh-excuses", "public domain"),
        ("debian-hints", "fortunes-debian-hints", "BSD-3-clause"),
        ("mario.", "fortunes-mario", "GPL-2+"),
    ];

    private static readonly Dictionary<string, (string Package, string Licence)> Dictionaries = new(StringComparer.Ordinal)
    {
        ["foldoc"] = ("dict-foldoc", "GFDL 1.1+ (Free On-line Dictionary of Computing)"),
        ["jargon"] = ("dict-jargon", "public domain (The Jargon File)"),
        ["devil"] = ("dict-devil", "public domain, copyright expired (The Devil's Dictionary)"),
    };

    public static IEnumerable<(string Name, string Package, string Licence, string Path, bool Dict)> Resolve(string part, CorpusLocations at)
    {
        if (part == "fortunes")
        {
            if (!Directory.Exists(at.FortunesDirectory))
            {
                throw new FileNotFoundException($"Fortune directory '{at.FortunesDirectory}' is missing: install the Debian package fortunes (sudo apt-get install fortunes fortunes-bofh-excuses fortunes-debian-hints fortunes-mario).", at.FortunesDirectory);
            }

            var files = new DirectoryInfo(at.FortunesDirectory).EnumerateFiles()
                .Where(f => f.LinkTarget is null && !f.Name.EndsWith(".dat", StringComparison.Ordinal) && !f.Name.EndsWith(".u8", StringComparison.Ordinal) && !f.Name.StartsWith('.'))
                .Select(f => f.Name).Order(StringComparer.Ordinal).ToArray();
            if (files.Length == 0)
            {
                throw new FileNotFoundException($"'{at.FortunesDirectory}' holds no fortune files: install the Debian package fortunes.", at.FortunesDirectory);
            }

            foreach (var f in files)
            {
                var (package, licence) = FortunePackage(f);
                yield return ($"fortunes/{f}", package, licence, Path.Combine(at.FortunesDirectory, f), false);
            }
        }
        else if (part.StartsWith("fortunes/", StringComparison.Ordinal))
        {
            string file = part["fortunes/".Length..];
            var (package, licence) = FortunePackage(file);
            var path = Path.Combine(at.FortunesDirectory, file);
            if (file.Length == 0 || file.Contains('/') || !File.Exists(path))
            {
                throw new FileNotFoundException($"Fortune file '{path}' is missing: install the Debian package {package}, or name an installed file.", path);
            }

            yield return (part, package, licence, path, false);
        }
        else if (Dictionaries.TryGetValue(part, out var d))
        {
            var index = Path.Combine(at.DictdDirectory, part + ".index");
            if (!File.Exists(index) || !File.Exists(Path.Combine(at.DictdDirectory, part + ".dict.dz")))
            {
                throw new FileNotFoundException($"dictd database '{part}' is missing from {at.DictdDirectory}: install the Debian package {d.Package} (sudo apt-get install {d.Package}).", index);
            }

            yield return (part, d.Package, d.Licence, index, true);
        }
        else
        {
            throw new ArgumentException($"Unknown corpus source '{part}'; use fortunes, fortunes/<file>, {string.Join(", ", Dictionaries.Keys)} (comma-separated). bible-kjv-text is not supported: it ships only a compressed binary for its own reader.");
        }
    }

    private static (string Package, string Licence) FortunePackage(string file)
    {
        foreach (var (f, package, licence) in FortunePacks)
        {
            if (f.EndsWith('.') ? file.StartsWith(f, StringComparison.Ordinal) : file == f)
            {
                return (package, licence);
            }
        }

        return ("fortunes", FortunesLicence);
    }
}

/// <summary>Fortune files: documents separated by lines holding only <c>%</c>.</summary>
public static class FortuneFile
{
    /// <summary>Splits a fortune file into documents; empty documents are dropped, trailing newlines removed.</summary>
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
                var doc = TrimNewlines(content.AsSpan(start, end - start));
                if (doc.Length > 0)
                {
                    yield return doc.ToArray();
                }

                start = i + 1;
            }

            lineStart = i + 1;
        }
    }

    internal static ReadOnlySpan<byte> TrimNewlines(ReadOnlySpan<byte> s)
    {
        while (s.Length > 0 && (s[^1] == (byte)'\n' || s[^1] == (byte)'\r'))
        {
            s = s[..^1];
        }

        return s;
    }
}

/// <summary>
/// dictd databases: <c>NAME.index</c> has one line per headword, <c>headword TAB offset TAB length</c> (numbers in dictd's
/// base 64, digits <c>A-Za-z0-9+/</c>, most significant first) into the uncompressed <c>NAME.dict.dz</c> (dictzip is gzip
/// with an extra header field, so it decompresses whole). Headwords of the same entry (same offset) give one document;
/// the <c>00-database-*</c> / <c>00database*</c> metadata entries are skipped.
/// </summary>
public static class DictdDatabase
{
    private const string Digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// <summary>(key, bytes) of every entry of the database whose index is <paramref name="indexPath"/>, in index order.</summary>
    public static IEnumerable<(string Key, byte[] Bytes)> Read(string indexPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        string dictPath = indexPath[..^".index".Length] + ".dict.dz";
        byte[] text;
        try
        {
            using var gz = new System.IO.Compression.GZipStream(File.OpenRead(dictPath), System.IO.Compression.CompressionMode.Decompress);
            using var ms = new MemoryStream();
            gz.CopyTo(ms);
            text = ms.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DataFormatException(dictPath, $"is not a gzip/dictzip file ({e.Message}); reinstall its Debian package.");
        }

        var seenOffsets = new HashSet<long>();
        var keys = new Dictionary<string, int>(StringComparer.Ordinal);
        int lineNo = 0;
        var result = new List<(string, byte[])>();
        foreach (var line in File.ReadLines(indexPath, Encoding.UTF8))
        {
            lineNo++;
            if (line.Length == 0)
            {
                continue;
            }

            var f = line.Split('\t');
            if (f.Length < 3 || !TryDecode(f[1], out long offset) || !TryDecode(f[2], out long length))
            {
                throw new DataFormatException(indexPath, $"line {lineNo} is not 'headword TAB offset TAB length' in dictd base 64: '{line}'.");
            }

            if (offset + length > text.Length)
            {
                throw new DataFormatException(indexPath, $"line {lineNo} ('{f[0]}') points at bytes [{offset}, {offset + length}) past the {text.Length}-byte dictionary text.");
            }

            if (f[0].StartsWith("00-database", StringComparison.Ordinal) || f[0].StartsWith("00database", StringComparison.Ordinal) || !seenOffsets.Add(offset))
            {
                continue;
            }

            var bytes = FortuneFile.TrimNewlines(text.AsSpan((int)offset, (int)length));
            if (bytes.Length == 0)
            {
                continue;
            }

            int n = keys.TryGetValue(f[0], out int c) ? c + 1 : 1;
            keys[f[0]] = n;
            result.Add((n == 1 ? f[0] : $"{f[0]}#{n}", bytes.ToArray()));
        }

        return result;
    }

    /// <summary>A dictd base-64 number.</summary>
    public static bool TryDecode(string s, out long value)
    {
        value = 0;
        if (string.IsNullOrEmpty(s) || s.Length > 10)
        {
            return false;
        }

        foreach (var ch in s)
        {
            int d = Digits.IndexOf(ch, StringComparison.Ordinal);
            if (d < 0)
            {
                return false;
            }

            value = (value * 64) + d;
        }

        return true;
    }
}
