using Attribution.Attribution.Probes;
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
    public void Float32Probe_RoundTripsExactly_WithItsFormatAndSetSizes()
    {
        var format = new ProbeFormat([784, 16, 10], 0, ProbeElement.Float32);
        var floats = Random(format.FloatsPerUnit, 1);
        var encoded = ProbeCodec.Encode(format, 200, 4, floats);
        Assert.Equal("f32le", encoded.Encoding);
        Assert.Equal(encoded.Bytes.Length, encoded.Length * 4);
        var decoded = ProbeCodec.Decode(encoded.Encoding, encoded.Length, encoded.Bytes);
        Assert.Equal("mlp-full-f32le", decoded.Format.Name);
        Assert.Equal([784, 16, 10], decoded.Format.Widths);
        Assert.Equal(200, decoded.SetExamples);
        Assert.Equal(4, decoded.SetSources);
        Assert.Equal(floats, decoded.Floats);
    }

    [Fact]
    public void LowRankFloat16Probe_IsAboutATenthOfTheFullResponse_AndReconstructsARankRMatrixClosely()
    {
        var format = new ProbeFormat([784, 128, 64, 10], 16, ProbeElement.Float16);
        Assert.Equal("mlp-lowrank-r16-f16le", format.Name);
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
        var encoded = ProbeCodec.Encode(format, 5000, 10, unit);
        Assert.True(encoded.Bytes.Length < response.Length * 4 / 10, $"{encoded.Bytes.Length} bytes is not under a tenth of the {response.Length * 4} full bytes");
        var back = new float[response.Length];
        format.Expand(ProbeCodec.Decode(encoded.Encoding, encoded.Length, encoded.Bytes).Floats, back);
        double err = 0, norm = 0;
        for (int i = 0; i < back.Length; i++)
        {
            err += (back[i] - response[i]) * (double)(back[i] - response[i]);
            norm += response[i] * (double)response[i];
        }

        Assert.True(Math.Sqrt(err / norm) < 2e-3, $"relative error {Math.Sqrt(err / norm):G3}");
    }

    [Theory]
    [InlineData(0, "does not start with the \"TDAP\" magic")]
    [InlineData(1, "does not match its")]
    [InlineData(2, "format version")]
    [InlineData(3, "disagrees with its encoding")]
    [InlineData(4, "needs")]
    public void MalformedShiftBytes_ThrowProbeFormatExceptionSayingWhat(int damage, string expected)
    {
        var format = new ProbeFormat([4, 3, 2], 0, ProbeElement.Float32);
        var e = ProbeCodec.Encode(format, 1, 1, Random(format.FloatsPerUnit, 2));
        var bytes = (byte[])e.Bytes.Clone();
        int length = e.Length;
        var encoding = e.Encoding;
        switch (damage)
        {
            case 0: bytes[0] = (byte)'X'; break;
            case 1: length++; break;
            case 2: bytes[4] = 9; break;
            case 3: encoding = "f16le"; length *= 2; break;
            case 4: bytes = bytes[..^4]; length--; break;
        }

        var error = Assert.Throws<ProbeFormatException>(() => ProbeCodec.Decode(encoding, length, bytes));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NonFiniteResponse_IsRefusedAtEncoding()
    {
        var format = new ProbeFormat([4, 3, 2], 0, ProbeElement.Float16);
        var floats = new float[format.FloatsPerUnit];
        floats[3] = 1e6f;
        Assert.Contains("beyond float16's range", Assert.Throws<ArgumentException>(() => ProbeCodec.Encode(format, 1, 1, floats)).Message, StringComparison.Ordinal);
        floats[3] = float.NaN;
        Assert.Contains("must be finite", Assert.Throws<ArgumentException>(() => ProbeCodec.Encode(format, 1, 1, floats)).Message, StringComparison.Ordinal);
    }
}
