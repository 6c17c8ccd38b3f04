using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Tests.Methods;

/// <summary>Test shorthand: an MLP response set's JVP readout of queries x with margin labels at θ (forward-mode factors, as forward-only computes them).</summary>
internal static class ResponseSetReadout
{
    public static void JacobianScores(this ResponseSet set, float[] theta, ReadOnlySpan<float> x, ReadOnlySpan<int> labels, Span<float> scores)
    {
        var model = new Mlp(new MlpLayout([set.Layers[0].In, .. set.Layers.Select(l => l.Out)]));
        model.LoadFrom(theta);
        set.JacobianScores(model.ForwardModeGradients(x, labels, labels.Length, ModelOutput.Margin), scores);
    }
}
