namespace Attribution.Integration.Tests.Services;

/// <summary>
/// <c>pipeline bench lm-lds</c> as a user runs it, at a tiny size (two fortune files, a width-8 GPT, 3 subsets × 2
/// seeds): the ground truth is trained once and read back from the cache, the report holds the noise ceiling and a row
/// per method (TracIn over the fine-tune's epoch checkpoints included), and a mistyped method is refused before any training.
/// </summary>
public sealed class LmLdsBenchTests
{
    private static string[] Args(string root, params string[] methods) =>
    [
        "bench", "lm-lds", "--corpus", "fortunes/bofh-excuses,fortunes/kids", "--d-model", "8", "--layers", "1", "--heads", "1",
        "--base-docs", "40", "--pool", "16", "--queries", "4", "--subsets", "3", "--source-subsets", "0", "--base-epochs", "1",
        "--epochs", "1", "--latency-queries", "2", "--query-batch", "2", "--cache", Path.Combine(root, "cache"), "--out", Path.Combine(root, "report"),
        .. methods.SelectMany(m => new[] { "--method", m }),
    ];

    [Fact]
    public async Task GroundTruth_IsTrainedOnce_ThenReadFromTheCache_AndEveryMethodGetsARow()
    {
        var root = Path.Combine(Path.GetTempPath(), "lm-lds-test-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            // STRIDE's exact-measurement diagnostic has no probe set to export: its row is scored all the same (it used to be
            // "Not run"); the residual-form operators run through the CLI.
            const string exact = "stride:k=4,d=2,rank=2,steps=2,linearity=0,operators=finetune";
            const string residual = "stride:k=4,d=2,rank=2,steps=2,linearity=0,form=residual";
            var first = await CliProcess.RunAsync(CliProcess.Dll, Args(root, "bm25:ngram=3", "grad-dot", "repsim", "tracin", exact, residual), TimeSpan.FromSeconds(300));
            Assert.True(first.ExitCode == 0, first.Output);
            // base + full-pool model + its 1 epoch checkpoint + 3 subsets × 2 seeds.
            Assert.Contains("ground truth: 9 models trained, 0 from cache", first.Output, StringComparison.Ordinal);
            var report = await File.ReadAllTextAsync(Path.Combine(root, "report", "report.md"));
            Assert.Contains("Noise ceiling (Spearman between the two seeds of every subset model): document level", report, StringComparison.Ordinal);
            Assert.Contains("| `bm25:ngram=3` |", report, StringComparison.Ordinal);
            Assert.Contains("| `grad-dot` |", report, StringComparison.Ordinal);
            Assert.Contains("| `repsim` |", report, StringComparison.Ordinal);
            // TracIn is handed the reference fine-tune's epoch checkpoints (it was refused when the harness passed them as models).
            Assert.Contains("| `tracin` | tracin: 1 checkpoints", report, StringComparison.Ordinal);
            Assert.Contains($"| `{exact}` | STRIDE (measurements from fine-tunes on every subset", report, StringComparison.Ordinal);
            Assert.Contains($"| `{residual}` | STRIDE (residual form,", report, StringComparison.Ordinal);
            Assert.DoesNotContain("Not run:", report, StringComparison.Ordinal);
            var truth = await File.ReadAllLinesAsync(Path.Combine(root, "report", "ground-truth.csv"));
            Assert.Equal(1 + (2 * 3 * 4), truth.Length);

            // Second run from the cache: forward-only, its fitted compression at k = the 16 pool documents (exact, so the same
            // LDS; it imports the first row's probe set), the fixed/per-document split and the energy report.
            const string fo = "forward-only:propagation=spectral,horizon=2,batch=4,operator-rank=2,rank=0";
            var second = await CliProcess.RunAsync(CliProcess.Dll,
                [.. Args(root, "bm25:ngram=3", fo, fo + ",compress=16", "trak:k=8,damping=1,models=2"), "--scale-documents", "2,3", "--scale-passes", "2", "--energy-documents", "20",
                    "--readout-documents", "4", "--readout-batches", "1,2"], TimeSpan.FromSeconds(300));
            Assert.True(second.ExitCode == 0, second.Output);
            Assert.Contains("ground truth: 0 models trained, 9 from cache", second.Output, StringComparison.Ordinal);
            Assert.Equal(truth, await File.ReadAllLinesAsync(Path.Combine(root, "report", "ground-truth.csv")));
            var lines = (await File.ReadAllLinesAsync(Path.Combine(root, "report", "report.md"))).ToList();
            // First: the main table (a paired-difference table lists the rows again).
            string Lds(string spec) => lines.First(l => l.StartsWith($"| `{spec}` |", StringComparison.Ordinal)).Split('|')[3].Trim();
            Assert.Equal(Lds(fo), Lds(fo + ",compress=16"));
            Assert.Contains("fixed CPU ms/query | CPU µs per added document |", lines.First(l => l.StartsWith("| method |", StringComparison.Ordinal)), StringComparison.Ordinal);
            Assert.Contains(lines, l => l.StartsWith("Fixed and per-document CPU: every method timed at n = 16, 32, 48", StringComparison.Ordinal));
            // One timing row per method, a CPU time at each n, the slope and the intercept with their standard errors.
            var timing = lines.Where(l => l.StartsWith("| `", StringComparison.Ordinal) && l.Split('|').Length == 8).ToList();
            Assert.Equal(4, timing.Count(l => l.Contains(" ± ", StringComparison.Ordinal)));
            Assert.Contains("x3 (48 documents): built (import or precompute) in", second.Output, StringComparison.Ordinal);
            Assert.Contains(lines, l => l.Contains("k =   32: in-sample 100.0 % (fitted on 20); held out", StringComparison.Ordinal));
            // models=2 reaches the method: TRAK ensembles the reference fine-tune and one more (it used to be stripped: one model).
            Assert.Contains(lines, l => l.StartsWith("| `trak:k=8,damping=1,models=2` | trak: k=8, projector=Gaussian, models=2,", StringComparison.Ordinal));
            // The per-document part timed apart from the fixed part: one row per split method and batch size (BM25 has no
            // split; TRAK does), at n = 16 and 64, with a slope ± SE and the fixed part's own time.
            var readout = lines.Where(l => l.StartsWith("| `", StringComparison.Ordinal) && l.Split('|').Length == 9).ToList();
            Assert.Equal(6, readout.Count);
            Assert.All(readout, l => Assert.Contains("| 16, 64 |", l, StringComparison.Ordinal));
            Assert.Equal(2, readout.Count(l => l.StartsWith($"| `{fo},compress=16` | ", StringComparison.Ordinal)));
            Assert.DoesNotContain(readout, l => l.Contains("bm25", StringComparison.Ordinal));
            Assert.Contains("per-document part, batch 2: fixed part (prepare)", second.Output, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    [Fact]
    public async Task A_mistyped_method_is_refused_before_any_training()
    {
        var root = Path.Combine(Path.GetTempPath(), "lm-lds-test-" + Guid.NewGuid().ToString("N")[..8]);
        var result = await CliProcess.RunAsync(CliProcess.Dll, Args(root, "bm26"), TimeSpan.FromSeconds(120));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("Unknown attribution method 'bm26'", result.Output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(root, "cache")));
    }
}
