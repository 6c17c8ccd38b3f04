using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Attribution.Engine.Data;

namespace Attribution.Engine.Tests;

/// <summary>FashionMNIST IDX reading, subsets, the text corpus (fortune files, dictd databases) and the byte tokeniser.</summary>
public sealed class DataTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("data-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteIdx(string name, int magic, int[] dims, byte[] payload, bool gzip = true)
    {
        var header = new byte[4 + 4 * dims.Length];
        BinaryPrimitives.WriteInt32BigEndian(header, magic);
        for (int i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), dims[i]);
        }

        var path = Path.Combine(_dir, name);
        using var file = File.Create(path);
        using Stream s = gzip ? new GZipStream(file, CompressionLevel.Fastest) : file;
        s.Write(header);
        s.Write(payload);
        return path;
    }

    [Fact]
    public void IdxPairIsReadAndNormalisedInTheRequestedIdOrder()
    {
        var pixels = new byte[3 * 4];
        for (int i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (byte)(i * 20);
        }

        var images = WriteIdx("img.gz", 0x803, [3, 2, 2], pixels);
        var labels = WriteIdx("lab.gz", 0x801, [3], [7, 0, 9]);
        var set = FashionMnist.LoadSplit("train", images, labels);
        Assert.Equal(3, set.Count);
        Assert.Equal(4, set.Features);
        var sel = set.Select([2, 0], new Normalization(0.5f, 0.25f));
        Assert.Equal([2, 0], sel.Ids);
        Assert.Equal([9, 7], sel.Labels);
        // Image 2's first pixel is 160: (160/255 − 0.5)/0.25.
        Assert.Equal((160f / 255f - 0.5f) / 0.25f, sel.Inputs[0], 5);
        Assert.Equal(-2f, sel.Inputs[4], 5);
    }

    [Fact]
    public void TruncatedWrongMagicAndMismatchedCountsNameTheFile()
    {
        var truncated = WriteIdx("trunc.gz", 0x803, [3, 2, 2], new byte[11]);
        var e1 = Assert.Throws<DataFormatException>(() => FashionMnist.ReadImages(truncated));
        Assert.Contains("trunc.gz", e1.Message, StringComparison.Ordinal);
        Assert.Contains("needs exactly 28", e1.Message, StringComparison.Ordinal);

        var magic = WriteIdx("magic", 0x801, [3, 2, 2], new byte[12], gzip: false);
        Assert.Contains("magic number", Assert.Throws<DataFormatException>(() => FashionMnist.ReadImages(magic)).Message, StringComparison.Ordinal);

        var dims = WriteIdx("dims.gz", 0x803, [-1, 2, 2], []);
        Assert.Contains("out of range", Assert.Throws<DataFormatException>(() => FashionMnist.ReadImages(dims)).Message, StringComparison.Ordinal);

        var images = WriteIdx("img.gz", 0x803, [3, 2, 2], new byte[12]);
        var labels = WriteIdx("lab.gz", 0x801, [2], [1, 2]);
        Assert.Contains("has 2 labels", Assert.Throws<DataFormatException>(() => FashionMnist.LoadSplit("t", images, labels)).Message, StringComparison.Ordinal);

        var badLabel = WriteIdx("badlab.gz", 0x801, [2], [1, 10]);
        Assert.Contains("example 1", Assert.Throws<DataFormatException>(() => FashionMnist.ReadLabels(badLabel)).Message, StringComparison.Ordinal);

        var garbage = Path.Combine(_dir, "garbage.gz");
        File.WriteAllBytes(garbage, [0x1f, 0x8b, 1, 2, 3]);
        Assert.Contains("garbage.gz", Assert.Throws<DataFormatException>(() => FashionMnist.ReadLabels(garbage)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingDatasetSaysWhichPackageToInstall()
    {
        var e = Assert.Throws<FileNotFoundException>(() => FashionMnist.Load(Path.Combine(_dir, "nowhere")));
        Assert.Contains("dataset-fashion-mnist", e.Message, StringComparison.Ordinal);
        Assert.Contains("nowhere", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InstalledFashionMnistHasTheExpectedShapeAndFirstLabels()
    {
        var data = FashionMnist.Load();
        Assert.Equal(60_000, data.Train.Count);
        Assert.Equal(10_000, data.Test.Count);
        Assert.Equal(784, data.Train.Features);
        // The published first training labels: ankle boot, T-shirt, T-shirt, dress, T-shirt.
        Assert.Equal([9, 0, 0, 3, 0], data.Train.Labels[..5]);
        Assert.Equal([9, 2, 1, 1, 6], data.Test.Labels[..5]);
        Assert.Equal(6000, data.Train.Labels.Count(l => l == 3));
    }

    [Fact]
    public void SubsetSelectionIsSeededDistinctSortedAndInRange()
    {
        var a = SubsetSelector.Select(60_000, 5_000, 7);
        Assert.Equal(a, SubsetSelector.Select(60_000, 5_000, 7));
        Assert.NotEqual(a, SubsetSelector.Select(60_000, 5_000, 8));
        Assert.Equal(5_000, a.Distinct().Count());
        Assert.True(a.SequenceEqual(a.Order()));
        Assert.InRange(a.Min(), 0, 59_999);
        Assert.InRange(a.Max(), 0, 59_999);
        Assert.Equal(Enumerable.Range(0, 10), SubsetSelector.Select(10, 10, 1));
    }

    private CorpusLocations Locations() =>
        new(Directory.CreateDirectory(Path.Combine(_dir, "fortunes")).FullName, Directory.CreateDirectory(Path.Combine(_dir, "dictd")).FullName);

    private static void WriteDictd(string dir, string name, params (string Headword, string Body)[] entries)
    {
        // dictd layout: NAME.index lines "headword TAB offset TAB length" in base 64 (A-Za-z0-9+/), NAME.dict.dz gzip.
        const string digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        static string B64(int v) => v == 0 ? "A" : B64Rec(v);
        static string B64Rec(int v) => v == 0 ? "" : B64Rec(v / 64) + digits[v % 64];
        var text = new MemoryStream();
        var index = new StringBuilder();
        var offsets = new Dictionary<string, (int, int)>();
        foreach (var (head, body) in entries)
        {
            if (!offsets.TryGetValue(body, out var at))
            {
                var bytes = Encoding.UTF8.GetBytes(body);
                at = ((int)text.Length, bytes.Length);
                text.Write(bytes);
                offsets[body] = at;
            }

            index.Append(head).Append('\t').Append(B64(at.Item1)).Append('\t').Append(B64(at.Item2)).Append('\n');
        }

        File.WriteAllText(Path.Combine(dir, name + ".index"), index.ToString());
        using var gz = new GZipStream(File.Create(Path.Combine(dir, name + ".dict.dz")), CompressionLevel.Fastest);
        gz.Write(text.ToArray());
    }

    [Fact]
    public void FortuneFilesSplitAtPercentLinesAndSkipIndexFilesAndLinks()
    {
        var at = Locations();
        var dir = at.FortunesDirectory;
        File.WriteAllText(Path.Combine(dir, "b"), "one\n%\ntwo\nlines\n%\n%\n100% sure\n");
        File.WriteAllText(Path.Combine(dir, "a"), "first\n%\n");
        File.WriteAllText(Path.Combine(dir, "a.dat"), "index");
        File.CreateSymbolicLink(Path.Combine(dir, "a.u8"), Path.Combine(dir, "a"));
        File.CreateSymbolicLink(Path.Combine(dir, "c"), Path.Combine(dir, "b"));
        var corpus = TextCorpus.Load("fortunes", at);
        Assert.Equal(["fortunes/a", "fortunes/b"], corpus.Sources.Select(s => s.Name));
        Assert.Equal(["first", "one", "two\nlines", "100% sure"], corpus.Documents.Select(d => Encoding.UTF8.GetString(d.Bytes)));
        Assert.Equal([0, 1, 1, 1], corpus.Documents.Select(d => d.SourceId));
        Assert.Equal([0, 1, 2, 3], corpus.Documents.Select(d => d.Index));
        Assert.Equal(["0", "0", "1", "2"], corpus.Documents.Select(d => d.Key));
        Assert.Equal(TextCorpus.StableId("fortunes/b", "2"), corpus.Documents[3].Id);
        Assert.Equal("fortunes", corpus.Sources[0].Package);
    }

    [Fact]
    public void DictdEntriesBecomeDocumentsWithHeadwordKeysSkippingMetadataAndAliases()
    {
        var at = Locations();
        WriteDictd(at.DictdDirectory, "jargon",
            ("00-database-info", "This is the Jargon File."),
            ("bamf", "bamf\n /bamf/\n\n    Notional sound of teleporting.\n\n"),
            ("hack", "hack\n n.\n\n    1. A quick job.\n"),
            ("hacking", "hack\n n.\n\n    1. A quick job.\n"), // alias: same entry, one document
            ("hack", "hack\n v.\n\n    2. To work on.\n"));
        var corpus = TextCorpus.Load("jargon", at);
        Assert.Equal(["bamf", "hack", "hack#2"], corpus.Documents.Select(d => d.Key));
        Assert.Equal("bamf\n /bamf/\n\n    Notional sound of teleporting.", corpus.Text(0));
        Assert.Equal("dict-jargon", corpus.Sources.Single().Package);
        Assert.Contains("public domain", corpus.Sources.Single().Licence, StringComparison.Ordinal);
        Assert.True(DictdDatabase.TryDecode("CBcG", out long v));
        Assert.Equal((2L * 64 * 64 * 64) + (1 * 64 * 64) + (28 * 64) + 6, v);
    }

    [Fact]
    public void IdsAndIndicesDoNotDependOnSpecOrder_IdsNotOnWhatElseIsIncluded()
    {
        var at = Locations();
        File.WriteAllText(Path.Combine(at.FortunesDirectory, "computers"), "bug\n%\nfeature\n");
        WriteDictd(at.DictdDirectory, "devil", ("ABSENT", "ABSENT, adj. Peculiarly exposed.\n"));
        var a = TextCorpus.Load("fortunes,devil", at);
        var b = TextCorpus.Load(" devil , fortunes,devil", at);
        Assert.Equal("devil,fortunes", a.Spec);
        Assert.Equal(a.Spec, b.Spec);
        Assert.Equal(a.Documents.Select(d => d.Id), b.Documents.Select(d => d.Id));
        Assert.Equal(["devil", "fortunes/computers"], a.Sources.Select(s => s.Name));
        var alone = TextCorpus.Load("fortunes/computers", at);
        Assert.Equal(alone.Documents.Select(d => d.Id), a.Documents.Where(d => d.SourceId == 1).Select(d => d.Id));
    }

    [Theory]
    [InlineData("foldoc", "dict-foldoc")]
    [InlineData("fortunes/bofh-excuses", "fortunes-bofh-excuses")]
    [InlineData("fortunes/mario.geral", "fortunes-mario")]
    public void MissingSourceNamesTheDebianPackageToInstall(string spec, string package)
    {
        var e = Assert.Throws<FileNotFoundException>(() => TextCorpus.Load(spec, Locations()));
        Assert.Contains($"install the Debian package {package}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownSourceIsAnErrorListingTheKnownOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => TextCorpus.Load("fortunes,bible", Locations()));
        Assert.Contains("'bible'", e.Message, StringComparison.Ordinal);
        Assert.Contains("foldoc", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InstalledCorpusHasTheFortunePacksAndDictionariesWithDistinctIdsAndASeededSplit()
    {
        var corpus = TextCorpus.Load("fortunes,foldoc,jargon,devil");
        var names = corpus.Sources.Select(s => s.Name).ToArray();
        Assert.Contains("fortunes/bofh-excuses", names);
        Assert.Contains("fortunes/debian-hints", names);
        Assert.Contains("fortunes/mario.geral", names);
        Assert.Contains("fortunes/computers", names);
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        int Count(string source) => corpus.Documents.Count(d => corpus.Sources[d.SourceId].Name == source);
        Assert.Equal(12_014, Count("foldoc")); // unique entries (aliases share one); Debian 12 packages
        Assert.Equal(2_307, Count("jargon"));
        Assert.Equal(999, Count("devil"));
        Assert.InRange(corpus.Documents.Count - 15_320, 15_000, 25_000); // the fortune files (36,519 in all on Debian 12)
        Assert.Equal(corpus.Documents.Count, corpus.Documents.Select(d => d.Id).Distinct().Count());
        Assert.Equal("fortunes-mario", corpus.Sources.Single(s => s.Name == "fortunes/mario.geral").Package);
        var (train, val) = corpus.Split(0.1, 3);
        Assert.Equal(corpus.Documents.Count, train.Length + val.Length);
        Assert.Empty(train.Intersect(val));
        Assert.Equal(val, corpus.Split(0.1, 3).Validation);
    }

    [Fact]
    public void ByteTokenizerRoundTripsEveryByteAndFramesDocuments()
    {
        var bytes = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        var tokens = ByteTokenizer.Instance.EncodeDocument(bytes);
        Assert.Equal(ByteTokenizer.Bos, tokens[0]);
        Assert.Equal(ByteTokenizer.Eos, tokens[^1]);
        Assert.Equal(bytes, ByteTokenizer.DecodeBytes(tokens));
        Assert.Equal([256, 104, 105, 257, 256, 257], ByteTokenizer.Instance.EncodeDocuments([[104, 105], []]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ByteTokenizer.DecodeBytes([1, 259]));
        Assert.Equal([104, 195, 169], ByteTokenizer.Instance.Encode("hé"));
        Assert.Equal("hé", ByteTokenizer.Instance.Decode([256, 104, 195, 169, 257]));
    }
}
