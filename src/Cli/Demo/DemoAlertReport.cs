using System.Globalization;
using System.Text;
using Attribution.Attribution.Contamination;
using Attribution.Contracts;
using Attribution.Scorer;

namespace Attribution.Cli.Demo;

/// <summary>A query of the image demo's alert calibration or evaluation: the query, the flagged training item it copies (null for a clean one), and its split.</summary>
internal sealed record AlertQuery(ModelQuery Query, long? OwnId, string Split);

/// <summary>
/// One query's contamination evidence as the Scorer assesses it (<see cref="AlertPolicy.Assess"/>), with what says why
/// a leaked item is or is not caught: where its own training copy ranks by relative influence (score ÷ response norm),
/// that copy's share of the positive relative influence, how large the copy's response norm is among all examples' (its
/// self-influence scale), where the best flagged example ranks, and the input's relative distance to the nearest flagged item.
/// </summary>
internal sealed record AlertEvidenceRow(AlertQuery Query, SpanEvidence Span, AttributionEvidence Attribution, int OwnRank, double OwnShare, double OwnNormPercentile, int FlaggedRank)
{
    /// <summary>The own copy's s(q,i) ÷ s(i,i) (NaN for a clean query or an unknown self-influence).</summary>
    public double OwnSelfRatio { get; init; } = double.NaN;

    /// <summary>RelatIF-style lead: ln(best flagged ÷ best unflagged) of s(q,j) ÷ √s(j,j) over every example with a positive self-influence.</summary>
    public double RelatifLead { get; init; } = double.NaN;

    public bool Leaked => Query.OwnId is not null;
    public double InputDistance => Span.Input.Distance;
}

/// <summary>
/// The image demo's alert evidence per query (<c>alert-evidence.tsv</c>) and which evidence separates leaked from clean
/// queries: per-feature AUROC, and the attribution-only and input-match policies' catches and false alerts on the same
/// served queries. Pure compute over the scorer given, plus the file it writes.
/// </summary>
internal static class DemoAlertReport
{
    /// <summary>
    /// Every probed example's self-influence s(j,j) under <paramref name="scorer"/>'s readout (its training image scored
    /// as a query, read at its own column): for the RelatIF-style comparison only (the Scorer reads the flagged items'
    /// alone, <see cref="FlaggedItems"/>).
    /// </summary>
    public static float[] AllSelfInfluence(IQueryScorer scorer, DemoRun run, int batch = 64)
    {
        var ids = scorer.ExampleIds;
        var images = run.Data.Train.Select([.. ids.Select(id => (int)id)], run.Manifest.Recipe.Data.Normalization);
        var self = new float[ids.Count];
        for (int start = 0; start < ids.Count; start += batch)
        {
            int n = Math.Min(batch, ids.Count - start);
            var part = Enumerable.Range(start, n).Select(j => new ModelQuery($"self-{ids[j]}", scorer.Version, images.Inputs.AsSpan(j * images.Features, images.Features).ToArray(), null, DateTimeOffset.UnixEpoch)).ToArray();
            var scores = scorer.Score(part);
            for (int q = 0; q < n; q++)
            {
                self[start + q] = scores.ExampleRow(q).Span[start + q];
            }
        }

        return self;
    }

    public static List<AlertEvidenceRow> Measure(IQueryScorer scorer, AlertPolicy policy, IReadOnlySet<long> flagged, IReadOnlyList<AlertQuery> queries, FlaggedItems? items,
        float[]? allSelf = null, int batch = 64)
    {
        var ids = scorer.ExampleIds;
        var norms = scorer.ExampleNorms.ToArray();
        var column = new Dictionary<long, int>(ids.Count);
        for (int i = 0; i < ids.Count; i++)
        {
            column[ids[i]] = i;
        }

        var flaggedColumns = ids.Select((id, i) => (id, i)).Where(x => flagged.Contains(x.id)).Select(x => x.i).ToArray();
        var rows = new List<AlertEvidenceRow>(queries.Count);
        var relative = new double[ids.Count];
        for (int start = 0; start < queries.Count; start += batch)
        {
            var part = queries.Skip(start).Take(batch).ToArray();
            var scores = scorer.Score([.. part.Select(p => p.Query)]);
            for (int q = 0; q < part.Length; q++)
            {
                var row = scores.ExampleRow(q).Span;
                double positive = 0;
                for (int i = 0; i < relative.Length; i++)
                {
                    relative[i] = norms[i] > 0 ? row[i] / norms[i] : 0;
                    positive += Math.Max(relative[i], 0);
                }

                int Rank(int c) => 1 + relative.Count(r => r > relative[c]);
                int own = part[q].OwnId is { } o && column.TryGetValue(o, out var c) ? c : -1;
                int bestFlagged = flaggedColumns.Length == 0 ? -1 : flaggedColumns.MaxBy(f => relative[f]);
                var a = policy.Assess(row, norms, ids, scorer.ExampleSourceIds, null, part[q].Query.Features, items);
                double relatifLead = double.NaN;
                if (allSelf is not null)
                {
                    double bestIn = double.NegativeInfinity, bestOut = double.NegativeInfinity;
                    for (int j = 0; j < allSelf.Length; j++)
                    {
                        if (allSelf[j] > 0)
                        {
                            double r = row[j] / Math.Sqrt(allSelf[j]);
                            if (flagged.Contains(ids[j]))
                            {
                                bestIn = Math.Max(bestIn, r);
                            }
                            else
                            {
                                bestOut = Math.Max(bestOut, r);
                            }
                        }
                    }

                    relatifLead = bestIn > 0 && bestOut > 0 ? Math.Log(bestIn / bestOut) : bestIn > 0 ? 5 : -5;
                }

                var selfOfOwn = own >= 0 && items is not null ? items.SelfInfluence[own] : float.NaN;
                rows.Add(new AlertEvidenceRow(part[q], a.Span, a.Attribution,
                    own < 0 ? 0 : Rank(own),
                    own < 0 || positive <= 0 ? 0 : Math.Max(relative[own], 0) / positive,
                    own < 0 ? double.NaN : norms.Count(n => n < norms[own]) / (double)norms.Length,
                    bestFlagged < 0 ? 0 : Rank(bestFlagged))
                {
                    OwnSelfRatio = selfOfOwn > 0 ? row[own] / selfOfOwn : double.NaN,
                    RelatifLead = relatifLead,
                });
            }
        }

        return rows;
    }

    /// <summary>The features compared, with a sign so that larger means "more like a leak".</summary>
    private static readonly (string Name, Func<AlertEvidenceRow, double> Value)[] Features =
    [
        ("attr_top_share", r => r.Attribution.TopShare),
        ("attr_top_z", r => r.Attribution.TopZ),
        ("attr_flagged_share", r => r.Attribution.FlaggedShare),
        ("attr_flagged_lead", r => r.Attribution.FlaggedLead),
        ("−rank of the best flagged example", r => -r.FlaggedRank),
        ("−input distance to the nearest flagged item", r => -r.InputDistance),
        ("attr_self_match (−log10 min over flagged |1 − s(q,i)/s(i,i)|, ÷ 6)", r => r.Attribution.SelfMatch),
        ("max over flagged of s(q,i)/s(i,i)", r => r.Attribution.SelfRatio),
        ("min(max s(q,i)/s(i,i), 1)", r => Math.Min(r.Attribution.SelfRatio, 1)),
        ("RelatIF lead ln(best flagged ÷ best unflagged s(q,j)/√s(j,j))", r => r.RelatifLead),
    ];

    /// <summary>Lines for the console, and the per-query table written to <paramref name="path"/>.</summary>
    public static IReadOnlyList<string> Summarize(IReadOnlyList<AlertEvidenceRow> served, (string Name, AlertPolicy Policy)[] policies, string path)
    {
        var lines = new List<string>();
        var labels = served.Select(r => r.Leaked).ToArray();
        lines.Add("Which evidence separates the served leaked items from the clean images (AUROC, 1 = every leaked item above every clean one): "
            + string.Join(", ", Features.Select(f => string.Create(CultureInfo.InvariantCulture, $"{f.Name} {AlertMetrics.Auroc([.. served.Select(f.Value)], labels):F3}"))) + ".");
        var leaked = served.Where(r => r.Leaked).ToList();
        foreach (var (name, policy) in policies)
        {
            bool Alerts(AlertEvidenceRow r) => policy.Calibrated.Assess(r.Span, r.Attribution).Alert;
            var caught = leaked.Where(Alerts).ToList();
            var missed = leaked.Where(r => !Alerts(r)).ToList();
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"{name}: caught {caught.Count} of {leaked.Count} leaked, {served.Count(r => !r.Leaked && Alerts(r))} false alerts on {served.Count(r => !r.Leaked)} clean (threshold {policy.Calibrated.Options.Threshold:G4}); ")
                + $"caught: {Describe(caught)}; missed: {Describe(missed)}.");
        }

        var tsv = new StringBuilder("query\tsplit\town_id\town_rank\town_share\town_norm_percentile\tflagged_rank\ttop_share\ttop_z\tflagged_share\tflagged_lead\tinput_distance\tnearest_flagged_id\tself_ratio\tself_match\town_self_ratio\trelatif_lead");
        tsv.Append(string.Concat(policies.Select(p => $"\tscore[{p.Name}]\talert[{p.Name}]"))).Append('\n');
        foreach (var r in served)
        {
            tsv.Append(CultureInfo.InvariantCulture, $"{r.Query.Query.QueryId}\t{r.Query.Split}\t{r.Query.OwnId}\t{r.OwnRank}\t{r.OwnShare:G4}\t{r.OwnNormPercentile:G3}\t{r.FlaggedRank}\t");
            tsv.Append(CultureInfo.InvariantCulture, $"{r.Attribution.TopShare:G4}\t{r.Attribution.TopZ:G4}\t{r.Attribution.FlaggedShare:G4}\t{r.Attribution.FlaggedLead:G4}\t{r.InputDistance:G4}\t{r.Span.Input.DocumentId}\t{r.Attribution.SelfRatio:G4}\t{r.Attribution.SelfMatch:G4}\t{r.OwnSelfRatio:G4}\t{r.RelatifLead:G4}");
            foreach (var (_, policy) in policies)
            {
                var a = policy.Calibrated.Assess(r.Span, r.Attribution);
                tsv.Append(CultureInfo.InvariantCulture, $"\t{a.Score:G4}\t{(a.Alert ? 1 : 0)}");
            }

            tsv.Append('\n');
        }

        File.WriteAllText(path, tsv.ToString());
        return lines;
    }

    /// <summary>
    /// CPU time of the input match (<see cref="FlaggedInputIndex.Find"/>) per query over <paramref name="queries"/>,
    /// repeated until it used 0.2 s of process CPU (the services are idle by then); a line for the console.
    /// </summary>
    public static string InputMatchCost(FlaggedInputIndex index, IReadOnlyList<AlertQuery> queries)
    {
        var inputs = queries.Select(q => q.Query.Features as float[] ?? [.. q.Query.Features!]).ToArray();
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        var start = self.TotalProcessorTime;
        long done = 0;
        double sink = 0;
        do
        {
            foreach (var x in inputs)
            {
                sink += index.Find(x).Distance;
            }

            done += inputs.Length;
            self.Refresh();
        }
        while ((self.TotalProcessorTime - start).TotalSeconds < 0.2);

        double micros = (self.TotalProcessorTime - start).TotalMicroseconds / done;
        return string.Create(CultureInfo.InvariantCulture, $"Input match: {micros:F1} µs CPU per query ({index.Count} flagged items x {index.Features} features, brute force, {done:N0} lookups; checksum {sink:G3}).");
    }

    /// <summary>
    /// Altered copies of the served leaked items (not served; scored here): Gaussian noise of <paramref name="sigma"/>
    /// (in normalised pixel units, seeded) and a shift by one pixel to the right; per policy, how many are still caught,
    /// and the median input distance: where the input match stops being evidence.
    /// </summary>
    public static IReadOnlyList<string> Altered(IQueryScorer scorer, IReadOnlySet<long> flagged, IReadOnlyList<AlertQuery> leaked, (string Name, AlertPolicy Policy)[] policies,
        int width, double sigma, ulong seed, FlaggedItems? items, float[]? allSelf)
    {
        var rng = new Engine.Rng(seed);
        var noisy = leaked.Select(q => q with { Query = q.Query with { QueryId = q.Query.QueryId + "-noise", Features = [.. q.Query.Features!.Select(v => v + (float)(sigma * rng.NextNormal()))] } }).ToList();
        var shifted = leaked.Select(q => q with
        {
            Query = q.Query with { QueryId = q.Query.QueryId + "-shift", Features = [.. q.Query.Features!.Select((_, i) => i % width == 0 ? q.Query.Features![i] : q.Query.Features![i - 1])] },
        }).ToList();
        var lines = new List<string>();
        foreach (var (name, variant) in new[] { (string.Create(CultureInfo.InvariantCulture, $"noise sigma {sigma}"), noisy), ("shifted one pixel", shifted) })
        {
            var rows = Measure(scorer, policies[^1].Policy, flagged, variant, items, allSelf);
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"Altered copies of the {rows.Count} leaked items ({name}, not served): median input distance {Median(rows.Select(r => r.InputDistance)):F3}, median own s(q,i)/s(i,i) {Median(rows.Select(r => r.OwnSelfRatio)):F3}, median self match {Median(rows.Select(r => r.Attribution.SelfMatch)):F3}; caught ")
                + string.Join(", ", policies.Select(p => $"{rows.Count(r => p.Policy.Calibrated.Assess(r.Span, r.Attribution).Alert)} by {p.Name}")) + ".");
        }

        return lines;
    }

    // Median own rank, own share and own norm percentile of a group of leaked rows.
    private static string Describe(IReadOnlyList<AlertEvidenceRow> rows) => rows.Count == 0 ? "none" : string.Create(CultureInfo.InvariantCulture,
        $"{rows.Count} items, own copy ranked first in {rows.Count(r => r.OwnRank == 1)}, median own rank {Median(rows.Select(r => (double)r.OwnRank))}, median own share {Median(rows.Select(r => r.OwnShare)):F3}, median own response-norm percentile {Median(rows.Select(r => r.OwnNormPercentile)):F2}, median flagged lead {Median(rows.Select(r => r.Attribution.FlaggedLead)):F2}, median own s(q,i)/s(i,i) {Median(rows.Select(r => r.OwnSelfRatio)):F3}, median self match {Median(rows.Select(r => r.Attribution.SelfMatch)):F3}");

    private static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
    }
}
