using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Probes;

/// <summary>What a stored forward-only probe set was simulated from, so it is never read back against another run.</summary>
public sealed record ProbeSetIdentity
{
    /// <summary>The method and its options as given (e.g. <c>forward-only:horizon=50</c>), normalised.</summary>
    public required string Method { get; init; }

    /// <summary>SHA-256 of the trained parameters θ (float32 little-endian).</summary>
    public required string ThetaSha256 { get; init; }

    /// <summary>SHA-256 of the training inputs, labels and source ids the simulation used.</summary>
    public required string DataSha256 { get; init; }

    /// <summary>Model widths.</summary>
    public required int[] Widths { get; init; }

    /// <summary>Computes the identity of <paramref name="problem"/> under <paramref name="method"/>.</summary>
    public static ProbeSetIdentity Of(AttributionProblem problem, string method)
    {
        ArgumentNullException.ThrowIfNull(problem);
        using var data = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        data.AppendData(MemoryMarshal.AsBytes(problem.TrainInputs.AsSpan()));
        data.AppendData(MemoryMarshal.AsBytes(problem.TrainLabels.AsSpan()));
        data.AppendData(MemoryMarshal.AsBytes(problem.SourceIds.AsSpan()));
        return new ProbeSetIdentity
        {
            Method = method,
            ThetaSha256 = Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(problem.Theta.AsSpan()))),
            DataSha256 = Convert.ToHexStringLower(data.GetHashAndReset()),
            Widths = [.. problem.Layout.Widths],
        };
    }

    /// <summary>Null when <paramref name="other"/> is the same; else what differs, in words.</summary>
    public string? Difference(ProbeSetIdentity other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (!Widths.SequenceEqual(other.Widths))
        {
            return $"the model is {string.Join('-', other.Widths)}, the probes were simulated for {string.Join('-', Widths)}";
        }

        if (ThetaSha256 != other.ThetaSha256)
        {
            return $"the model's parameters differ (sha256 {other.ThetaSha256[..12]}…, the probes were simulated at {ThetaSha256[..12]}…)";
        }

        if (DataSha256 != other.DataSha256)
        {
            return "the training examples, labels or sources differ from those the probes were simulated on";
        }

        return Method != other.Method ? $"the method is '{other.Method}', the probes were simulated with '{Method}'" : null;
    }
}

/// <summary>
/// A forward-only probe set in one file, so a run's simulation (minutes) is paid once and re-read by later
/// <c>attribute</c> calls. Layout: <c>"TDAPSET1"</c> | i32 header length | header JSON (identity, rank, unit counts,
/// floats per unit) | zero padding to 4 | example units' floats | source units' floats (f32 little-endian, the
/// <see cref="ResponseSet.GetFactors"/> layout) | SHA-256 of everything before it. Pure compute: bytes in, bytes out.
/// </summary>
public static class ProbeSetFile
{
    private static readonly byte[] Magic = "TDAPSET1"u8.ToArray();

    private sealed record Header(ProbeSetIdentity Identity, int ExampleRank, int SourceRank, int Examples, int Sources, long ExampleFloats, long SourceFloats);

    /// <summary>Encodes the two response sets with their identity.</summary>
    public static byte[] Encode(ProbeSetIdentity identity, int exampleRank, ResponseSet examples, int sourceRank, ResponseSet sources)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(sources);
        var header = JsonSerializer.SerializeToUtf8Bytes(new Header(identity, exampleRank, sourceRank, examples.Units, sources.Units, examples.FloatsPerUnit, sources.FloatsPerUnit));
        int start = Align4(Magic.Length + 4 + header.Length);
        long floats = examples.Units * examples.FloatsPerUnit + sources.Units * sources.FloatsPerUnit;
        if (start + floats * 4 + 32 > Array.MaxLength)
        {
            throw new ArgumentException($"a probe set of {floats * 4L:N0} bytes is larger than one file of this format holds (2 GB); lower the rank.");
        }

        var bytes = new byte[start + floats * 4 + 32];
        Magic.CopyTo(bytes, 0);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(Magic.Length), header.Length);
        header.CopyTo(bytes, Magic.Length + 4);
        var body = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(start, (int)(floats * 4)));
        int at = 0;
        foreach (var set in new[] { examples, sources })
        {
            int per = (int)set.FloatsPerUnit;
            for (int u = 0; u < set.Units; u++)
            {
                set.GetFactors(u, body.Slice(at, per));
                at += per;
            }
        }

        SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32), bytes.AsSpan(bytes.Length - 32));
        return bytes;
    }

    /// <summary>Decodes a probe set; <paramref name="source"/> names the file in errors.</summary>
    /// <exception cref="ProbeFormatException">Truncated, corrupt, or inconsistent with its own header.</exception>
    public static (ProbeSetIdentity Identity, ResponseSet Examples, ResponseSet Sources) Decode(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.Length < Magic.Length + 4 + 32 || !bytes[..Magic.Length].SequenceEqual(Magic))
        {
            throw new ProbeFormatException($"{source} is not a probe set file (no TDAPSET1 header); write one with './pipeline attribute --probes {source}'.");
        }

        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(bytes[..^32], digest);
        if (!digest.SequenceEqual(bytes[^32..]))
        {
            throw new ProbeFormatException($"{source} is truncated or corrupt (checksum mismatch); delete it and let 'attribute --probes' simulate again.");
        }

        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(bytes[Magic.Length..]);
        if (headerLength <= 0 || Magic.Length + 4L + headerLength > bytes.Length - 32)
        {
            throw new ProbeFormatException($"{source}: header length {headerLength} does not fit the file.");
        }

        Header header;
        try
        {
            header = JsonSerializer.Deserialize<Header>(bytes.Slice(Magic.Length + 4, headerLength))
                ?? throw new ProbeFormatException($"{source}: empty header.");
        }
        catch (JsonException e)
        {
            throw new ProbeFormatException($"{source}: header is not valid JSON ({e.Message}).");
        }

        var layout = new MlpLayout(header.Identity.Widths);
        var examples = new ResponseSet(layout, header.Examples, header.ExampleRank);
        var sources = new ResponseSet(layout, header.Sources, header.SourceRank);
        if (examples.FloatsPerUnit != header.ExampleFloats || sources.FloatsPerUnit != header.SourceFloats)
        {
            throw new ProbeFormatException($"{source}: {header.ExampleFloats}/{header.SourceFloats} floats per unit in the header, but rank {header.ExampleRank}/{header.SourceRank} of {string.Join('-', header.Identity.Widths)} stores {examples.FloatsPerUnit}/{sources.FloatsPerUnit}.");
        }

        int start = Align4(Magic.Length + 4 + headerLength);
        long floats = header.Examples * header.ExampleFloats + header.Sources * header.SourceFloats;
        if (start + floats * 4 + 32 != bytes.Length)
        {
            throw new ProbeFormatException($"{source}: {bytes.Length} bytes, but its header describes {start + floats * 4 + 32}.");
        }

        var body = MemoryMarshal.Cast<byte, float>(bytes.Slice(start, (int)(floats * 4)));
        int at = 0;
        foreach (var set in new[] { examples, sources })
        {
            int per = (int)set.FloatsPerUnit;
            for (int u = 0; u < set.Units; u++)
            {
                var unit = body.Slice(at, per);
                if (!System.Numerics.Tensors.TensorPrimitives.IsFiniteAll(unit))
                {
                    throw new ProbeFormatException($"{source}: unit {u} of the {(set == examples ? "example" : "source")} probes holds a non-finite value.");
                }

                set.SetFactors(u, unit);
                at += per;
            }
        }

        return (header.Identity, examples, sources);
    }

    private static int Align4(int n) => (n + 3) & ~3;
}
