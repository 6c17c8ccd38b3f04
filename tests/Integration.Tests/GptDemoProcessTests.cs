using Attribution.Contracts;
using Attribution.Engine.Models;
using Xunit.Abstractions;

namespace Attribution.Integration.Tests;

/// <summary>
/// <c>./pipeline demo --model gpt</c> as a user runs it, in a small configuration: a GPT trained on two fortune packs,
/// published by Ingest, forward-only probes from the Simulator served by the Scorer, text queries through the embedded
/// log, poison dead-lettered, attributions in Arrow.
/// </summary>
public sealed class GptDemoProcessTests(ITestOutputHelper output)
{
    [Fact]
    public async Task GptDemo_AttributesEveryTextQuery_ToDocumentsWithTheirSources_AndDeadLettersThePoison()
    {
        var root = Path.Combine(Path.GetTempPath(), $"gpt-demo-{Guid.NewGuid():N}");
        try
        {
            var run = await CliProcess.RunAsync(CliProcess.Dll,
                ["demo", "--model", "gpt", "--corpus", "fortunes/tao,fortunes/pets", "--steps", "150", "--queries", "3",
                 "--run-dir", Path.Combine(root, "run"), "--out", Path.Combine(root, "out")],
                TimeSpan.FromSeconds(300));
            output.WriteLine(run.Output);
            var text = System.Text.RegularExpressions.Regex.Replace(run.Output, "\x1b\\[[0-9;]*m", ""); // without the console's colours

            Assert.True(run.ExitCode == 0, $"demo exited {run.ExitCode}:\n{run.Output}");
            Assert.Contains("Attributed 3 of 3 text queries", text, StringComparison.Ordinal);
            Assert.Contains("model's completion", text, StringComparison.Ordinal);
            Assert.Contains("Probe set complete", text, StringComparison.Ordinal);
            Assert.Contains("CPU time: training", text, StringComparison.Ordinal); // the closing per-phase breakdown
            foreach (var poison in new[] { "poison-tokenizer", "poison-empty", "poison-vocab", "poison-context", "poison-image" })
            {
                Assert.Contains(poison, text, StringComparison.Ordinal);
            }

            var results = EventCodecs.Attributions.DecodeBatch(await File.ReadAllBytesAsync(Path.Combine(root, "out", "attributions.arrow")));
            Assert.Equal(3, results.Count);
            foreach (var r in results)
            {
                // The event is readable without the run: what it explains, each document's source, each source's name.
                Assert.Equal(CompletionQuery.OutputFunction, r.OutputFunction);
                Assert.Equal("forward-only", r.Method);
                Assert.Equal(["fortunes/pets", "fortunes/tao"], r.SourceNames!.Order(StringComparer.Ordinal));
                Assert.Equal(r.ExampleIds.Count, r.ExampleSourceIds!.Count);
                Assert.All(r.ExampleSourceIds, s => Assert.Contains(s, r.SourceIds));
                Assert.True(r.ExampleIds.Count >= 3);
                // The demo's Scorer serves normalize=relative: source scores are shares of the positive relative influence.
                Assert.All(r.SourceScores, s => Assert.InRange(s, 0f, 1f));
                Assert.True(r.SourceScores.All(s => s == 0) || Math.Abs(r.SourceScores.Sum() - 1) < 1e-4, string.Join(", ", r.SourceScores));
            }

            // A second run reuses the trained model.
            var again = await CliProcess.RunAsync(CliProcess.Dll,
                ["demo", "--model", "gpt", "--corpus", "fortunes/tao,fortunes/pets", "--steps", "150", "--queries", "1",
                 "--run-dir", Path.Combine(root, "run"), "--out", Path.Combine(root, "out")],
                TimeSpan.FromSeconds(300));
            Assert.True(again.ExitCode == 0, $"second demo exited {again.ExitCode}:\n{again.Output}");
            Assert.Contains("Reusing the trained model", again.Output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Theory]
    [InlineData(new[] { "demo", "--model", "gpt", "--epochs", "2" }, "--epochs does not apply to --model gpt")]
    [InlineData(new[] { "demo", "--corpus", "fortunes" }, "--corpus does not apply to --model mlp")]
    [InlineData(new[] { "demo", "--model", "gpt", "--method", "trak" }, "--method: method 'trak' is not served from probes; the services serve forward-only or stride")]
    [InlineData(new[] { "demo", "--method", "stride:combine=prior" }, "--method: stride:combine=prior is not served")]
    [InlineData(new[] { "demo", "--method", "stride", "--horizon", "5" }, "--horizon configures forward-only's simulation; it does not apply to --method stride")]
    [InlineData(new[] { "demo", "--model", "gpt", "--horizon", "5" }, "--horizon does not apply to --model gpt")]
    public async Task GptDemoOptionsItCannotHonour_ExitWithCode2(string[] args, string expected)
    {
        var run = await CliProcess.RunAsync(CliProcess.Dll, args, TimeSpan.FromSeconds(60));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(expected, run.Output, StringComparison.Ordinal);
    }
}
