using Attribution.Cli.Demo;

namespace Attribution.Integration.Tests.Services;

/// <summary>
/// The GPT demo configures the Scorer's readout normalisation by the served method: relative influence is a forward-only
/// readout and the Scorer refuses it for STRIDE (the GPT demo with <c>--method stride</c> ended in that refusal before).
/// </summary>
public sealed class DemoGptNormalizeTests
{
    [Theory]
    [InlineData("forward-only", "relative")]
    [InlineData("stride", "none")]
    [InlineData("stride:k=512,d=32,rank=16,steps=100,reference=32,linearity=0,form=residual,layer=1,lr=0.001", "none")]
    public void Relative_influence_is_served_for_forward_only_and_not_for_stride(string method, string expected)
    {
        var settings = new DemoSettings { Model = "gpt", Method = method, Queries = 8 };
        Assert.Null(settings.Validate());
        Assert.Equal(expected, settings.GptScorerNormalize);
    }
}
