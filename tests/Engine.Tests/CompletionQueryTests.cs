using Attribution.Engine.Data;
using Attribution.Engine.Models;

namespace Attribution.Engine.Tests;

/// <summary>The language-model query's output function: the completion log-likelihood and its gradient.</summary>
public class CompletionQueryTests
{
    [Fact]
    public void FromText_PutsTheDocumentStartFirstAndTokenizesBothParts()
    {
        var q = CompletionQuery.FromText(Gpt2Tokenizer.Instance, "Hello", " world");
        Assert.Equal([50256, 15496], q.Prompt);
        Assert.Equal([995], q.Completion);
        Assert.Throws<ArgumentException>(() => CompletionQuery.FromText(ByteTokenizer.Instance, "a", ""));
    }

    [Fact]
    public void Rows_IgnorePromptTargetsAndDropTheOldestPromptTokensToFit()
    {
        var q = new CompletionQuery([9, 1, 2, 3], [4, 5]);
        var (inputs, targets) = q.Rows(context: 8);
        Assert.Equal([9, 1, 2, 3, 4], inputs);
        Assert.Equal([-1, -1, -1, 4, 5], targets);
        (inputs, targets) = q.Rows(context: 4);
        Assert.Equal([1, 2, 3, 4], inputs);
        Assert.Equal([-1, -1, 4, 5], targets);
        Assert.Throws<ArgumentException>(() => q.Rows(context: 1));
    }

    [Fact]
    public void LogLikelihood_IsTheSumOfCompletionLogProbabilitiesFromTheLogits()
    {
        var model = new Gpt(new GptConfig(VocabSize: 13, Context: 8, DModel: 8, Heads: 2, Layers: 2), seed: 4);
        var q = new CompletionQuery([12, 3, 7], [5, 1, 9]);
        var (inputs, _) = q.Rows(8);
        var logits = model.Logits(inputs, 1, inputs.Length);
        double expected = 0;
        for (int k = 0; k < 3; k++)
        {
            var row = logits.AsSpan((2 + k) * 13, 13).ToArray();
            double max = row.Max();
            double lse = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
            expected += row[q.Completion[k]] - lse;
        }

        Assert.Equal(expected, q.LogLikelihood(model), 1e-5);
    }

    [Fact]
    public void LogLikelihoodGradient_MatchesCentralDifferences()
    {
        var model = new Gpt(new GptConfig(VocabSize: 11, Context: 8, DModel: 8, Heads: 2, Layers: 1), seed: 6);
        var q = new CompletionQuery([10, 2, 3], [4, 0]);
        model.ZeroGrad();
        double ll = q.LogLikelihoodAndBackward(model);
        Assert.Equal(q.LogLikelihood(model), ll, 1e-6);
        var rng = new Rng(3);
        var dir = model.Parameters.Select(p => GradCheck.RandomArray(rng, p.Count, 0f)).ToArray();
        double analytic = model.Parameters.Select((p, i) => GradCheck.Dot(p.Grad, dir[i])).Sum();
        double Shifted(float s)
        {
            for (int i = 0; i < dir.Length; i++)
            {
                for (int k = 0; k < dir[i].Length; k++)
                {
                    model.Parameters[i].Data[k] += s * dir[i][k];
                }
            }

            double v = q.LogLikelihood(model);
            for (int i = 0; i < dir.Length; i++)
            {
                for (int k = 0; k < dir[i].Length; k++)
                {
                    model.Parameters[i].Data[k] -= s * dir[i][k];
                }
            }

            return v;
        }

        double fd = (Shifted(1e-3f) - Shifted(-1e-3f)) / 2e-3;
        Assert.Equal(fd, analytic, 2e-2 * (1 + Math.Abs(fd)));
        Assert.True(Math.Abs(analytic) > 1e-3, "the direction must move the log-likelihood for this check to mean anything");
    }
}
