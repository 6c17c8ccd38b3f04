using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Attribution.Cli.Evaluation;

/// <summary>
/// Writes a benchmark report folder: report.md, SVG plots (LDS per method, latency per method, predicted vs actual
/// scatter per method), and the ground-truth artefacts (subset plan, actual outputs, per-query LDS). The folder is
/// assembled under a temporary name and renamed, so a failed run leaves no partial report.
/// </summary>
internal static class EvalReport
{
    public static void Write(EvalOutcome outcome, string outDir, string commandLine, string hardware)
    {
        var full = Path.GetFullPath(outDir);
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any() && !File.Exists(Path.Combine(full, "report.md")))
        {
            throw new IOException($"output folder {full} exists and is not an earlier report; choose another --out or empty it.");
        }

        var parent = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        if (Directory.Exists(temp))
        {
            Directory.Delete(temp, recursive: true);
        }

        Directory.CreateDirectory(temp);
        try
        {
            WriteInto(outcome, temp, commandLine, hardware);
            if (Directory.Exists(full))
            {
                Directory.Delete(full, recursive: true);
            }

            Directory.Move(temp, full);
        }
        finally
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }
        }
    }

    private static void WriteInto(EvalOutcome o, string dir, string commandLine, string hardware)
    {
        var inv = CultureInfo.InvariantCulture;
        var opt = o.Options;
        int q = o.Data.TestY.Length, m = o.Plan.Count;
        var md = new StringBuilder();
        md.Append("# Attribution evaluation report\n\n");
        md.Append(inv, $"Command: `{commandLine}`\n\n");
        md.Append("## Setting\n\n");
        md.Append(inv, $"- Data: {o.Data.Description}; {o.Data.TrainY.Length} training examples, {q} test queries\n");
        md.Append(inv, $"- Model: MLP {string.Join('-', opt.Widths)}; recipe `{opt.RecipeKey}`\n");
        md.Append(inv, $"- Full-data model test accuracy: {o.FullModelAccuracy:P1}\n");
        md.Append(inv, $"- LDS: m = {m} subsets, α = {opt.Alpha}, {opt.SeedsPerSubset} seed(s) per subset as target{(opt.NoiseCeiling ? ", plus a second seed per subset for the noise ceiling" : string.Empty)}, subset draw seed {opt.Seed}\n");
        md.Append("- Output function: margin `z_y − logsumexp(z_j, j≠y)` of the true class; compared as is (helpfulness sign convention, positive = helps)\n");
        md.Append("- Correlation: Spearman per query over subsets (ties averaged), mean over queries; 95% CI = 1.96·std/√queries\n");
        md.Append(inv, $"- Ground-truth cache: setting `{o.SettingHash}` ({o.ModelsTrained} models trained this run, {o.ModelsFromCache} read from cache; {o.RetrainSeconds:F1} s)\n");
        md.Append(inv, $"- Hardware: {hardware}\n\n");

        md.Append("## LDS and cost per method\n\n");
        if (o.Ceiling is { } c)
        {
            md.Append(inv, $"Noise ceiling (Spearman between seed 1 and seed 2 of every subset model): **{c.Mean:F3}** ± {c.Ci95:F3} ({c.Queries} queries, {c.Skipped} skipped).\n\n");
        }

        if (o.SourceTruth is { } st)
        {
            md.Append(inv, $"Source level: {opt.Sources} sources (half of each source's examples share a class, the rest random), {st.Plan.Count} subsets of round(α·{opt.Sources}) sources, each model retrained on all their examples; a method predicts the sum of its published source scores (`ScoreSources`).");
            if (o.SourceCeiling is { } sc)
            {
                md.Append(inv, $" Source-level noise ceiling: **{sc.Mean:F3}** ± {sc.Ci95:F3}.");
            }

            md.Append("\n\n");
        }

        md.Append("| method | configuration | LDS | ±95% CI | std | queries (skipped) |");
        if (o.SourceTruth is not null)
        {
            md.Append(" source LDS ± 95% CI |");
        }

        if (opt.SeedsPerSubset > 1)
        {
            md.Append(" LDS vs seed mean |");
        }

        md.Append(" precompute (s) | precompute CPU (s) | single query p50 / p99 (ms) | batched per query p50 / p99 (ms) | CPU per query, single / batched (ms) | state (MiB) |\n");
        md.Append("|---|---|---|---|---|---|").Append(o.SourceTruth is not null ? "---|" : string.Empty).Append(opt.SeedsPerSubset > 1 ? "---|" : string.Empty).Append("---|---|---|---|---|---|\n");
        foreach (var r in o.Methods)
        {
            md.Append(inv, $"| {r.Spec} | {r.Description.Replace("|", "/", StringComparison.Ordinal)} | **{r.Lds.Mean:F3}** | {r.Lds.Ci95:F3} | {r.Lds.Std:F3} | {r.Lds.Queries} ({r.Lds.Skipped}) |");
            if (o.SourceTruth is not null)
            {
                md.Append(inv, $" **{r.SourceLds?.Mean:F3}** ± {r.SourceLds?.Ci95:F3} |");
            }

            if (opt.SeedsPerSubset > 1)
            {
                md.Append(inv, $" {r.LdsSeedMean?.Mean:F3} |");
            }

            md.Append(inv, $" {r.PrecomputeSeconds:F2} | {r.PrecomputeCpuSeconds:F1} | {r.SingleP50Ms:F2} / {r.SingleP99Ms:F2} | {r.BatchedP50Ms:F3} / {r.BatchedP99Ms:F3} (batch {r.BatchSize}) | {r.SingleCpuMs:F2} / {r.BatchedCpuMs:F3} | {r.StateBytes / 1048576.0:F1} |\n");
        }

        if (o.Methods.Count > 1)
        {
            var first = o.Methods[0];
            md.Append(inv, $"\nPaired differences against the first row (`{first.Spec}`), per query over the same reported queries: mean ± standard error (± 95 % interval).\n\n| method | LDS − first row | SE | ± 95 % |\n|---|---|---|---|\n");
            foreach (var r in o.Methods.Skip(1))
            {
                var d = global::Attribution.Attribution.Evaluation.MetricSummary.FromPerQuery([.. r.Lds.PerQuery.Zip(first.Lds.PerQuery, (a, b) => a - b)]);
                md.Append(inv, $"| {r.Spec} | {d.Mean:+0.000;-0.000} | {d.Std / Math.Sqrt(d.Queries):F3} | {d.Ci95:F3} |\n");
            }
        }

        if (o.ValidationQueries is { } validation)
        {
            md.Append(inv, $"\nHeld-out validation queries. Tuned methods (`(tuned)`): every configuration of the spec's grid was precomputed and scored on {validation.Length} validation queries (seeded, `--tune-fraction`); the one with the best validation LDS is shown. A blend with weight auto (`stride:combine=blend`) chooses its weight on the same validation queries (its configuration says which). **Every LDS in this table, source level and both noise ceilings included, is over the other {q - validation.Length} queries only** (validation queries are blank in `lds-per-query.csv`, which also holds the per-query source-level LDS). All grid points: `tuning.csv`.\n");
        }

        md.Append(inv, $"\nSingle-query latency: {opt.LatencyQueries} calls with one query each after one warm-up call. Batched: all {q} queries in calls of {opt.BatchSize}, call time divided by queries per call. CPU: the process's CPU time over the precompute, and over each latency loop divided by its queries (every thread, GC included; less distorted than wall clock on a loaded machine).\n\n");
        md.Append("![LDS per method](lds.svg)\n\n![Latency per method](latency.svg)\n\n");

        if (o.Loo is { } loo)
        {
            md.Append(inv, $"## Leave-one-out\n\n{loo.Removed.Length} training examples removed one at a time, {loo.Seeds.Length} seed(s) each (outputs averaged over seeds). Correlation: **Pearson** per query between −score and the measured change in margin, mean over queries.\n\n");
            md.Append("| method | LOO (Pearson) | ±95% CI | queries (skipped) |\n|---|---|---|---|\n");
            foreach (var r in o.Methods.Where(r => r.Loo is not null))
            {
                md.Append(inv, $"| {r.Spec} | {r.Loo!.Mean:F4} | {r.Loo.Ci95:F4} | {r.Loo.Queries} ({r.Loo.Skipped}) |\n");
            }

            md.Append('\n');
        }

        var topRows = o.Methods.Where(r => r.TopK is not null).ToList();
        if (topRows.Count > 0)
        {
            var t0 = topRows[0].TopK!;
            md.Append(inv, $"## Top-k removal\n\nFor each of {t0.Queries.Length} sampled test queries (seeded), remove its k = {t0.K} top-scored training examples, retrain (seed {t0.Seeds[0]}), and measure the drop in that query's margin; baseline: remove k random examples.\n\n");
            md.Append("| method | mean margin drop, top-k | ±95% CI | mean drop, random-k | ±95% CI |\n|---|---|---|---|---|\n");
            foreach (var r in topRows)
            {
                md.Append(inv, $"| {r.Spec} | {r.TopK!.TopK.Mean:F3} | {r.TopK.TopK.Ci95:F3} | {r.TopK.Random.Mean:F3} | {r.TopK.Random.Ci95:F3} |\n");
            }

            md.Append('\n');
        }

        md.Append("## Predicted vs actual\n\nFor each method, the query with the median LDS: predicted output (sum of the subset's scores) against the margin of the model retrained on that subset.\n\n");
        var scatterFiles = new List<string>();
        foreach (var (r, k) in o.Methods.Select((r, k) => (r, k)))
        {
            var file = $"scatter-{k:D2}-{Sanitize(r.Spec)}.svg";
            int query = MedianQuery(r.Lds.PerQuery);
            var points = Enumerable.Range(0, m).Select(j => (r.Predicted[(j * q) + query], o.Truth.Primary[(j * q) + query])).ToList();
            File.WriteAllText(Path.Combine(dir, file), Svg.Scatter($"{r.Spec}: test query {o.Data.TestIds[query]}", "predicted (sum of subset scores)",
                "actual margin after retraining", points, $"Spearman {r.Lds.PerQuery[query].ToString("F3", inv)} (median query)"));
            md.Append(inv, $"![{r.Spec}]({file})\n");
        }

        md.Append("\n## Artefacts\n\n- `plan.json`: subset index lists (training-pool indices) and retraining seeds\n- `ground-truth.csv`: actual margins, one row per (subset, seed replicate), one column per test id\n- `lds-per-query.csv`: LDS of every query for every method (empty where skipped)\n");

        var lds = o.Methods.Select(r => (r.Spec, r.Lds.Mean, r.Lds.Ci95)).ToList();
        File.WriteAllText(Path.Combine(dir, "lds.svg"), Svg.BarChart($"LDS (m = {m}, α = {opt.Alpha}, {q} queries)", "mean Spearman", lds,
            o.Ceiling is { } ceil ? ("noise ceiling", ceil.Mean) : null));
        File.WriteAllText(Path.Combine(dir, "latency.svg"), Svg.BarChart("Per-query latency, single-query calls (p50)", "milliseconds (log)",
            o.Methods.Select(r => (r.Spec, r.SingleP50Ms, double.NaN)).ToList(), logScale: true));
        File.WriteAllText(Path.Combine(dir, "plan.json"), JsonSerializer.Serialize(new
        {
            poolSize = o.Plan.PoolSize,
            alpha = o.Plan.Alpha,
            drawSeed = o.Plan.DrawSeed,
            trainIds = o.Data.TrainIds,
            testIds = o.Data.TestIds,
            subsets = o.Plan.Subsets,
            seeds = o.Plan.Seeds,
        }));
        var gt = new StringBuilder();
        gt.Append("subset,replicate,seed,").AppendJoin(',', o.Data.TestIds).Append('\n');
        for (int r = 0; r < o.Truth.Replicates.Count; r++)
        {
            for (int j = 0; j < m; j++)
            {
                gt.Append(inv, $"{j},{r},{o.Plan.Seeds[j][r]}");
                for (int k = 0; k < q; k++)
                {
                    gt.Append(',').Append(o.Truth.Replicates[r][(j * q) + k].ToString("R", inv));
                }

                gt.Append('\n');
            }
        }

        File.WriteAllText(Path.Combine(dir, "ground-truth.csv"), gt.ToString());
        var pq = new StringBuilder();
        var sourced = o.Methods.Where(r => r.SourceLds is not null).ToList();
        pq.Append("test_id,").AppendJoin(',', o.Methods.Select(r => r.Spec.Replace(',', ';')))
            .AppendJoin(string.Empty, sourced.Select(r => $",{r.Spec.Replace(',', ';')} (source level)")).Append('\n');
        for (int k = 0; k < q; k++)
        {
            pq.Append(o.Data.TestIds[k].ToString(inv));
            foreach (var r in o.Methods)
            {
                pq.Append(',').Append(double.IsNaN(r.Lds.PerQuery[k]) ? string.Empty : r.Lds.PerQuery[k].ToString("F6", inv));
            }

            foreach (var r in sourced)
            {
                pq.Append(',').Append(double.IsNaN(r.SourceLds!.PerQuery[k]) ? string.Empty : r.SourceLds.PerQuery[k].ToString("F6", inv));
            }

            pq.Append('\n');
        }

        File.WriteAllText(Path.Combine(dir, "lds-per-query.csv"), pq.ToString());
        if (o.Methods.Any(r => r.Tuning is not null))
        {
            var tuning = new StringBuilder("method,configuration,validation_lds\n");
            foreach (var r in o.Methods.Where(r => r.Tuning is not null))
            {
                foreach (var (config, value) in r.Tuning!)
                {
                    tuning.Append(inv, $"\"{r.Spec}\",\"{config}\",{value:F6}\n");
                }
            }

            File.WriteAllText(Path.Combine(dir, "tuning.csv"), tuning.ToString());
        }

        File.WriteAllText(Path.Combine(dir, "report.md"), md.ToString());
    }

    private static int MedianQuery(double[] perQuery)
    {
        var defined = perQuery.Select((v, i) => (v, i)).Where(t => !double.IsNaN(t.v)).OrderBy(t => t.v).ToList();
        return defined.Count == 0 ? 0 : defined[defined.Count / 2].i;
    }

    private static string Sanitize(string s) => new(s.Select(ch => char.IsLetterOrDigit(ch) || ch == '-' ? ch : '_').ToArray());
}
