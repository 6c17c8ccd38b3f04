using System.Globalization;
using System.Text;
using Attribution.Attribution.Contamination;

namespace Attribution.Cli.Evaluation;

/// <summary>One evidence configuration's cross-fitted scores: span alone, one method alone, or span + one method.</summary>
internal sealed record ContaminationColumn(string Name, double[] Scores, double[] Thresholds, ContaminationPolicyOptions Deployed)
{
    public bool Alert(int query) => Scores[query] > Thresholds[query];
}

/// <summary>
/// Fits and evaluates the policies of <see cref="ContaminationRunner"/>'s evidence: for each configuration, cross-fitting
/// over item folds (<see cref="ContaminationCalibration.CrossFit"/>: weights and the 1 % threshold chosen on the other
/// folds' queries of all runs), then recall and AUROC per form × rate × multiplicity, and the false-alert rate on clean queries.
/// </summary>
internal static class ContaminationTable
{
    public static IReadOnlyList<ContaminationColumn> Columns(ContaminationData data, ContaminationOptions options)
    {
        var q = data.Queries;
        var leaked = q.Select(x => x.Leaked).ToArray();
        var folds = q.Select(x => x.Item.Id % options.Folds).ToArray();
        var columns = new List<ContaminationColumn>();
        void Add(string name, ContaminationEvidenceKind kind, int method)
        {
            var evidence = q.Select(x => (x.Span, method < 0 ? AttributionEvidence.None : x.Attribution[method])).ToArray();
            var (scores, thresholds) = ContaminationCalibration.CrossFit(evidence, leaked, folds, kind, options.FalseAlertRate);
            columns.Add(new ContaminationColumn(name, scores, thresholds, ContaminationCalibration.Fit(evidence, leaked, kind, options.FalseAlertRate)));
        }

        Add("exact span", ContaminationEvidenceKind.Span, -1);
        Add("span + text", ContaminationEvidenceKind.StageOne, -1);
        for (int m = 0; m < options.Methods.Count; m++)
        {
            Add(options.Methods[m], ContaminationEvidenceKind.Attribution, m);
        }

        for (int m = 0; m < options.Methods.Count; m++)
        {
            Add("exact span + " + options.Methods[m], ContaminationEvidenceKind.Span | ContaminationEvidenceKind.Attribution, m);
            Add("span + text + " + options.Methods[m], ContaminationEvidenceKind.Combined, m);
        }

        return columns;
    }

    /// <summary>Share of the leaked queries selected that alert.</summary>
    public static double Recall(ContaminationData data, ContaminationColumn c, Func<ContaminationQuery, bool> select)
    {
        var idx = Enumerable.Range(0, data.Queries.Count).Where(i => data.Queries[i].Leaked && select(data.Queries[i])).ToArray();
        return idx.Length == 0 ? double.NaN : idx.Count(c.Alert) / (double)idx.Length;
    }

    /// <summary>AUROC of the selected leaked queries against the clean queries of the same runs.</summary>
    public static double Auroc(ContaminationData data, ContaminationColumn c, Func<ContaminationQuery, bool> select)
    {
        var runs = data.Queries.Where(x => x.Leaked && select(x)).Select(x => x.Run).ToHashSet();
        var idx = Enumerable.Range(0, data.Queries.Count).Where(i => runs.Contains(data.Queries[i].Run) && (!data.Queries[i].Leaked || select(data.Queries[i]))).ToArray();
        return AlertMetrics.Auroc([.. idx.Select(i => c.Scores[i])], [.. idx.Select(i => data.Queries[i].Leaked)]);
    }

    /// <summary>Share of clean queries (all runs) that alert, and their count.</summary>
    public static (double Rate, int Alerts, int Total) FalseAlerts(ContaminationData data, ContaminationColumn c)
    {
        var idx = Enumerable.Range(0, data.Queries.Count).Where(i => !data.Queries[i].Leaked).ToArray();
        int alerts = idx.Count(c.Alert);
        return ((double)alerts / idx.Length, alerts, idx.Length);
    }

    public static string Report(ContaminationData data, ContaminationOptions options, IReadOnlyList<ContaminationColumn> columns, string commandLine, string hardware)
    {
        var inv = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.Append("# Contamination benchmark report\n\n");
        md.Append(inv, $"Command: `{commandLine}`  \nHardware: {hardware}\n\n## Setting\n\n");
        md.Append(inv, $"- Model: GPT-2 layout {options.Config}, byte tokens, trained from scratch per run (`{options.Recipe.Key}`), seed {options.Seed}\n");
        md.Append(inv, $"- Training corpus: {options.TrainDocuments} documents of `{options.Corpus}` (8..{options.Config.Context + 1} tokens), the same in every run, plus the injected copies\n");
        md.Append(inv, $"- Items: question/answer pairs from `{options.Dictionary}` (\"Q: term?\\nA: definition\"); {data.Candidates} usable entries; {data.Deduplicated} drawn items dropped for sharing a span of >= {options.DedupSpan} tokens with the clean corpus\n");
        md.Append(inv, $"- Injection: per run one rate x multiplicity; rate = distinct leaked items per form / training documents ({string.Join(", ", options.Rates.Select(r => $"{r:P1} = {options.ItemsPerForm(r)} items"))} per form), each inserted `multiplicity` times in each of the 3 forms (disjoint items per form and run)\n");
        md.Append(inv, $"- Queries per run: every leaked item and {options.CleanItems} clean items (never injected; each run its own, so no clean item recurs), asked in the canonical form; span evidence: longest span of >= {options.MinSpan} tokens; attribution evidence per method with the span's documents flagged\n");
        md.Append(inv, $"- Policies: per column a logistic score fitted by {options.Folds}-fold cross-fitting over items (each query scored by a policy fitted, and thresholded for at most {options.FalseAlertRate:P0} false alerts with confidence {ContaminationCalibration.DefaultConfidence:P0} over the calibration draw, on the other folds' queries of all runs: never on itself)\n\n");
        foreach (var line in data.RunLines)
        {
            md.Append("- ").Append(line).Append('\n');
        }

        md.Append(inv, $"\nTrainings: {data.TrainingsDone} trained, {data.TrainingsCached} from cache. Span lookup: {data.SpanMsPerQuery:F3} ms/query wall.\n\n");
        double top = options.Rates.Max();
        md.Append(inv, $"## Summary at {top:P1} injection (multiplicities pooled)\n\n| evidence | false alerts (clean, all runs) |");
        foreach (var form in Enum.GetValues<LeakForm>())
        {
            md.Append(inv, $" {form} recall | {form} AUROC |");
        }

        md.Append("\n|---|---|").Append(string.Concat(Enumerable.Repeat("---|---|", 3))).Append('\n');
        foreach (var c in columns)
        {
            var (rate, alerts, total) = FalseAlerts(data, c);
            md.Append(inv, $"| {c.Name} | {rate:P1} ({alerts}/{total}) |");
            foreach (var form in Enum.GetValues<LeakForm>())
            {
                md.Append(inv, $" {Recall(data, c, x => x.Form == form && x.Rate == top):P0} | {Auroc(data, c, x => x.Form == form && x.Rate == top):F3} |");
            }

            md.Append('\n');
        }

        md.Append("\n## Recall at the calibrated threshold, per form, rate and multiplicity\n\n");
        Cells(md, data, options, columns, (c, sel) => Recall(data, c, sel).ToString("P0", inv));
        md.Append("\n## AUROC (cell's leaked items vs the same runs' clean items)\n\n");
        Cells(md, data, options, columns, (c, sel) => Auroc(data, c, sel).ToString("F3", inv));
        md.Append("\n## Policies fitted on all queries (what a Scorer would be configured with: Scorer:Contamination Weights, Bias, Threshold)\n\n");
        md.Append("| evidence | kind | ").Append(string.Join(" | ", ContaminationFeatures.Names)).Append(" | bias | threshold |\n|---|---|").Append(string.Concat(ContaminationFeatures.Names.Select(_ => "---|"))).Append("---|---|\n");
        foreach (var c in columns)
        {
            md.Append(inv, $"| {c.Name} | {c.Deployed.Evidence} | ").Append(string.Join(" | ", c.Deployed.Weights.Select(w => w.ToString("G4", inv))))
                .Append(inv, $" | {c.Deployed.Bias:G4} | {c.Deployed.Threshold:G6} |\n");
        }

        md.Append("\n## Clean queries that alert, with their evidence (stage-one columns)\n\n");
        md.Append("| column | run | item | exact span (tokens, corpus count) | text coverage | text overlap | document | score | threshold |\n|---|---|---|---|---|---|---|---|---|\n");
        foreach (var c in columns.Where(c => ContaminationFeatures.Uses(c.Deployed.Evidence, ContaminationFeatures.Names.ToList().IndexOf("text_overlap"))))
        {
            foreach (int i in Enumerable.Range(0, data.Queries.Count).Where(i => !data.Queries[i].Leaked && c.Alert(i)))
            {
                var x = data.Queries[i];
                var doc = x.Span.AllDocuments.FirstOrDefault();
                md.Append(inv, $"| {c.Name} | {x.Run} | {x.Item.Term}: {x.Item.Answer} | {x.Span.Length}, {x.Span.Count} | {x.Span.Text.Coverage:F2} | {x.Span.Text.Overlap:F2} | {(doc is null ? "-" : $"{doc.Id} (source {doc.SourceId})")} | {c.Scores[i]:G4} | {c.Thresholds[i]:G4} |\n");
            }
        }

        md.Append("\n## Cost per run and method\n\n| run | method | precompute s wall | precompute s CPU | score ms/query wall | score CPU ms/query |\n|---|---|---|---|---|---|\n");
        foreach (var k in data.Costs)
        {
            md.Append(inv, $"| {k.Run} | {k.Spec} | {k.PrecomputeSeconds:F1} | {k.PrecomputeCpuSeconds:F1} | {k.ScoreMsPerQuery:F1} | {k.ScoreCpuMsPerQuery:F1} |\n");
        }

        return md.ToString();
    }

    private static void Cells(StringBuilder md, ContaminationData data, ContaminationOptions options, IReadOnlyList<ContaminationColumn> columns, Func<ContaminationColumn, Func<ContaminationQuery, bool>, string> value)
    {
        var inv = CultureInfo.InvariantCulture;
        md.Append("| form | rate | copies | leaked |").Append(string.Concat(columns.Select(c => $" {c.Name} |"))).Append('\n');
        md.Append("|---|---|---|---|").Append(string.Concat(columns.Select(_ => "---|"))).Append('\n');
        foreach (var form in Enum.GetValues<LeakForm>())
        {
            foreach (double rate in options.Rates)
            {
                foreach (int m in options.Multiplicities)
                {
                    bool Select(ContaminationQuery x) => x.Form == form && x.Rate == rate && x.Multiplicity == m;
                    int n = data.Queries.Count(Select);
                    md.Append(inv, $"| {form} | {rate:P1} | {m} | {n} |").Append(string.Concat(columns.Select(c => $" {value(c, Select)} |"))).Append('\n');
                }
            }
        }
    }
}
