using System.Buffers.Binary;
using System.IO.Compression;

namespace Attribution.Engine.Data;

/// <summary>Raw images with labels as stored in an IDX pair: bytes 0..255, [count, rows·cols], plus their labels.</summary>
public sealed class RawImageSet
{
    internal RawImageSet(string name, byte[] pixels, int[] labels, int rows, int cols)
    {
        Name = name;
        Pixels = pixels;
        Labels = labels;
        Rows = rows;
        Cols = cols;
    }

    /// <summary>"train" or "test".</summary>
    public string Name { get; }

    /// <summary>Pixel bytes, row-major [Count, Rows·Cols].</summary>
    public byte[] Pixels { get; }

    /// <summary>Labels in file order.</summary>
    public int[] Labels { get; }

    /// <summary>Image height.</summary>
    public int Rows { get; }

    /// <summary>Image width.</summary>
    public int Cols { get; }

    /// <summary>Features per image.</summary>
    public int Features => Rows * Cols;

    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;

    /// <summary>
    /// The examples with the given ids (index in the original file), as normalised float features
    /// <c>(byte/255 − mean)/std</c>, in the order given.
    /// </summary>
    public ClassificationSet Select(IReadOnlyList<int> ids, Normalization normalization, int classes = FashionMnist.Classes)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(normalization);
        int f = Features;
        var x = new float[(long)ids.Count * f];
        var y = new int[ids.Count];
        float scale = 1f / (255f * normalization.Std);
        float shift = normalization.Mean / normalization.Std;
        for (int i = 0; i < ids.Count; i++)
        {
            int id = ids[i];
            if ((uint)id >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Example id {id} (position {i}) is outside the {Name} set's {Count} images.");
            }

            var src = Pixels.AsSpan(id * f, f);
            var dst = x.AsSpan(i * f, f);
            for (int j = 0; j < f; j++)
            {
                dst[j] = src[j] * scale - shift;
            }

            y[i] = Labels[id];
        }

        return new ClassificationSet(x, y, ids.ToArray(), f, classes);
    }

    /// <summary>All examples, ids 0..Count−1.</summary>
    public ClassificationSet All(Normalization normalization) => Select(Enumerable.Range(0, Count).ToArray(), normalization);
}

/// <summary>Pixel normalisation <c>x = (byte/255 − Mean)/Std</c>.</summary>
/// <param name="Mean">Mean subtracted after scaling to [0, 1].</param>
/// <param name="Std">Standard deviation divided by.</param>
public sealed record Normalization(float Mean, float Std)
{
    /// <summary>FashionMNIST's training-set pixel mean and standard deviation (0.2860, 0.3530).</summary>
    public static Normalization FashionMnist { get; } = new(0.2860f, 0.3530f);
}

/// <summary>FashionMNIST train and test sets.</summary>
/// <param name="Train">60,000 training images.</param>
/// <param name="Test">10,000 test images.</param>
public sealed record FashionMnistData(RawImageSet Train, RawImageSet Test);

/// <summary>
/// Reader for FashionMNIST in its IDX format (gzip-compressed), as shipped by the Debian package
/// <c>dataset-fashion-mnist</c>. Validates magic numbers, dimensions and exact lengths.
/// </summary>
public static class FashionMnist
{
    /// <summary>Number of classes.</summary>
    public const int Classes = 10;

    /// <summary>The class names, by label.</summary>
    public static IReadOnlyList<string> ClassNames { get; } = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Where Debian installs the files.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    private const int ImagesMagic = 0x00000803;
    private const int LabelsMagic = 0x00000801;
    private const int MaxCount = 10_000_000;
    private const int MaxSide = 4096;

    /// <summary>Loads both splits from <paramref name="directory"/> (default <see cref="DefaultDirectory"/>).</summary>
    public static FashionMnistData Load(string? directory = null)
    {
        directory ??= DefaultDirectory;
        return new FashionMnistData(
            LoadSplit("train", Path.Combine(directory, "train-images-idx3-ubyte.gz"), Path.Combine(directory, "train-labels-idx1-ubyte.gz")),
            LoadSplit("test", Path.Combine(directory, "t10k-images-idx3-ubyte.gz"), Path.Combine(directory, "t10k-labels-idx1-ubyte.gz")));
    }

    /// <summary>Loads one split from an images file and a labels file.</summary>
    public static RawImageSet LoadSplit(string name, string imagesPath, string labelsPath)
    {
        var (pixels, count, rows, cols) = ReadImages(imagesPath);
        var labels = ReadLabels(labelsPath);
        if (labels.Length != count)
        {
            throw new DataFormatException(labelsPath, $"has {labels.Length} labels but {imagesPath} has {count} images.");
        }

        return new RawImageSet(name, pixels, labels, rows, cols);
    }

    /// <summary>Reads an IDX3 image file (gzip or plain): pixels [count, rows·cols].</summary>
    public static (byte[] Pixels, int Count, int Rows, int Cols) ReadImages(string path)
    {
        var bytes = ReadAll(path);
        if (bytes.Length < 16)
        {
            throw new DataFormatException(path, $"is {bytes.Length} bytes, shorter than the 16-byte IDX image header (truncated download?).");
        }

        int magic = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (magic != ImagesMagic)
        {
            throw new DataFormatException(path, $"magic number 0x{magic:x8} is not 0x{ImagesMagic:x8} (IDX unsigned-byte images).");
        }

        int count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        int rows = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(8));
        int cols = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(12));
        if (count < 0 || count > MaxCount || rows <= 0 || rows > MaxSide || cols <= 0 || cols > MaxSide)
        {
            throw new DataFormatException(path, $"header dimensions count={count}, rows={rows}, cols={cols} are out of range.");
        }

        long expected = 16 + (long)count * rows * cols;
        if (bytes.Length != expected)
        {
            throw new DataFormatException(path, $"holds {bytes.Length} bytes but its header (count={count}, {rows}x{cols}) needs exactly {expected}.");
        }

        return (bytes[16..], count, rows, cols);
    }

    /// <summary>Reads an IDX1 label file (gzip or plain); every label must be below <see cref="Classes"/>.</summary>
    public static int[] ReadLabels(string path)
    {
        var bytes = ReadAll(path);
        if (bytes.Length < 8)
        {
            throw new DataFormatException(path, $"is {bytes.Length} bytes, shorter than the 8-byte IDX label header (truncated download?).");
        }

        int magic = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (magic != LabelsMagic)
        {
            throw new DataFormatException(path, $"magic number 0x{magic:x8} is not 0x{LabelsMagic:x8} (IDX unsigned-byte labels).");
        }

        int count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        if (count < 0 || count > MaxCount)
        {
            throw new DataFormatException(path, $"header count {count} is out of range.");
        }

        if (bytes.Length != 8L + count)
        {
            throw new DataFormatException(path, $"holds {bytes.Length} bytes but its header (count={count}) needs exactly {8L + count}.");
        }

        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = bytes[8 + i];
            if (labels[i] >= Classes)
            {
                throw new DataFormatException(path, $"label {labels[i]} of example {i} is not below {Classes}.");
            }
        }

        return labels;
    }

    private static byte[] ReadAll(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException(
                $"FashionMNIST file '{path}' is missing. Install the Debian package dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist), or pass the directory that holds the four *-ubyte.gz files.", path);
        }

        try
        {
            using var file = File.OpenRead(path);
            Span<byte> head = stackalloc byte[2];
            int n = file.ReadAtLeast(head, 2, throwOnEndOfStream: false);
            file.Position = 0;
            using Stream source = n == 2 && head[0] == 0x1f && head[1] == 0x8b ? new GZipStream(file, CompressionMode.Decompress) : file;
            using var ms = new MemoryStream();
            // A hostile gzip could expand without bound; FashionMNIST's largest file is 47 MB.
            var buffer = new byte[1 << 16];
            int read;
            while ((read = source.Read(buffer)) > 0)
            {
                if (ms.Length + read > 1L << 30)
                {
                    throw new DataFormatException(path, "decompresses to more than 1 GiB; not an IDX file this reader accepts.");
                }

                ms.Write(buffer, 0, read);
            }

            return ms.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DataFormatException(path, $"is not valid gzip ({e.Message}); re-install dataset-fashion-mnist.", e);
        }
    }
}
