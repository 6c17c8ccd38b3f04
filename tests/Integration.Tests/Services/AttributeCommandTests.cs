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
            (["--run", fixture.RunDir, "--method", "trak"], "--probes stores one model's forward-only probe set"),
        };
        foreach (var (args, expected) in cases)
        {
            var output = Path.Combine(dir, "bad.csv");
            var run = await Attribute([.. args, "--test-ids", ids, "--out", output, "--probes", probes]);
            Assert.True(run.ExitCode == (expected.StartsWith("--probes", StringComparison.Ordinal) ? 2 : 1), run.Output);
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

    [Theory]
    [InlineData("unknown-method", "Unknown attribution method 'unknown-method'")]
    [InlineData("tracin", "lists none: retrain with './pipeline train --save-every")]
    [InlineData("trak:sjlt-nonzeros=2", "applies to projector=sjlt only")]
    [InlineData("forward-only:horizon=0", "Option 'horizon' = 0 for method 'forward-only' must be at least 1 step")]
    [InlineData("grad-dot:models=0", "must be at least 1")]
    public async Task A_method_request_that_cannot_be_honoured_exits_2_saying_why(string method, string expected)
    {
        // tracin on a run without training checkpoints used to give grad-dot's scores byte for byte under TracIn's name.
        var dir = Dir("refused");
        var output = Path.Combine(dir, "scores.csv");
        var result = await Attribute("--run", fixture.RunDir, "--method", method, "--test-ids", Path.Combine(dir, "ids.txt"), "--out", output);
        Assert.True(result.ExitCode == 2, result.Output);
        Assert.Contains(expected, result.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public async Task Trak_models_3_trains_the_missing_models_from_the_runs_recipe_with_stated_seeds_and_reuses_them()
    {
        // trak:models=10 used to run TRAK on the run's one model and describe itself as models=1.
        var run = fixture.CopyRun("ensemble-" + Guid.NewGuid().ToString("N")[..6]);
        var dir = Dir("ensemble");
        var first = await Attribute("--run", run, "--method", "trak:models=3,k=64,projector=sjlt", "--test-ids", Path.Combine(dir, "ids.txt"), "--out", Path.Combine(dir, "a.csv"));
        Assert.True(first.ExitCode == 0, first.Output);
        Assert.Contains("models=3", first.Output, StringComparison.Ordinal);
        Assert.Contains("ensemble model 2/3: seed 4, trained in", first.Output, StringComparison.Ordinal); // the fixture's run has seed 3
        Assert.Contains("ensemble model 3/3: seed 5, trained in", first.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(run, "ensemble", "seed-5", "run.json")));

        var second = await Attribute("--run", run, "--method", "trak:models=3,k=64,projector=sjlt", "--test-ids", Path.Combine(dir, "ids.txt"), "--out", Path.Combine(dir, "b.csv"));
        Assert.True(second.ExitCode == 0, second.Output);
        Assert.Contains("ensemble model 3/3: seed 5, read from", second.Output, StringComparison.Ordinal);
        Assert.Equal(await File.ReadAllLinesAsync(Path.Combine(dir, "a.csv")), await File.ReadAllLinesAsync(Path.Combine(dir, "b.csv")));

        var single = await Attribute("--run", run, "--method", "trak:k=64,projector=sjlt", "--test-ids", Path.Combine(dir, "ids.txt"), "--out", Path.Combine(dir, "c.csv"));
        Assert.True(single.ExitCode == 0, single.Output);
        Assert.Contains("models=1", single.Output, StringComparison.Ordinal);
        Assert.NotEqual(await File.ReadAllLinesAsync(Path.Combine(dir, "a.csv")), await File.ReadAllLinesAsync(Path.Combine(dir, "c.csv")));
    }

    [Fact]
    public async Task Tracin_on_a_run_trained_with_save_every_sums_its_checkpoints_and_differs_from_grad_dot()
    {
        var dir = Dir("tracin");
        var run = Path.Combine(dir, "run");
        var train = await CliProcess.RunAsync(CliProcess.Dll, ["train", "--train-size", "200", "--test-size", "50", "--epochs", "3", "--save-every", "2", "--seed", "3", "--out", run], TimeSpan.FromSeconds(120));
        Assert.True(train.ExitCode == 0, train.Output);
        Assert.True(File.Exists(Path.Combine(run, "training-checkpoints", "epoch-0002.safetensors")));
        Assert.True(File.Exists(Path.Combine(run, "training-checkpoints", "epoch-0003.safetensors")));
        var ids = Path.Combine(dir, "ids.txt");
        var tracin = await Attribute("--run", run, "--method", "tracin", "--test-ids", ids, "--out", Path.Combine(dir, "tracin.csv"));
        Assert.True(tracin.ExitCode == 0, tracin.Output);
        Assert.Contains("tracin: 2 checkpoints", tracin.Output, StringComparison.Ordinal);
        var gradDot = await Attribute("--run", run, "--method", "grad-dot", "--test-ids", ids, "--out", Path.Combine(dir, "grad-dot.csv"));
        Assert.True(gradDot.ExitCode == 0, gradDot.Output);
        Assert.NotEqual(await File.ReadAllLinesAsync(Path.Combine(dir, "tracin.csv")), await File.ReadAllLinesAsync(Path.Combine(dir, "grad-dot.csv")));
        var weighted = await Attribute("--run", run, "--method", "tracin:weights=1/2/3", "--test-ids", ids, "--out", Path.Combine(dir, "w.csv"));
        Assert.True(weighted.ExitCode == 2, weighted.Output);
        Assert.Contains("3 checkpoint weights but training saved 2", weighted.Output, StringComparison.Ordinal);
        var unweighted = await Attribute("--run", run, "--method", "tracin:weights=1/1", "--test-ids", ids, "--out", Path.Combine(dir, "w.csv"));
        Assert.True(unweighted.ExitCode == 0, unweighted.Output);
        Assert.Equal(await File.ReadAllLinesAsync(Path.Combine(dir, "tracin.csv")), await File.ReadAllLinesAsync(Path.Combine(dir, "w.csv")));
    }

    [Fact]
    public async Task Attribute_on_a_gpt_run_writes_the_methods_own_source_scores_in_the_source_rows()
    {
        // With normalize=relative a source's score is its share of the positive relative influence (shares sum to 1 per
        // query), not the sum of its documents' rows: the CSV's source rows must be the method's ScoreSources.
        var dir = Dir("gpt");
        var run = Path.Combine(dir, "run");
        var train = await CliProcess.RunAsync(CliProcess.Dll, ["train", "--model", "gpt", "--corpus", "fortunes/tao,fortunes/pets", "--steps", "150", "--out", run], TimeSpan.FromSeconds(300));
        Assert.True(train.ExitCode == 0, train.Output);
        var csv = Path.Combine(dir, "gpt.csv");
        var result = await Attribute("--run", run, "--method", "forward-only:horizon=3,batch=4,rank=2,normalize=relative", "--test-ids", Path.Combine(dir, "ids.txt"),
            "--train-limit", "12", "--out", csv);
        Assert.True(result.ExitCode == 0, result.Output);
        var rows = (await File.ReadAllLinesAsync(csv)).Skip(1).Select(l => l.Split(',')).ToArray();
        var examples = rows.Where(r => r[0] == "example").ToArray();
        var sources = rows.Where(r => r[0] == "source").ToArray();
        Assert.Equal(12, examples.Length);
        Assert.NotEmpty(sources);
        static double Value(string[] row, int column) => double.Parse(row[column], System.Globalization.CultureInfo.InvariantCulture);
        for (int column = 3; column < rows[0].Length; column++)
        {
            Assert.All(sources, r => Assert.InRange(Value(r, column), 0, 1));
            Assert.Equal(1, sources.Sum(r => Value(r, column)), 1e-4);
            var documentSum = sources.Select(r => examples.Where(e => e[2] == r[2]).Sum(e => Value(e, column))).ToArray();
            Assert.NotEqual(documentSum, sources.Select(r => Value(r, column)).ToArray());
        }
    }
}
