using Attribution.Contracts;
using Attribution.Attribution.Kernels;
using Attribution.Attribution.Probes;
using Attribution.Engine;

namespace Attribution.Tests.Methods;

public sealed class ResponseSetFactorTests
{
    [Fact]
    public void Loading_probe_factors_directly_equals_expanding_and_refactorising()
    {
        int[] widths = [40, 30, 12, 5];
        var format = new ProbeFormat(widths, 4, ProbePrecision.Float32);
        Assert.Contains(format.LayerRanks, r => r > 0); // the test must exercise a low-rank layer
        var rng = new Rng(3);
        const int units = 3;
        var direct = new ResponseSet(format.Layout, units, format.Rank);
        var refactored = new ResponseSet(format.Layout, units, format.Rank);
        Assert.Equal(format.LayerRanks, direct.Ranks);
        var sketch = format.CreateSketch();
        var expanded = new float[units][];
        for (int u = 0; u < units; u++)
        {
            var response = new float[format.Layout.ParameterCount];
            rng.FillNormal(response);
            var factors = new float[format.FloatsPerUnit];
            format.Compress(response, sketch, factors);
            expanded[u] = new float[response.Length];
            format.Expand(factors, expanded[u]);
            direct.SetFactors(u, factors);
            refactored.Set(u, expanded[u]);
        }

        var got = new float[format.Layout.ParameterCount];
        for (int u = 0; u < units; u++)
        {
            direct.Get(u, got);
            for (int j = 0; j < got.Length; j++)
            {
                Assert.Equal(expanded[u][j], got[j], 1e-4f * (1 + Math.Abs(expanded[u][j])));
            }
        }

        var theta = new float[format.Layout.ParameterCount];
        rng.FillNormal(theta, 0, 0.2f);
        var x = new float[2 * widths[0]];
        rng.FillNormal(x);
        int[] labels = [1, 3];
        var a = new float[2 * units];
        var b = new float[2 * units];
        direct.JacobianScores(theta, x, labels, a);
        refactored.JacobianScores(theta, x, labels, b);
        for (int i = 0; i < a.Length; i++)
        {
            Assert.Equal(b[i], a[i], 1e-3f * (1 + Math.Abs(b[i])));
        }
    }

    [Fact]
    public void Factors_of_the_wrong_length_are_rejected_with_the_expected_size()
    {
        var format = new ProbeFormat([40, 30, 5], 4, ProbePrecision.Float32);
        var set = new ResponseSet(format.Layout, 1, format.Rank);
        var e = Assert.Throws<ArgumentException>(() => set.SetFactors(0, new float[format.FloatsPerUnit - 1]));
        Assert.Contains(format.FloatsPerUnit.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message, StringComparison.Ordinal);
    }
}
