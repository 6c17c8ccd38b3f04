using System.Globalization;
using Attribution.Contracts;

namespace Attribution.Attribution.Probes;

/// <summary>A probe does not describe a probe layout this build reads; says what and how to fix it.</summary>
public sealed class ProbeFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ProbeFormatException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public ProbeFormatException() { }

    /// <summary>Creates the exception.</summary>
    public ProbeFormatException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>How one unit of any model travels: the model's architecture, the requested rank, the tensors and the element type.</summary>
/// <param name="Architecture">The model's architecture string (<c>IModel.Architecture</c>).</param>
/// <param name="Rank">The requested rank (0 = full).</param>
/// <param name="Tensors">The unit's tensors in order (names, shapes, per-tensor ranks).</param>
/// <param name="Element">Element type on the wire.</param>
public sealed record UnitLayout(string Architecture, int Rank, IReadOnlyList<ProbeTensor> Tensors, ProbePrecision Element)
{
    /// <summary>Floats per unit.</summary>
    public long FloatsPerUnit => Tensors.Sum(t => t.FactorCount);

    /// <inheritdoc />
    public override string ToString() => $"{Architecture} rank {Rank}, {Tensors.Count} tensors, {FloatsPerUnit} {(Element == ProbePrecision.Float16 ? "f16" : "f32")} values";
}

/// <summary>
/// Maps one unit's floats in a <see cref="ProbeFormat"/> to an <see cref="InfluenceProbe"/> (typed tensors and
/// factors) and back. The event contract already checked the wire (shapes, ranks and factor counts agree, values are
/// finite); this checks that a probe describes a layout this build can score. Pure compute: no I/O.
/// </summary>
public static class ProbeCodec
{
    /// <summary>Most MLP widths accepted in an architecture string (layers + 1).</summary>
    public const int MaxWidths = 64;

    /// <summary>Largest MLP width accepted.</summary>
    public const int MaxWidth = 1 << 20;

    /// <summary>The probe of one unit; non-finite values (and, for float16, values beyond its range) are refused.</summary>
    public static InfluenceProbe ToProbe(ProbeFormat format, string runId, long step, ProbeSubject subject, long subjectId, long setExamples, long setSources, ReadOnlySpan<float> floats)
    {
        ArgumentNullException.ThrowIfNull(format);
        return ToProbe(new UnitLayout(format.Architecture, format.Rank, format.Tensors, format.Element), runId, step, subject, subjectId, setExamples, setSources, floats);
    }

    /// <summary>The probe of one unit of any model laid out as <paramref name="layout"/> says (see the overload for the checks).</summary>
    public static InfluenceProbe ToProbe(UnitLayout layout, string runId, long step, ProbeSubject subject, long subjectId, long setExamples, long setSources, ReadOnlySpan<float> floats)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfNegative(setExamples);
        ArgumentOutOfRangeException.ThrowIfNegative(setSources);
        if (floats.Length != layout.FloatsPerUnit)
        {
            throw new ArgumentException($"{floats.Length} floats given; layout {layout} needs {layout.FloatsPerUnit}.", nameof(floats));
        }

        for (int i = 0; i < floats.Length; i++)
        {
            if (!float.IsFinite(floats[i]))
            {
                throw new ArgumentException($"unit float {i} is {floats[i]}; a probe must be finite (did the simulation diverge? lower Simulator:Epsilon or the step size).", nameof(floats));
            }

            if (layout.Element == ProbePrecision.Float16 && Math.Abs(floats[i]) > (float)Half.MaxValue)
            {
                throw new ArgumentException($"unit float {i} is {floats[i]}, beyond float16's range (±65504); use the f32 probe precision.", nameof(floats));
            }
        }

        return new InfluenceProbe(runId, step, subject, subjectId, layout.Architecture, layout.Rank, setExamples, setSources, layout.Tensors, layout.Element, floats.ToArray());
    }

    /// <summary>Whether <paramref name="probe"/> was written in <paramref name="layout"/> (architecture, rank, tensors, element type).</summary>
    public static bool IsIn(InfluenceProbe probe, UnitLayout layout)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(layout);
        return probe.Architecture == layout.Architecture && probe.Rank == layout.Rank && probe.Precision == layout.Element && probe.Tensors.SequenceEqual(layout.Tensors);
    }

    /// <summary>
    /// The format a probe was written in: its architecture must be an MLP (<c>mlp:&lt;widths&gt;</c>) and its tensors
    /// exactly that MLP's tensors at its rank. Throws <see cref="ProbeFormatException"/> saying what differs.
    /// </summary>
    public static ProbeFormat FormatOf(InfluenceProbe probe)
    {
        ArgumentNullException.ThrowIfNull(probe);
        var widths = ParseMlp(probe.Architecture);
        if (probe.Rank > ProbeFormat.MaxRank)
        {
            throw new ProbeFormatException($"probe {probe.Key}: rank {probe.Rank} is above {ProbeFormat.MaxRank}.");
        }

        ProbeFormat format;
        try
        {
            format = new ProbeFormat(widths, probe.Rank, probe.Precision);
        }
        catch (ArgumentException e)
        {
            throw new ProbeFormatException($"probe {probe.Key}: {probe.Architecture} at rank {probe.Rank} is not usable: {e.Message}", e);
        }

        if (!format.Tensors.SequenceEqual(probe.Tensors))
        {
            throw new ProbeFormatException($"probe {probe.Key}: its tensors [{Describe(probe.Tensors)}] are not those of {probe.Architecture} at rank {probe.Rank} [{Describe(format.Tensors)}]; it was written by another simulator version. Re-run the Simulator for this checkpoint.");
        }

        return format;
    }

    /// <summary>The widths of an <c>mlp:&lt;w0&gt;-&lt;w1&gt;-…</c> architecture, parsed without allocating a model (the string comes off the wire).</summary>
    public static int[] ParseMlp(string architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        if (!architecture.StartsWith("mlp:", StringComparison.Ordinal))
        {
            throw new ProbeFormatException($"architecture '{Short(architecture)}' has no probe layout in this build (known: mlp:<widths joined by '-'>); GPT probes need forward-only attribution on the transformer.");
        }

        var parts = architecture[4..].Split('-');
        if (parts.Length is < 2 or > MaxWidths)
        {
            throw new ProbeFormatException($"architecture '{Short(architecture)}' has {parts.Length} widths; an MLP needs 2..{MaxWidths} (e.g. mlp:784-128-64-10).");
        }

        var widths = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out widths[i]) || widths[i] is < 1 or > MaxWidth)
            {
                throw new ProbeFormatException($"architecture '{Short(architecture)}': width {i} ('{Short(parts[i])}') is not an integer in 1..{MaxWidth}.");
            }
        }

        return widths;
    }

    private static string Describe(IReadOnlyList<ProbeTensor> tensors) =>
        string.Join(", ", tensors.Take(8).Select(t => $"{t.Name} {t.Rows}x{t.Cols} r{t.Rank}")) + (tensors.Count > 8 ? $", … ({tensors.Count})" : "");

    private static string Short(string s) => s.Length <= 80 ? s : s[..80] + "…";
}
