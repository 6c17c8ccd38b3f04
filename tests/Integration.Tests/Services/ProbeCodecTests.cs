using Attribution.Attribution.Probes;
using Attribution.Contracts;
using Attribution.Engine;

namespace Attribution.Integration.Tests.Services;

public sealed class ProbeCodecTests
{
    private static float[] Random(int n, ulong seed)
    {
        var x = new float[n];
        new Rng(seed).FillNormal(x);
        return x;
    }

    [Fact]
    public void Float32Probe_RoundTripsExactlyThroughTheEvent_WithItsTensorsAndSetSizes()
    {
        var format = new ProbeFormat([784, 16, 10], 0, ProbePrecision.Float32);
        var floats = Random(format.FloatsPerUnit, 1);
        var probe = ProbeCodec.ToProbe(format, "run", 3, ProbeSubject.Example, 17, 200, 4, floats);
        Assert.Equal("mlp:784-16-10", probe.Architecture);
        Assert.Equal("run/3/example/17", probe.Key);
        Assert.Equal(
            [new("layers.0.weight", 16, 784, 0), new("layers.0.bias", 16, 1, 0), new("layers.1.weight", 10, 16, 0), new ProbeTensor("layers.1.bias", 10, 1, 0)],
            probe.Tensors);
        var decoded = EventCodecs.Probes.Decode(EventCodecs.Probes.Encode(probe));
        var back = ProbeCodec.FormatOf(decoded);
        Assert.True(back.SameAs(format));
        Assert.Equal((200L, 4L), (decoded.SetExamples, decoded.SetSources));
        Assert.Equal(floats, decoded.Factors);
    }

    [Fact]
    public void ProbeOfAnotherLayoutOrModel_IsRefusedSayingWhatDiffers()
    {
        var format = new ProbeFormat([8, 6, 2], 2, ProbePrecision.Float32);
        var probe = ProbeCodec.ToProbe(format, "run", 3, ProbeSubject.Example, 1, 1, 1, Random(format.FloatsPerUnit, 2));
        Assert.Equal([2, 0], format.LayerRanks); // layer 1 (2 x 6) is smaller in full than at rank 2
        Assert.Equal(new ProbeTensor("layers.1.weight", 2, 6, 0), probe.Tensors[2]);
        var renamed = probe with { Tensors = [new("fc.weight", 6, 8, 2), .. probe.Tensors.Skip(1)] };
        Assert.Contains("are not those of mlp:8-6-2 at rank 2", Assert.Throws<ProbeFormatException>(() => ProbeCodec.FormatOf(renamed)).Message, StringComparison.Ordinal);
        var gpt = probe with { Architecture = "gpt:vocab=65,context=64,d=64,heads=4,layers=2,mlp=4,tied=1" };
        Assert.Contains("has no probe layout in this build", Assert.Throws<ProbeFormatException>(() => ProbeCodec.FormatOf(gpt)).Message, StringComparison.Ordinal);
        // Widths come off the wire: parsed with bounds, never used to allocate a model.
        Assert.Contains("not an integer in 1..1048576", Assert.Throws<ProbeFormatException>(() => ProbeCodec.ParseMlp("mlp:4-99999999999")).Message, StringComparison.Ordinal);
        Assert.Contains("needs 2..64", Assert.Throws<ProbeFormatException>(() => ProbeCodec.ParseMlp("mlp:4")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LowRankFloat16Probe_IsAboutATenthOfTheFullResponse_AndReconstructsARankRMatrixClosely()
    {
        var format = new ProbeFormat([784, 128, 64, 10], 16, ProbePrecision.Float16);
        Assert.Equal("mlp-lowrank-r16-f16", format.Name);
        Assert.Equal([16, 16, 0], format.LayerRanks);
        // A response whose weight layers have rank ≤ 16 survives compression up to f16 rounding.
        var response = new float[format.Layout.ParameterCount];
        for (int l = 0; l < 3; l++)
        {
            int o = format.Layout.Out(l), i = format.Layout.In(l), r = Math.Min(4, Math.Min(o, i));
            var u = Random(o * r, (ulong)(10 + l));
            var v = Random(r * i, (ulong)(20 + l));
            Blas.Gemm(false, false, o, i, r, 0.1f, u, v, 0f, format.Layout.Weight(response.AsSpan(), l));
            Random(o, (ulong)(30 + l)).CopyTo(format.Layout.Bias(response.AsSpan(), l));
        }

        var unit = new float[format.FloatsPerUnit];
        format.Compress(response, format.CreateSketch(), unit);
        var encoded = EventCodecs.Probes.Encode(ProbeCodec.ToProbe(format, "run", 1, ProbeSubject.Example, 0, 5000, 10, unit));
        Assert.True(encoded.Length < response.Length * 4 / 10, $"{encoded.Length} bytes is not under a tenth of the {response.Length * 4} full bytes");
        var back = new float[response.Length];
        format.Expand(EventCodecs.Probes.Decode(encoded).Factors, back);
        double err = 0, norm = 0;
        for (int i = 0; i < back.Length; i++)
        {
            err += (back[i] - response[i]) * (double)(back[i] - response[i]);
            norm += response[i] * (double)response[i];
        }

        Assert.True(Math.Sqrt(err / norm) < 2e-3, $"relative error {Math.Sqrt(err / norm):G3}");
    }

    [Fact]
    public void NonFiniteResponse_IsRefusedAtEncoding()
    {
        var format = new ProbeFormat([4, 3, 2], 0, ProbePrecision.Float16);
        var floats = new float[format.FloatsPerUnit];
        floats[3] = 1e6f;
        Assert.Contains("beyond float16's range", Assert.Throws<ArgumentException>(() => ProbeCodec.ToProbe(format, "run", 1, ProbeSubject.Example, 0, 1, 1, floats)).Message, StringComparison.Ordinal);
        floats[3] = float.NaN;
        Assert.Contains("must be finite", Assert.Throws<ArgumentException>(() => ProbeCodec.ToProbe(format, "run", 1, ProbeSubject.Example, 0, 1, 1, floats)).Message, StringComparison.Ordinal);
    }
}
