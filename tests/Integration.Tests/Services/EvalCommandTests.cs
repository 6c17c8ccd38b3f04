namespace Attribution.Integration.Tests.Services;

/// <summary>
/// <c>pipeline eval</c> on a tiny setting (60 training images, 8 queries, 4 subsets, 1 epoch): every method option is
/// honoured (ensembles get their models, TracIn the checkpoints saved while training, grids are tuned on held-out
/// queries) or the run exits 2 before any retraining.
/// </summary>
public sealed class EvalCommandTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("eval-tests-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private Task<(int ExitCode, string Output)> Eval(string outName, params string[] methods) => EvalWith(outName, ["--epochs", "1"], methods);

    private Task<(int ExitCode, string Output)> EvalWith(string outName, string[] flags, params string[] methods) =>
        CliProcess.RunAsync(CliProcess.Dll,
            ["eval", "--train", "60", "--test", "8", "--subsets", "4", "--source-subsets", "0", "--latency-queries", "1", .. flags,
             "--cache", Path.Combine(_root, "cache"), "--out", Path.Combine(_root, outName), .. methods.SelectMany(m => new[] { "--method", m })],
            TimeSpan.FromSeconds(300));

    // Protects a blend of ensembles: the run must train the models its parts need (a-models / b-models), or a STRIDE or
    // TRAK ensemble inside a blend would meet a problem holding one model.
    [Theory]
    [InlineData("models=3", 3)]
    [InlineData("a=stride,a-models=10,b=forward-only", 10)]
    [InlineData("a=trak,a-models=2,b=forward-only,b-models=4", 4)]
    [InlineData("a=trak,b=forward-only", 1)]
    public void The_models_a_spec_needs_include_its_blend_parts(string options, int expected)
    {
        var (_, parsed) = global::Attribution.Cli.Evaluation.EvalRunner.ParseSpec("blend:" + options);
        Assert.Equal(expected, global::Attribution.Cli.Evaluation.EvalRunner.ModelsOf(parsed));
    }

    // Protects checkpoints=J for any method and inside a blend: the run must keep the training checkpoints a spec reads,
    // or stride:checkpoints / blend:a-checkpoints would meet a problem with none saved.
    [Theory]
    [InlineData("tracin", true)]
    [InlineData("stride:checkpoints=10", true)]
    [InlineData("forward-only:checkpoints=1|5", true)]
    [InlineData("forward-only:checkpoints=1", false)]
    [InlineData("stride:models=10", false)]
    [InlineData("blend:a=stride,a-checkpoints=10,b=forward-only", true)]
    [InlineData("blend:a=stride,b=forward-only,b-checkpoints=5", true)]
    [InlineData("blend:a=tracin,b=forward-only", true)]
    [InlineData("blend:a=stride,a-models=10,b=forward-only", false)]
    public void The_specs_that_read_training_checkpoints_include_checkpoint_averages_and_blend_parts(string spec, bool expected)
    {
        var (name, options) = global::Attribution.Cli.Evaluation.EvalRunner.ParseSpec(spec);
        Assert.Equal(expected, global::Attribution.Cli.Evaluation.EvalRunner.NeedsTrainingCheckpoints(name, options));
    }

    [Fact]
    public void A_part_model_count_that_is_not_a_positive_integer_is_refused_by_name() =>
        Assert.Contains("a-models=0", Assert.Throws<global::Attribution.Attribution.MethodOptionException>(() =>
            global::Attribution.Cli.Evaluation.EvalRunner.ModelsOf(new Dictionary<string, string> { ["a-models"] = "0" })).Message);

    [Fact]
    public async Task Grids_are_tuned_on_validation_queries_and_every_LDS_is_reported_on_the_others()
    {
        var run = await Eval("tuned", "grad-dot", "trak:k=16|32,projector=sjlt,damping=1e-2|1", "tracin", "grad-dot:models=2");
        Assert.True(run.ExitCode == 0, run.Output);
        var report = await File.ReadAllTextAsync(Path.Combine(_root, "tuned", "report.md"));
        Assert.Contains("(tuned)", report, StringComparison.Ordinal);
        Assert.Contains("chosen from 4 configurations", report, StringComparison.Ordinal);
        Assert.Contains("over the other 4 queries only", report, StringComparison.Ordinal);
        Assert.Contains("tracin: 1 checkpoints", report, StringComparison.Ordinal); // 1 epoch, checkpoints every 2: the last only
        Assert.Contains("averaged over 2 independently trained models", report, StringComparison.Ordinal);
        var tuning = await File.ReadAllLinesAsync(Path.Combine(_root, "tuned", "tuning.csv"));
        Assert.Equal(1 + 4, tuning.Length); // header + 2 k × 2 damping
        var perQuery = await File.ReadAllLinesAsync(Path.Combine(_root, "tuned", "lds-per-query.csv"));
        // 4 of the 8 queries are validation queries: blank for every method in the reported per-query LDS.
        Assert.Equal(4, perQuery.Skip(1).Count(l => l.Split(',').Skip(1).All(string.IsNullOrEmpty)));
    }

    // Protects the harness's checkpoint plumbing for checkpoints=J beyond forward-only: every model of an ensemble keeps
    // its own training checkpoints (models × checkpoints), and a blend's part reads them (a-checkpoints).
    [Fact]
    public async Task Checkpoint_averages_of_any_method_and_of_ensembles_get_every_models_saved_checkpoints()
    {
        var run = await EvalWith("ckpt", ["--epochs", "2", "--checkpoint-every", "1"],
            "grad-dot:models=2,checkpoints=2", "blend:a=stride,a-checkpoints=2,a-k=12,a-d=2,a-steps=5,b=grad-dot,weight=0.5");
        Assert.True(run.ExitCode == 0, run.Output);
        var report = await File.ReadAllTextAsync(Path.Combine(_root, "ckpt", "report.md"));
        Assert.Contains("averaged over 2 training checkpoints of one model spread over its run (the method precomputed and scored at each); scores averaged over 2 independently trained models", report, StringComparison.Ordinal);
        Assert.Contains("K = 12, d = 2", report, StringComparison.Ordinal);
    }

    // Protects the blend's honesty: weight auto needs no grid to turn the validation split on; the weight is chosen on the
    // validation queries (the row says on how many and lists every weight's LDS) and the LDS is reported on the others,
    // with the paired difference against the first row.
    [Fact]
    public async Task A_blend_with_weight_auto_is_calibrated_on_validation_queries_only()
    {
        var run = await Eval("blend", "grad-dot", "stride:k=20,d=2,rank=2,steps=5,combine=blend,fo-horizon=2");
        Assert.True(run.ExitCode == 0, run.Output);
        var report = await File.ReadAllTextAsync(Path.Combine(_root, "blend", "report.md"));
        Assert.Contains("chosen on LDS on the 4 validation queries (objective 0: ", report, StringComparison.Ordinal);
        Assert.Contains("over the other 4 queries only", report, StringComparison.Ordinal);
        Assert.Contains("Paired differences against the first row (`grad-dot`)", report, StringComparison.Ordinal);
    }

    // rank= truncates simulated responses; spectral propagation on an MLP (the default) stores them exactly, so the option
    // would be ignored: it is refused (exit 2, saying what to do), and honoured where responses are simulated densely.
    [Fact]
    public async Task Rank_with_spectral_propagation_on_an_MLP_is_refused_and_honoured_with_the_trajectory()
    {
        var refused = await Eval("rank-refused", "forward-only:rank=4,horizon=4");
        Assert.True(refused.ExitCode == 2, refused.Output);
        Assert.Contains("rank=4 has no effect with spectral propagation on an MLP", refused.Output, StringComparison.Ordinal);
        Assert.Contains("propagation=trajectory", refused.Output, StringComparison.Ordinal);
        var honoured = await Eval("rank-honoured", "forward-only:rank=4,horizon=4,propagation=trajectory");
        Assert.True(honoured.ExitCode == 0, honoured.Output);
        Assert.Contains("rank=4", await File.ReadAllTextAsync(Path.Combine(_root, "rank-honoured", "report.md")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("trak:models=0", "must be at least 1")]
    [InlineData("trak:k=16,models=2|3", "the ensemble size is not tuned")]
    [InlineData("if:solver=exact,tolerance=1e-3", "the exact solver does not iterate")]
    [InlineData("tracin:weights", "is not key=value")]
    public async Task A_method_request_that_cannot_be_honoured_exits_2_before_retraining(string method, string expected)
    {
        var run = await Eval("refused", method);
        Assert.True(run.ExitCode == 2, run.Output);
        Assert.Contains(expected, run.Output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_root, "cache")), "nothing was retrained");
    }
}
