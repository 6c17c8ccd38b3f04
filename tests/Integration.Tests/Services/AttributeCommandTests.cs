namespace Attribution.Integration.Tests.Services;

/// <summary>
/// <c>pipeline attribute</c> as a user runs it, on the fixture's tiny trained run (784-16-10, 200 images): the score
/// matrix, forward-only probe sets written once and re-read, and every bad input refused with a clear message and no
/// output file.
/// </summary>
public sealed class AttributeCommandTests(PipelineFixture fixture) : IClassFixture<PipelineFixture>
{
    private const string Method = "forward-only:horizon=3,batch=50";

    private string Dir(string name)
    {
        var dir = Path.Combine(fixture.Root, "attribute-" + name + "-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "ids.txt"), "0\n1\n2\n7\n");
        return dir;
    }

    private static Task<(int ExitCode, string Output)> Attribute(params string[] args) =>
        CliProcess.RunAsync(CliProcess.Dll, ["attribute", .. args], TimeSpan.FromSeconds(120));

    [Fact]
    public async Task ProbeSet_IsSimulatedOnce_ThenReadBack_GivingTheSameScores()
    {
        var dir = Dir("probes");
        var probes = Path.Combine(dir, "run.probes");
        var first = await Attribute("--run", fixture.RunDir, "--method", Method, "--test-ids", Path.Combine(dir, "ids.txt"), "--out", Path.Combine(dir, "a.csv"), "--probes", probes);
        Assert.True(first.ExitCode == 0, first.Output);
        Assert.Contains("probes simulated and written to", first.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(probes));

        var second = await Attribute("--run", fixture.RunDir, "--method", Method, "--test-ids", Path.Combine(dir, "ids.txt"), "--out", Path.Combine(dir, "b.csv"), "--probes", probes);
        Assert.True(second.ExitCode == 0, second.Output);
        Assert.Contains("probes read from", second.Output, StringComparison.Ordinal);
        var a = await File.ReadAllLinesAsync(Path.Combine(dir, "a.csv"));
        var b = await File.ReadAllLinesAsync(Path.Combine(dir, "b.csv"));
        Assert.Equal("unit,id,source,0,1,2,7", a[0]);
        Assert.Equal(PipelineFixture.TrainCount + 1 + 1, a.Length); // header, examples, one source (the run defines none)
        Assert.Equal(a, b);
    }

    [Fact]
    public async Task ProbesOfAnotherModel_OrMethod_OrACorruptFile_AreRefused_WithoutAnOutputFile()
    {
        var dir = Dir("mismatch");
        var ids = Path.Combine(dir, "ids.txt");
        var probes = Path.Combine(dir, "run.probes");
        var made = await Attribute("--run", fixture.RunDir, "--method", Method, "--test-ids", ids, "--out", Path.Combine(dir, "ok.csv"), "--probes", probes);
        Assert.True(made.ExitCode == 0, made.Output);

        // Another model: the same run with one parameter nudged (the last bias, a mantissa bit).
        var other = fixture.CopyRun("attribute-other-" + Guid.NewGuid().ToString("N")[..6]);
        var weights = Path.Combine(other, "model.safetensors");
        var bytes = await File.ReadAllBytesAsync(weights);
        bytes[^4] ^= 0x10;
        await File.WriteAllBytesAsync(weights, bytes);

        var cases = new (string[] Args, string Expected)[]
        {
            (["--run", other, "--method", Method], "the model's parameters differ"),
            (["--run", fixture.RunDir, "--method", "forward-only:horizon=4,batch=50"], "the probes were simulated with 'forward-only;batch=50;horizon=3'"),
            (["--run", fixture.RunDir, "--method", "trak"], "--probes stores forward-only probe sets"),
        };
        foreach (var (args, expected) in cases)
        {
            var output = Path.Combine(dir, "bad.csv");
            var run = await Attribute([.. args, "--test-ids", ids, "--out", output, "--probes", probes]);
            Assert.True(run.ExitCode == 1, run.Output);
            Assert.Contains(expected, run.Output, StringComparison.Ordinal);
            Assert.False(File.Exists(output), "no output file after an error");
        }

        var truncated = Path.Combine(dir, "truncated.probes");
        var full = await File.ReadAllBytesAsync(probes);
        await File.WriteAllBytesAsync(truncated, full[..(full.Length / 2)]);
        var corrupt = await Attribute("--run", fixture.RunDir, "--method", Method, "--test-ids", ids, "--out", Path.Combine(dir, "bad.csv"), "--probes", truncated);
        Assert.Equal(1, corrupt.ExitCode);
        Assert.Contains("truncated or corrupt", corrupt.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, "bad.csv")));
    }

    [Theory]
    [InlineData("unknown-method", "ok", "Unknown attribution method 'unknown-method'")]
    [InlineData("grad-dot", "missing-run", "does not exist; train one with")]
    [InlineData("grad-dot", "id-out-of-range", "test id 10000 (entry 2) is outside the test split 0..9999")]
    [InlineData("grad-dot", "bad-extension", "unknown extension '.txt'")]
    public async Task BadInput_IsRefusedWithAClearMessage_AndNoOutputFile(string method, string damage, string expected)
    {
        var dir = Dir(damage);
        var ids = Path.Combine(dir, "ids.txt");
        var run = fixture.RunDir;
        var output = Path.Combine(dir, "scores.csv");
        switch (damage)
        {
            case "missing-run":
                run = Path.Combine(dir, "no-such-run");
                break;
            case "id-out-of-range":
                await File.WriteAllTextAsync(ids, "3 10000 4");
                break;
            case "bad-extension":
                output = Path.Combine(dir, "scores.txt");
                break;
        }

        var result = await Attribute("--run", run, "--method", method, "--test-ids", ids, "--out", output);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
        Assert.DoesNotContain("   at ", result.Output, StringComparison.Ordinal);
    }
}
