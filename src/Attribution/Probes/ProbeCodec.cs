using System.Buffers.Binary;
using System.Text;

namespace Attribution.Attribution.Probes;

/// <summary>A probe's shift bytes could not be read; says what and at which byte.</summary>
public sealed class ProbeFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ProbeFormatException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public ProbeFormatException() { }

    /// <summary>Creates the exception.</summary>
    public ProbeFormatException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// What a probe carries besides its subject: the format of its floats, the size of the probe set it belongs to (so a
/// reader of the compacted topic knows when a set is complete without any other message), and the unit's floats.
/// </summary>
/// <param name="Format">Layout, rank and element type.</param>
/// <param name="SetExamples">Example probes in the probe set of this (run, step).</param>
/// <param name="SetSources">Source probes in the probe set of this (run, step).</param>
/// <param name="Floats">The unit's <see cref="ProbeFormat.FloatsPerUnit"/> floats.</param>
public sealed record ProbePayload(ProbeFormat Format, long SetExamples, long SetSources, float[] Floats);

/// <summary>
/// Encodes a unit response as the <c>Shift</c> bytes of an influence probe and back. The bytes are a small header then
/// the floats, all little-endian; the header is padded to a multiple of 4 bytes so it is a whole number of elements and
/// <c>Length × element bytes = Shift.Length</c> holds for the event contract:
/// <code>
/// "TDAP" | u16 version=1 | u16 name bytes | name (UTF-8, e.g. "mlp-lowrank-r16-f16le") | u16 width count | i32 widths[]
///        | i32 rank | i64 set examples | i64 set sources | zero padding to 4 | FloatsPerUnit elements (f16le or f32le)
/// </code>
/// Pure compute: no I/O. Decoding checks every length against the bytes present and named limits and throws
/// <see cref="ProbeFormatException"/> saying what is wrong and where.
/// </summary>
public static class ProbeCodec
{
    /// <summary>Format version written.</summary>
    public const ushort Version = 1;

    /// <summary>Most widths accepted (layers + 1).</summary>
    public const int MaxWidths = 64;

    /// <summary>Largest width accepted.</summary>
    public const int MaxWidth = 1 << 20;

    /// <summary>Longest format name accepted, in bytes.</summary>
    public const int MaxNameBytes = 128;

    private static ReadOnlySpan<byte> Magic => "TDAP"u8;

    /// <summary>The encoded form: element count and bytes, ready for an <c>InfluenceProbe</c>.</summary>
    /// <param name="Encoding">"f32le" or "f16le".</param>
    /// <param name="Length">Element count (header elements + floats).</param>
    /// <param name="Bytes">The shift bytes.</param>
    public readonly record struct Encoded(string Encoding, int Length, byte[] Bytes);

    /// <summary>Encodes <paramref name="floats"/> (this format's unit floats); non-finite values are refused.</summary>
    public static Encoded Encode(ProbeFormat format, long setExamples, long setSources, ReadOnlySpan<float> floats)
    {
        ArgumentNullException.ThrowIfNull(format);
        ArgumentOutOfRangeException.ThrowIfNegative(setExamples);
        ArgumentOutOfRangeException.ThrowIfNegative(setSources);
        if (floats.Length != format.FloatsPerUnit)
        {
            throw new ArgumentException($"{floats.Length} floats given; format {format} needs {format.FloatsPerUnit}.", nameof(floats));
        }

        for (int i = 0; i < floats.Length; i++)
        {
            if (!float.IsFinite(floats[i]))
            {
                throw new ArgumentException($"unit float {i} is {floats[i]}; a probe must be finite (did the simulation diverge? lower Simulator:Epsilon or the step size).", nameof(floats));
            }

            if (format.Element == ProbeElement.Float16 && Math.Abs(floats[i]) > (float)Half.MaxValue)
            {
                throw new ArgumentException($"unit float {i} is {floats[i]}, beyond float16's range (±65504); use the f32 probe precision.", nameof(floats));
            }
        }

        var name = Encoding.UTF8.GetBytes(format.Name);
        int header = HeaderBytes(name.Length, format.Widths.Count);
        int width = format.ElementBytes;
        var bytes = new byte[header + (long)floats.Length * width > int.MaxValue ? throw new ArgumentException("probe too large", nameof(floats)) : header + floats.Length * width];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(span[6..], (ushort)name.Length);
        name.CopyTo(span[8..]);
        int at = 8 + name.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(span[at..], (ushort)format.Widths.Count);
        at += 2;
        foreach (var w in format.Widths)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], w);
            at += 4;
        }

        BinaryPrimitives.WriteInt32LittleEndian(span[at..], format.Rank);
        BinaryPrimitives.WriteInt64LittleEndian(span[(at + 4)..], setExamples);
        BinaryPrimitives.WriteInt64LittleEndian(span[(at + 12)..], setSources);
        var data = span[header..];
        if (format.Element == ProbeElement.Float16)
        {
            for (int i = 0; i < floats.Length; i++)
            {
                BinaryPrimitives.WriteHalfLittleEndian(data[(2 * i)..], (Half)floats[i]);
            }
        }
        else
        {
            for (int i = 0; i < floats.Length; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(data[(4 * i)..], floats[i]);
            }
        }

        return new Encoded(ProbeFormat.ElementName(format.Element), bytes.Length / width, bytes);
    }

    /// <summary>Decodes the header only (cheap: no floats are converted).</summary>
    public static (ProbeFormat Format, long SetExamples, long SetSources, int HeaderBytes) DecodeHeader(string encoding, int length, ReadOnlySpan<byte> bytes)
    {
        var element = encoding switch
        {
            "f32le" => ProbeElement.Float32,
            "f16le" => ProbeElement.Float16,
            _ => throw new ProbeFormatException($"probe encoding '{encoding}' is not f32le or f16le."),
        };
        int width = element == ProbeElement.Float16 ? 2 : 4;
        if (length < 0 || (long)length * width != bytes.Length)
        {
            throw new ProbeFormatException($"probe length {length} × {width} bytes does not match its {bytes.Length} shift bytes.");
        }

        if (bytes.Length < 10 || !bytes[..4].SequenceEqual(Magic))
        {
            throw new ProbeFormatException($"probe shift does not start with the \"TDAP\" magic (got {bytes.Length} bytes); it was not written by ProbeCodec.");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]);
        if (version != Version)
        {
            throw new ProbeFormatException($"probe format version {version} at byte 4 is not supported (this build reads {Version}).");
        }

        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[6..]);
        if (nameLength is 0 or > MaxNameBytes || 8 + nameLength + 2 > bytes.Length)
        {
            throw new ProbeFormatException($"probe format name length {nameLength} at byte 6 is outside 1..{MaxNameBytes} or past the {bytes.Length} bytes.");
        }

        string name;
        try
        {
            name = new UTF8Encoding(false, true).GetString(bytes.Slice(8, nameLength));
        }
        catch (DecoderFallbackException e)
        {
            throw new ProbeFormatException("probe format name at byte 8 is not valid UTF-8.", e);
        }

        int at = 8 + nameLength;
        int count = BinaryPrimitives.ReadUInt16LittleEndian(bytes[at..]);
        at += 2;
        if (count is < 2 or > MaxWidths || at + 4L * count + 20 > bytes.Length)
        {
            throw new ProbeFormatException($"probe width count {count} at byte {at - 2} is outside 2..{MaxWidths} or past the {bytes.Length} bytes.");
        }

        var widths = new int[count];
        for (int i = 0; i < count; i++, at += 4)
        {
            widths[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]);
            if (widths[i] is < 1 or > MaxWidth)
            {
                throw new ProbeFormatException($"probe width {i} at byte {at} is {widths[i]}; must be 1..{MaxWidth}.");
            }
        }

        int rank = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]);
        long setExamples = BinaryPrimitives.ReadInt64LittleEndian(bytes[(at + 4)..]);
        long setSources = BinaryPrimitives.ReadInt64LittleEndian(bytes[(at + 12)..]);
        if (rank is < 0 or > ProbeFormat.MaxRank || setExamples < 0 || setSources < 0)
        {
            throw new ProbeFormatException($"probe rank {rank} (0..{ProbeFormat.MaxRank}) or set sizes {setExamples}/{setSources} (>= 0) at byte {at} are out of range.");
        }

        ProbeFormat format;
        try
        {
            format = new ProbeFormat(widths, rank, element);
        }
        catch (ArgumentException e)
        {
            throw new ProbeFormatException($"probe layout [{string.Join('-', widths)}] rank {rank} is not usable: {e.Message}", e);
        }

        if (format.Name != name)
        {
            throw new ProbeFormatException($"probe format name '{name}' disagrees with its encoding {encoding} and rank {rank} (expected '{format.Name}').");
        }

        int header = HeaderBytes(nameLength, count);
        if (header + (long)format.FloatsPerUnit * width != bytes.Length)
        {
            throw new ProbeFormatException($"probe of format {format} needs {header} header bytes + {format.FloatsPerUnit} × {width} bytes, but has {bytes.Length} bytes.");
        }

        return (format, setExamples, setSources, header);
    }

    /// <summary>Decodes header and floats; throws <see cref="ProbeFormatException"/> for malformed or non-finite data.</summary>
    public static ProbePayload Decode(string encoding, int length, ReadOnlySpan<byte> bytes)
    {
        var (format, setExamples, setSources, header) = DecodeHeader(encoding, length, bytes);
        var data = bytes[header..];
        var floats = new float[format.FloatsPerUnit];
        for (int i = 0; i < floats.Length; i++)
        {
            floats[i] = format.Element == ProbeElement.Float16
                ? (float)BinaryPrimitives.ReadHalfLittleEndian(data[(2 * i)..])
                : BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]);
            if (!float.IsFinite(floats[i]))
            {
                throw new ProbeFormatException($"probe float {i} (byte {header + i * format.ElementBytes}) is {floats[i]}; probes must be finite.");
            }
        }

        return new ProbePayload(format, setExamples, setSources, floats);
    }

    private static int HeaderBytes(int nameBytes, int widthCount)
    {
        int raw = 8 + nameBytes + 2 + 4 * widthCount + 4 + 8 + 8;
        return (raw + 3) & ~3;
    }
}
