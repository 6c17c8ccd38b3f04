using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Attribution.Engine.Data;

namespace Attribution.Engine.Tests;

/// <summary>FashionMNIST IDX reading, subsets, the fortunes corpus and the byte tokeniser.</summary>
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

    [Fact]
    public void FortuneFilesSplitAtPercentLinesAndSkipIndexFilesAndLinks()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, "fortunes")).FullName;
        File.WriteAllText(Path.Combine(dir, "b"), "one\n%\ntwo\nlines\n%\n%\n100% sure\n");
        File.WriteAllText(Path.Combine(dir, "a"), "first\n%\n");
        File.WriteAllText(Path.Combine(dir, "a.dat"), "index");
        File.CreateSymbolicLink(Path.Combine(dir, "a.u8"), Path.Combine(dir, "a"));
        File.CreateSymbolicLink(Path.Combine(dir, "c"), Path.Combine(dir, "b"));
        var corpus = FortunesCorpus.Load(dir);
        Assert.Equal(["a", "b"], corpus.Sources);
        Assert.Equal(["first", "one", "two\nlines", "100% sure"], corpus.Documents.Select(d => Encoding.UTF8.GetString(d.Bytes)));
        Assert.Equal([0, 1, 1, 1], corpus.Documents.Select(d => d.SourceId));
        Assert.Equal([0, 1, 2, 3], corpus.Documents.Select(d => d.Id));
    }

    [Fact]
    public void InstalledFortunesCorpusHasAboutFortySourcesAndASeededSplit()
    {
        var corpus = FortunesCorpus.Load();
        Assert.InRange(corpus.Sources.Count, 30, 60);
        Assert.InRange(corpus.Documents.Count, 10_000, 25_000);
        Assert.Equal(corpus.Sources.Order(StringComparer.Ordinal), corpus.Sources);
        var (train, val) = corpus.Split(0.1, 3);
        Assert.Equal(corpus.Documents.Count, train.Length + val.Length);
        Assert.Empty(train.Intersect(val));
        Assert.Equal(val, corpus.Split(0.1, 3).Validation);
    }

    [Fact]
    public void ByteTokenizerRoundTripsEveryByteAndFramesDocuments()
    {
        var bytes = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        var tokens = ByteTokenizer.Encode(bytes);
        Assert.Equal(ByteTokenizer.Bos, tokens[0]);
        Assert.Equal(ByteTokenizer.Eos, tokens[^1]);
        Assert.Equal(bytes, ByteTokenizer.Decode(tokens));
        Assert.Equal([256, 104, 105, 257, 256, 257], ByteTokenizer.EncodeDocuments([[104, 105], []]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ByteTokenizer.Decode([1, 259]));
    }
}
