using System.Globalization;
using Attribution.Attribution.Kernels;
using Attribution.Contracts;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Probes;

/// <summary>
/// How one unit's (example's or source's) parameter response is laid out in a probe: the MLP widths, the per-layer rank
/// (rank-r factors <c>U [out, r]</c>, <c>Vt [r, in]</c> where that is smaller than the layer, the full weight otherwise,
/// the bias always in full; the same rule and order as <see cref="ResponseSet"/>) and the element type. On the wire
/// (<see cref="InfluenceProbe"/>) it is the architecture, the rank and one <see cref="ProbeTensor"/> per model tensor
/// (<see cref="Tensors"/>); <see cref="ProbeCodec"/> maps between the two.
/// </summary>
public sealed class ProbeFormat
{
    /// <summary>Largest rank accepted.</summary>
    public const int MaxRank = 4096;

    private readonly int[] _widths;
    private readonly int[] _ranks;

    /// <summary>Creates the format; <paramref name="rank"/> 0 stores every layer in full.</summary>
    public ProbeFormat(IReadOnlyList<int> widths, int rank, ProbePrecision element)
    {
        ArgumentNullException.ThrowIfNull(widths);
        if (widths.Count < 2 || widths.Any(w => w < 1))
        {
            throw new ArgumentException($"a probe format needs at least two positive widths, got [{string.Join(',', widths)}].", nameof(widths));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rank, MaxRank);
        _widths = [.. widths];
        Rank = rank;
        Element = element;
        Layout = new MlpLayout(_widths);
        _ranks = new int[Layout.LayerCount];
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int o = Layout.Out(l), i = Layout.In(l);
            _ranks[l] = rank > 0 && (long)rank * (o + i) < (long)o * i ? rank : 0;
        }

        var tensors = new List<ProbeTensor>(2 * Layout.LayerCount);
        foreach (var (name, shape, _) in Layout.Tensors())
        {
            // Tensors come as layers.<l>.weight then layers.<l>.bias: the weight takes the layer's rank, the bias is full.
            tensors.Add(shape.Length == 2 ? new ProbeTensor(name, shape[0], shape[1], _ranks[tensors.Count / 2]) : new ProbeTensor(name, shape[0], 1, 0));
        }

        Tensors = tensors;
        long floats = tensors.Sum(t => t.FactorCount);
        FloatsPerUnit = floats <= int.MaxValue ? (int)floats : throw new ArgumentException($"a unit of widths [{string.Join(',', widths)}] needs {floats} floats; more than a probe can hold.", nameof(widths));
        Name = string.Create(CultureInfo.InvariantCulture, $"mlp-{(rank > 0 ? $"lowrank-r{rank}" : "full")}-{(element == ProbePrecision.Float16 ? "f16" : "f32")}");
    }

    /// <summary>Model widths (input ... classes).</summary>
    public IReadOnlyList<int> Widths => _widths;

    /// <summary>The requested rank (0 = full).</summary>
    public int Rank { get; }

    /// <summary>Rank actually used per layer (0 = stored in full): low rank only where it is smaller.</summary>
    public IReadOnlyList<int> LayerRanks => _ranks;

    /// <summary>Element type on the wire.</summary>
    public ProbePrecision Element { get; }

    /// <summary>The model's architecture string (<c>IModel.Architecture</c>), e.g. <c>mlp:784-128-64-10</c>.</summary>
    public string Architecture => "mlp:" + string.Join('-', _widths);

    /// <summary>The probe's tensors in the model's tensor order: each layer's weight (at its rank) then its bias (full).</summary>
    public IReadOnlyList<ProbeTensor> Tensors { get; }

    /// <summary>This format as a <see cref="UnitLayout"/> (what a probe carries).</summary>
    public UnitLayout Unit => new(Architecture, Rank, Tensors, Element);

    /// <summary>The layout of the flat (uncompressed) response.</summary>
    public MlpLayout Layout { get; }

    /// <summary>Floats per unit in this format.</summary>
    public int FloatsPerUnit { get; }

    /// <summary>Format name, e.g. "mlp-lowrank-r16-f16" (for logs).</summary>
    public string Name { get; }

    /// <summary>Parses "f32"/"f32le"/"f16"/"f16le" (case-insensitive); null when unknown.</summary>
    public static ProbePrecision? ParsePrecision(string? text) => text?.ToLowerInvariant() switch
    {
        "f32" or "f32le" or "float32" => ProbePrecision.Float32,
        "f16" or "f16le" or "float16" => ProbePrecision.Float16,
        _ => null,
    };

    /// <summary>A Gaussian test matrix for <see cref="Compress"/>, seeded like <see cref="ResponseSet"/>.</summary>
    public float[] CreateSketch(ulong seed = 17)
    {
        int maxIn = 0;
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            if (_ranks[l] > 0)
            {
                maxIn = Math.Max(maxIn, Layout.In(l));
            }
        }

        var omega = new float[maxIn * (Rank + 8)];
        new Rng(seed).FillNormal(omega);
        return omega;
    }

    /// <summary>
    /// Compresses a flat response (<see cref="MlpLayout.ParameterCount"/> floats) into this format's unit floats:
    /// per layer, U then Vt (truncated SVD) or the full weight, then the bias.
    /// </summary>
    public void Compress(ReadOnlySpan<float> response, ReadOnlySpan<float> sketch, Span<float> unit)
    {
        CheckLength(response.Length, Layout.ParameterCount, nameof(response));
        CheckLength(unit.Length, FloatsPerUnit, nameof(unit));
        int at = 0;
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int o = Layout.Out(l), i = Layout.In(l), r = _ranks[l];
            var w = Layout.Weight(response, l);
            if (r == 0)
            {
                w.CopyTo(unit.Slice(at, o * i));
                at += o * i;
            }
            else
            {
                LowRank.Factorize(w, o, i, r, sketch, Rank + 8, unit.Slice(at, o * r), unit.Slice(at + o * r, r * i));
                at += r * (o + i);
            }

            Layout.Bias(response, l).CopyTo(unit.Slice(at, o));
            at += o;
        }
    }

    /// <summary>Reconstructs the flat response from unit floats (U·Vt for low-rank layers).</summary>
    public void Expand(ReadOnlySpan<float> unit, Span<float> response)
    {
        CheckLength(unit.Length, FloatsPerUnit, nameof(unit));
        CheckLength(response.Length, Layout.ParameterCount, nameof(response));
        int at = 0;
        for (int l = 0; l < Layout.LayerCount; l++)
        {
            int o = Layout.Out(l), i = Layout.In(l), r = _ranks[l];
            var w = Layout.Weight(response, l);
            if (r == 0)
            {
                unit.Slice(at, o * i).CopyTo(w);
                at += o * i;
            }
            else
            {
                Blas.Gemm(false, false, o, i, r, 1f, unit.Slice(at, o * r), unit.Slice(at + o * r, r * i), 0f, w);
                at += r * (o + i);
            }

            unit.Slice(at, o).CopyTo(Layout.Bias(response, l));
            at += o;
        }
    }

    /// <summary>Whether <paramref name="other"/> describes the same layout, rank and element type.</summary>
    public bool SameAs(ProbeFormat? other) => other is not null && other.Name == Name && other._widths.AsSpan().SequenceEqual(_widths);

    /// <inheritdoc />
    public override string ToString() => $"{Name} [{string.Join('-', _widths)}]";

    private static void CheckLength(int actual, int expected, string name)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"{name} has {actual} floats; the format needs {expected}.", name);
        }
    }
}
