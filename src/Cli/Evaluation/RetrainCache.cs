using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Attribution.Attribution.Evaluation;

namespace Attribution.Cli.Evaluation;

/// <summary>
/// On-disk cache of retrained models' outputs, keyed by the setting hash (recipe, data selection, test queries, output
/// function), the training subset and the seed, so scoring a new method against existing ground truth costs no
/// retraining. Layout: <c>{root}/{settingHash}/setting.txt</c> (the canonical setting, for humans) and
/// <c>{root}/{settingHash}/{subsetHash}-{seed}.out</c>. Files are written to a temporary name and renamed.
/// </summary>
internal sealed class RetrainCache
{
    private static readonly byte[] Magic = "RTO1"u8.ToArray();
    private readonly string _directory;

    /// <summary>Opens (creating if needed) the cache folder of one setting.</summary>
    public RetrainCache(string root, string canonicalSetting)
    {
        SettingHash = Hash(Encoding.UTF8.GetBytes(canonicalSetting));
        _directory = Path.Combine(root, SettingHash);
        Directory.CreateDirectory(_directory);
        var settingFile = Path.Combine(_directory, "setting.txt");
        if (!File.Exists(settingFile))
        {
            WriteAtomically(settingFile, Encoding.UTF8.GetBytes(canonicalSetting));
        }
    }

    /// <summary>First 16 hex digits of the SHA-256 of the canonical setting.</summary>
    public string SettingHash { get; }

    /// <summary>The folder holding this setting's entries.</summary>
    public string Folder => _directory;

    /// <summary>Entries served from disk since creation.</summary>
    public int Hits { get; private set; }

    /// <summary>Entries computed (retrained) since creation.</summary>
    public int Misses { get; private set; }

    /// <summary>Wraps a retraining delegate so each (subset, seed) is trained at most once per setting.</summary>
    public RetrainAndMeasure Wrap(RetrainAndMeasure inner) => (subset, seed, cancellationToken) =>
    {
        var path = Path.Combine(_directory, $"{SubsetHash(subset)}-{seed}.out");
        if (TryRead(path, out var cached))
        {
            Hits++;
            return cached;
        }

        var y = inner(subset, seed, cancellationToken);
        Write(path, y);
        Misses++;
        return y;
    };

    /// <summary>Reads a cached float array by name, or computes and stores it (e.g. full-data model parameters).</summary>
    public float[] GetOrCompute(string name, Func<float[]> compute)
    {
        var path = Path.Combine(_directory, name);
        if (TryRead(path, out var cached))
        {
            Hits++;
            return cached;
        }

        var values = compute();
        Write(path, values);
        Misses++;
        return values;
    }

    /// <summary>Hash of a sorted index list (its little-endian int32 bytes).</summary>
    public static string SubsetHash(int[] subset)
    {
        var bytes = new byte[subset.Length * 4];
        for (int i = 0; i < subset.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * 4), subset[i]);
        }

        return Hash(bytes);
    }

    /// <summary>First 16 hex digits of a SHA-256.</summary>
    public static string Hash(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];

    /// <summary>Writes bytes to <paramref name="path"/> through a temporary file in the same folder and a rename.</summary>
    public static void WriteAtomically(string path, ReadOnlySpan<byte> bytes)
    {
        var temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllBytes(temp, bytes.ToArray());
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    private static bool TryRead(string path, out float[] values)
    {
        values = [];
        if (!File.Exists(path))
        {
            return false;
        }

        var bytes = File.ReadAllBytes(path);
        // A truncated or foreign file is treated as a miss and overwritten, never trusted.
        if (bytes.Length < 8 || !bytes.AsSpan(0, 4).SequenceEqual(Magic))
        {
            return false;
        }

        int count = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4));
        if (count < 0 || bytes.Length != 8 + ((long)count * 4))
        {
            return false;
        }

        values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(8 + (i * 4)));
        }

        return true;
    }

    private static void Write(string path, float[] values)
    {
        var bytes = new byte[8 + (values.Length * 4)];
        Magic.CopyTo(bytes, 0);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), values.Length);
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(8 + (i * 4)), values[i]);
        }

        WriteAtomically(path, bytes);
    }
}
