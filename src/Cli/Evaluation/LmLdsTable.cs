using System.Diagnostics;
using System.Globalization;
using System.Text;
using Attribution.Attribution;
using Attribution.Attribution.Evaluation;
using Attribution.Attribution.Kernels;
using Attribution.Engine.Models;

namespace Attribution.Cli.Evaluation;

/// <summary>One method's row of the language-model LDS table.</summary>
internal sealed record LmMethodResult(
    string Spec,
    string Description,
    MetricSummary Lds,
    MetricSummary LdsSeed0,
    MetricSummary? SourceLds,
    double PrecomputeSeconds,
    double SingleP50Ms,
    double BatchedMsPerQuery,
    double MicrosecondsPerDocument,
    long StateBytes,
    double AllocatedBytesPerQuery,
    string? Error = null,
    double PrecomputeCpuSeconds = double.NaN,
    double BatchedCpuMsPerQuery = double.NaN,
    LmCostScaling? Scaling = null,
    LmReadoutCost[]? ReadoutCosts = null);

/// <summary>
/// A method's per-query CPU time at the pool's n documents and at the same documents replicated (<see cref="Documents"/>,
/// ascending), every method at every n alternated in the same passes: per pass, the least-squares line of CPU ms per
/// query against n; its slope is the per-document cost, its intercept the fixed per-query cost (the query's
/// forward/backward pass and its projection). Means over the passes, ± the standard error over the passes.
/// </summary>
internal sealed record LmCostScaling(int[] Documents, double[] CpuMsPerQuery, double PerDocumentCpuUs, double PerDocumentSe, double FixedCpuMs, double FixedSe, int Passes)
{
    /// <summary>The fit of per-pass timings <paramref name="msPerQuery"/>[pass][n index] at <paramref name="documents"/>.</summary>
    public static LmCostScaling Fit(int[] documents, double[][] msPerQuery)
    {
        int points = documents.Length, passes = msPerQuery.Length;
        double meanN = documents.Average(), sxx = documents.Sum(n => (n - meanN) * (n - meanN));
        var slopes = new double[passes];
        var intercepts = new double[passes];
        for (int p = 0; p < passes; p++)
        {
            double meanY = msPerQuery[p].Average(), sxy = 0;
            for (int i = 0; i < points; i++)
            {
                sxy += (documents[i] - meanN) * (msPerQuery[p][i] - meanY);
            }

            slopes[p] = sxy / sxx * 1000; // ms per document -> µs per document
            intercepts[p] = meanY - (sxy / sxx * meanN);
        }

        static (double Mean, double Se) Summary(double[] v)
        {
            double mean = v.Average();
            return (mean, v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1) / v.Length) : double.NaN);
        }

        var (slope, slopeSe) = Summary(slopes);
        var (fixedMs, fixedSe) = Summary(intercepts);
        return new LmCostScaling(documents, [.. Enumerable.Range(0, points).Select(i => msPerQuery.Average(r => r[i]))], slope, slopeSe, fixedMs, fixedSe, passes);
    }

    /// <summary>"256: 3.1, 1024: 3.4 ms/query; 0.52 ± 0.04 µs/document, fixed 3.0 ± 0.1 ms".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{string.Join(", ", Documents.Select((n, i) => $"n {n}: {CpuMsPerQuery[i]:F3}"))} CPU ms/query; {PerDocumentCpuUs:F4} ± {PerDocumentSe:F4} µs/document, fixed {FixedCpuMs:F3} ± {FixedSe:F3} ms");
}

/// <summary>
/// Scores every method on the language-model LDS ground truth (<see cref="LmLdsRunner"/>): the methods see the full-pool
/// fine-tuned model θ*, the pool documents as units with their sources, and the queries as prompt + completion rows;
/// each method's quality (document- and source-level LDS) and cost (precompute, latency, state, allocation) are measured
/// in the same run. The harness key <c>models=K</c> gives a method K full-pool fine-tunes (seeds 0..K−1 after the
/// reference one) as its checkpoints; the reference fine-tune's epoch checkpoints are θ*'s training checkpoints (TracIn).
/// </summary>
internal static class LmLdsTable
{
    /// <summary>Every method on the transformer; TRAK over a grid of projection sizes and dampings (the best is marked in the report).</summary>
    internal static readonly string[] DefaultMethods =
    [
        "forward-only:propagation=spectral,horizon=100,batch=8,operator-rank=32,rank=0",
        "forward-only:propagation=spectral,horizon=100,batch=8,operator-rank=32,rank=0,normalize=relative",
        "forward-only:propagation=spectral,horizon=100,batch=8,operator-rank=32,rank=0,sketch=4096",
        "forward-only:propagation=spectral,horizon=100,batch=8,operator-rank=32,rank=0,compress=128",
        "trak:k=1024,damping=0.1", "trak:k=1024,damping=1", "trak:k=1024,damping=3", "trak:k=1024,damping=10",
        "trak:k=256,damping=3", "trak:k=4096,damping=3",
        "tracin", "grad-dot",
        "bm25:ngram=1", "bm25:ngram=3", "bm25:ngram=5",
        "repsim",
        "stride:k=512,d=32,rank=16,steps=100,reference=32,linearity=0,form=residual,layer=1,lr=0.001",
    ];

    private static readonly string[] GradientMethods = ["trak", "tracin", "grad-dot", "if"];

    /// <summary>
    /// The issue's comparison: the best LDS of each method name (over its configurations), and forward-only's best as a
    /// multiple of the best gradient baseline (TRAK, TracIn, Grad-Dot, IF) and of the best non-gradient one.
    /// </summary>
    public static IReadOnlyList<string> Comparison(IReadOnlyList<LmMethodResult> rows)
    {
        var ok = rows.Where(r => r.Error is null && !double.IsNaN(r.Lds.Mean)).ToArray();
        var best = ok.GroupBy(r => EvalRunner.ParseSpec(r.Spec).Name.ToLowerInvariant())
            .ToDictionary(g => g.Key, g => g.MaxBy(r => r.Lds.Mean)!);
        var lines = best.OrderByDescending(kv => kv.Value.Lds.Mean)
            .Select(kv => string.Create(CultureInfo.InvariantCulture, $"best {kv.Key}: `{kv.Value.Spec}` {kv.Value.Lds.Mean:F3} ± {kv.Value.Lds.Ci95:F3}")).ToList();
        if (best.TryGetValue("forward-only", out var fo))
        {
            var gradient = best.Where(kv => GradientMethods.Contains(kv.Key)).Select(kv => kv.Value).MaxBy(r => r.Lds.Mean);
            var lexical = best.Where(kv => kv.Key is "bm25" or "repsim").Select(kv => kv.Value).MaxBy(r => r.Lds.Mean);
            if (gradient is not null)
            {
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"forward-only / best gradient baseline (`{gradient.Spec}`) = {fo.Lds.Mean / gradient.Lds.Mean:F2}x (goal ≥ 1.25x)"));
            }

            if (lexical is not null)
            {
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"forward-only / best non-gradient baseline (`{lexical.Spec}`) = {fo.Lds.Mean / lexical.Lds.Mean:F2}x (goal > 1x)"));
            }
        }

        return lines;
    }

    /// <summary>Builds every method once so a typo fails before the long retraining.</summary>
    public static void Validate(IEnumerable<string> specs)
    {
        foreach (var spec in specs)
        {
            var (name, opts) = EvalRunner.ParseSpec(spec);
            _ = MethodFactory.Create(name, opts);
        }
    }

    /// <summary>Precomputes and scores every method; returns their rows in the order given.</summary>
    public static IReadOnlyList<LmMethodResult> Run(LmLdsOptions options, LmLdsData data, LmLdsRunner runner, LmLdsTruth truth, CancellationToken cancellationToken)
    {
        var results = new List<LmMethodResult>();
        var extra = new Dictionary<int, float[]>();
        var simulated = new Dictionary<string, ProbeSetState>(StringComparer.Ordinal);
        var queries = QueryBatch.Completions(data.Queries, options.Config.Context);
        var target = truth.Examples.Replicates.Count > 1 ? truth.Examples.Mean() : truth.Examples.Primary;
        var sourceTarget = truth.Sources is { } st ? (st.Replicates.Count > 1 ? st.Mean() : st.Primary) : null;
        int n = data.PoolDocuments.Length, q = data.Queries.Length;
        var held = CalibrationQueries(options, q);
        var calibration = Calibration(options, data, truth, target, held);
        var skip = held.ToHashSet();
        var scaled = new List<(int Row, IAttributionMethod[] AtEachN)>();
        var split = new List<(int Row, IPreparedScoring Method)>();
        foreach (var spec in options.Methods)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (name, opts) = EvalRunner.ParseSpec(spec);
            int models = EvalRunner.ModelsOf(opts);
            float[][] members = [truth.FullTheta, .. Enumerable.Range(1, models - 1).Select(s => extra.TryGetValue(s, out var t) ? t : extra[s] = runner.FineTuneFull(truth, (int)(options.Seed & 0x7FFF_FFFF) + s, cancellationToken))];
            var problem = Problem(options, data, truth, members, calibration);
            // models=K reaches the factory (TRAK ensembles internally, the others through EnsembleMethod) and the problem holds
            // the K members: stripping it, as before stop 23, silently scored one model.
            var method = MethodFactory.Create(name, opts);
            Console.WriteLine($"  scoring {spec}");
            ScoreMatrix scores;
            double pre, batched, allocated, preCpu, batchedCpu;
            double[] single;
            try
            {
                // Rows that differ only in the readout (compress, sketch, normalize) import the probe set the first one
                // simulated, as the Scorer would: their precompute columns are the import (basis fit, sketch).
                string key = ProbeSetKey(name, opts, models);
                var reuse = method is IProbeSetMethod && simulated.TryGetValue(key, out var stored) ? stored : null;
                (scores, pre, single, batched, allocated, preCpu, batchedCpu) = Measure(method, problem, data.Queries, options, reuse, cancellationToken);
                if (method is IProbeSetMethod probeSet && reuse is null && Exportable(probeSet) is { } exported)
                {
                    simulated[key] = exported;
                }
            }
            catch (Exception e) when (e is NotSupportedException or ArgumentException or InvalidOperationException)
            {
                // A method that cannot run on a transformer yet is a row saying why, not the end of the table.
                var none = MetricSummary.FromPerQuery([]);
                results.Add(new LmMethodResult(spec, method.Describe(), none, none, null, 0, double.NaN, double.NaN, double.NaN, 0, double.NaN, e.Message));
                continue;
            }

            var predicted = Lds.Predict(scores.Scores, q, n, truth.Plan.Subsets);
            // With a calibration split every LDS is over the other queries only (calibration queries count as neither).
            var lds = EvalRunner.Reported(Lds.Correlate(predicted, target, truth.Plan.Count, q), skip);
            var seed0 = EvalRunner.Reported(Lds.Correlate(predicted, truth.Examples.Primary, truth.Plan.Count, q), skip);
            MetricSummary? sourceLds = truth.SourcePlan is { } sp && sourceTarget is not null
                ? EvalRunner.Reported(SourceLds.Compute(method.ScoreSources(queries, cancellationToken), q, sp, sourceTarget), skip)
                : null;
            if (options.ScaleDocuments is { Count: > 0 } factors)
            {
                scaled.Add((results.Count, [method, .. factors.Order().Select(f => Scaled(name, opts, method, problem, f, options, data, truth, members, cancellationToken))]));
            }

            if (options.ReadoutDocuments is { Count: > 0 } && method is IPreparedScoring prepared)
            {
                split.Add((results.Count, prepared));
            }

            results.Add(new LmMethodResult(spec, method.Describe() + (models > 1 ? $"; {models} models" : string.Empty), lds, seed0, sourceLds, pre,
                Percentiles.Of(single, 50), batched, batched * 1000 / n, method.StateBytes, allocated, null, preCpu, batchedCpu));
        }

        if (scaled.Count > 0)
        {
            Console.WriteLine($"  timing {scaled.Count} methods at n = {string.Join(", ", scaled[0].AtEachN.Select(m => m.Score(QueryBatch.Completions(data.Queries[..1], options.Config.Context), cancellationToken).ExampleCount))} documents, {options.ScalePasses} alternated passes");
            var fits = MeasureScaling(scaled.Select(s => s.AtEachN).ToArray(), data.Queries, options, cancellationToken);
            for (int i = 0; i < scaled.Count; i++)
            {
                results[scaled[i].Row] = results[scaled[i].Row] with { Scaling = fits[i] };
            }
        }

        if (split.Count > 0)
        {
            Console.WriteLine($"  timing the per-document part of {split.Count} methods apart from the fixed part, batches of {string.Join(", ", options.ReadoutBatches!)} queries, {options.ScalePasses} alternated passes");
            var costs = LmLdsReadoutCost.Measure([.. split.Select(s => s.Method)], data.Queries, options, cancellationToken);
            for (int i = 0; i < split.Count; i++)
            {
                results[split[i].Row] = results[split[i].Row] with { ReadoutCosts = costs[i] };
            }
        }

        return results;
    }

    /// <summary>The calibration queries (sorted; empty when <see cref="LmLdsOptions.CalibrationFraction"/> is 0), drawn from the seed.</summary>
    internal static int[] CalibrationQueries(LmLdsOptions options, int queryCount)
    {
        int v = (int)Math.Round(options.CalibrationFraction * queryCount);
        if (options.CalibrationFraction <= 0)
        {
            return [];
        }

        if (v < 2 || queryCount - v < 2)
        {
            throw new ArgumentException($"--calibration-fraction {options.CalibrationFraction} of {queryCount} queries gives {v} calibration and {queryCount - v} reported queries; each needs at least 2.");
        }

        return [.. new global::Attribution.Engine.Rng(options.Seed ^ 0x600).Permutation(queryCount).AsSpan(0, v).ToArray().Order()];
    }

    // The calibration queries with the LDS objective on them (against the same target as the table), or null.
    private static CalibrationSet? Calibration(LmLdsOptions options, LmLdsData data, LmLdsTruth truth, double[] target, int[] held)
    {
        if (held.Length == 0)
        {
            return null;
        }

        int v = held.Length, q = data.Queries.Length, n = data.PoolDocuments.Length, m = truth.Plan.Count;
        var actual = new double[m * v];
        for (int j = 0; j < m; j++)
        {
            for (int k = 0; k < v; k++)
            {
                actual[(j * v) + k] = target[(j * q) + held[k]];
            }
        }

        return new CalibrationSet(QueryBatch.Completions([.. held.Select(i => data.Queries[i])], options.Config.Context),
            scores => Lds.Correlate(Lds.Predict(scores.Scores, v, n, truth.Plan.Subsets), actual, m, v).Mean,
            string.Create(CultureInfo.InvariantCulture, $"LDS on the {v} calibration queries"));
    }

    /// <summary>
    /// What every method sees: θ* = the reference full-pool fine-tune, the pool documents as units with their sources,
    /// <paramref name="models"/> as the ensemble members (the first is θ*), and the reference fine-tune's epoch
    /// checkpoints as θ*'s training checkpoints (what TracIn sums over; the other members saved none).
    /// </summary>
    internal static AttributionProblem Problem(LmLdsOptions options, LmLdsData data, LmLdsTruth truth, IReadOnlyList<float[]> models, CalibrationSet? calibration = null)
    {
        var config = options.Config;
        return new AttributionProblem(() => new GptModel(new Gpt(config, seed: 0)), truth.FullTheta,
            AttributionProblem.Documents(data.PoolDocuments, config.Context), data.PoolSourceIds, data.SourcesPresent.Length,
            options.FineTuneRecipe.WeightDecay, models)
        {
            TrainingLearningRate = options.FineTuneRecipe.LearningRate,
            TrainingCheckpoints = [truth.FullCheckpoints],
            Calibration = calibration,
        };
    }

    /// <summary>
    /// The method built again over the pool's documents replicated <paramref name="factor"/> times: a probe-set method
    /// imports its exported state with every unit block repeated (no new simulation: the readout over more documents is
    /// what is timed; a readout fitted from the state, e.g. <c>compress</c>, is fitted again over the n·factor units, as a
    /// Scorer would), any other method precomputes on the replicated documents.
    /// </summary>
    private static IAttributionMethod Scaled(string name, Dictionary<string, string> opts, IAttributionMethod method, AttributionProblem problem, int factor,
        LmLdsOptions options, LmLdsData data, LmLdsTruth truth, IReadOnlyList<float[]> members, CancellationToken cancellationToken)
    {
        var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        var scaled = BuildScaled(name, opts, method, problem, factor, options, data, truth, members, cancellationToken);
        process.Refresh();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    x{factor} ({problem.Count * factor} documents): built (import or precompute) in {(process.TotalProcessorTime - cpu).TotalSeconds:F1} s CPU"));
        return scaled;
    }

    private static IAttributionMethod BuildScaled(string name, Dictionary<string, string> opts, IAttributionMethod method, AttributionProblem problem, int factor,
        LmLdsOptions options, LmLdsData data, LmLdsTruth truth, IReadOnlyList<float[]> members, CancellationToken cancellationToken)
    {
        var scaled = MethodFactory.Create(name, opts);
        int[] sources = [.. Enumerable.Repeat(problem.SourceIds, factor).SelectMany(s => s)];
        if (method is IProbeSetMethod probe && scaled is IProbeSetMethod target)
        {
            target.ImportState(ServedModel.Of(problem) with { ExampleSources = sources }, probe.ExportState().WithExamplesRepeated(factor));
            return scaled;
        }

        var replicated = data with
        {
            PoolDocuments = [.. Enumerable.Repeat(data.PoolDocuments, factor).SelectMany(d => d)],
            PoolSourceIds = [.. Enumerable.Repeat(data.PoolSourceIds, factor).SelectMany(s => s)],
        };
        scaled.Precompute(Problem(options, replicated, truth, members), cancellationToken);
        return scaled;
    }

    // Every method at every n, alternated: each pass times one round of every query (batches of --query-batch) for every
    // (method, n), the order rotated from pass to pass; process CPU time. One fit per method (LmCostScaling.Fit).
    private static LmCostScaling[] MeasureScaling(IAttributionMethod[][] methods, CompletionQuery[] queries, LmLdsOptions options, CancellationToken cancellationToken)
    {
        var process = Process.GetCurrentProcess();
        int context = options.Config.Context, passes = options.ScalePasses;
        var batches = Enumerable.Range(0, (queries.Length + options.QueryBatch - 1) / options.QueryBatch)
            .Select(b => QueryBatch.Completions(queries[(b * options.QueryBatch)..Math.Min(queries.Length, (b + 1) * options.QueryBatch)], context)).ToArray();
        var cells = methods.SelectMany((atN, m) => atN.Select((method, i) => (m, i, method))).ToArray();
        foreach (var (_, _, method) in cells)
        {
            method.Score(batches[0], cancellationToken); // warm-up: JIT, buffers
        }

        var ms = methods.Select(atN => Enumerable.Range(0, passes).Select(_ => new double[atN.Length]).ToArray()).ToArray();
        for (int pass = 0; pass < passes; pass++)
        {
            for (int c = 0; c < cells.Length; c++)
            {
                var (m, i, method) = cells[(c + (pass * 7)) % cells.Length];
                ms[m][pass][i] = Time(method) / queries.Length;
            }
        }

        return [.. methods.Select((atN, m) => LmCostScaling.Fit([.. atN.Select(x => x.Score(batches[0], cancellationToken).ExampleCount)], ms[m]))];

        double Time(IAttributionMethod method)
        {
            process.Refresh();
            var cpu = process.TotalProcessorTime;
            foreach (var batch in batches)
            {
                method.Score(batch, cancellationToken);
            }

            process.Refresh();
            return (process.TotalProcessorTime - cpu).TotalMilliseconds;
        }
    }

    /// <summary>
    /// How much of the responses' energy a fitted basis of k directions keeps as the corpus grows: forward-only (the
    /// spec without its readout option) is precomputed on the first <paramref name="documents"/> base documents under
    /// θ*, and for each k the share kept by a basis fitted on all of them (in-sample) and by one fitted on the first
    /// half, read on the second half (documents the basis never saw) is reported. One line per k.
    /// </summary>
    public static IReadOnlyList<string> EnergyScaling(LmLdsOptions options, LmLdsData data, LmLdsTruth truth, string spec, int documents, CancellationToken cancellationToken)
    {
        var (name, opts) = EvalRunner.ParseSpec(spec);
        var plain = WithoutHarnessKeys(opts);
        plain.Remove("compress");
        plain.Remove("sketch");
        plain.Remove("normalize");
        int count = Math.Min(documents, data.BaseDocuments.Length);
        var corpus = data with { PoolDocuments = data.BaseDocuments[..count], PoolSourceIds = new int[count] };
        var problem = Problem(options, corpus, truth, [truth.FullTheta]);
        var method = (IProbeSetMethod)MethodFactory.Create(name, plain);
        method.Precompute(problem, cancellationToken);
        var (rows, columns) = CompressedReadoutMethod.ResponseRows(problem.CreateModel(), method.ExportState());
        int[] ks = [32, 64, 128, 256, 512, 1024];
        var all = ResponseBasis.Fit(rows, count, columns, 1); // its spectrum: the in-sample energy at every k
        int half = count / 2, rest = count - half;
        var lines = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture, $"energy of forward-only's responses kept by a fitted basis of k directions, {count} documents (base documents under θ*, {columns} covered coordinates, `{name}:{string.Join(',', plain.Select(kv => $"{kv.Key}={kv.Value}"))}`):"),
        };
        var heldRows = rows.AsSpan(half * columns, rest * columns);
        double heldTotal = 0;
        foreach (var v in heldRows)
        {
            heldTotal += (double)v * v;
        }

        // The basis rows come largest direction first and Cholesky QR keeps nested spans, so the first k coefficients
        // of one fit are the rank-k basis's: one fit serves every k.
        var basis = ResponseBasis.Fit(rows.AsSpan(0, half * columns), half, columns, ks.Max());
        var c = new float[(long)rest * basis.Rank];
        basis.Project(heldRows, rest, c);
        foreach (int k in ks)
        {
            double kept = 0;
            for (int u = 0; u < rest; u++)
            {
                foreach (var v in c.AsSpan(u * basis.Rank, Math.Min(k, basis.Rank)))
                {
                    kept += (double)v * v;
                }
            }

            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"  k = {k,4}: in-sample {all.EnergyKeptAt(k):P1} (fitted on {count}); held out {kept / heldTotal:P1} (fitted on {half}, rank {Math.Min(k, basis.Rank)}, read on the other {rest})"));
        }

        return lines;
    }

    /// <summary>One console line per method.</summary>
    public static string Line(LmMethodResult r) => r.Error is { } error ? $"{r.Spec,-28} not run: {error}" : string.Create(CultureInfo.InvariantCulture,
        $"{r.Spec,-28} LDS {r.Lds.Mean:F3} ± {r.Lds.Ci95:F3}  source {(r.SourceLds is { } s ? $"{s.Mean:F3} ± {s.Ci95:F3}" : "-")}  precompute {r.PrecomputeSeconds:F1} s  single p50 {r.SingleP50Ms:F2} ms  batched {r.BatchedMsPerQuery:F3} ms/query ({r.MicrosecondsPerDocument:F2} µs/doc)  state {r.StateBytes / 1048576.0:F2} MiB  CPU: precompute {r.PrecomputeCpuSeconds:F1} s, batched {r.BatchedCpuMsPerQuery:F3} ms/query{(r.Scaling is { } sc ? $"; {sc}" : string.Empty)}{(r.ReadoutCosts is { } rc ? string.Concat(rc.Select(c => $"\n    per-document part, {c}")) : string.Empty)}");

    // Wall times at a shared machine's load mostly measure waiting for a core; the process CPU time (one BLAS thread) is
    // the steadier measure of the work, so both are kept.
    private static (ScoreMatrix Scores, double Precompute, double[] SingleMs, double BatchedMsPerQuery, double AllocatedPerQuery, double PrecomputeCpu, double BatchedCpuMsPerQuery) Measure(
        IAttributionMethod method, AttributionProblem problem, CompletionQuery[] queries, LmLdsOptions options, ProbeSetState? simulated, CancellationToken cancellationToken)
    {
        int context = options.Config.Context;
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        if (simulated is not null)
        {
            ((IProbeSetMethod)method).ImportState(ServedModel.Of(problem), simulated);
        }
        else
        {
            method.Precompute(problem, cancellationToken);
        }

        double pre = clock.Elapsed.TotalSeconds;
        process.Refresh();
        double preCpu = (process.TotalProcessorTime - cpu0).TotalSeconds;
        method.Score(QueryBatch.Completions(queries[..1], context), cancellationToken);
        int singles = Math.Min(options.LatencyQueries, queries.Length);
        var singleMs = new double[singles];
        for (int i = 0; i < singles; i++)
        {
            var one = QueryBatch.Completions(queries[i..(i + 1)], context);
            clock.Restart();
            method.Score(one, cancellationToken);
            singleMs[i] = clock.Elapsed.TotalMilliseconds;
        }

        int n = problem.Count;
        var all = new float[(long)queries.Length * n];
        double batchedMs = 0, batchedCpuMs = 0;
        long allocated = 0;
        for (int start = 0; start < queries.Length; start += options.QueryBatch)
        {
            int count = Math.Min(options.QueryBatch, queries.Length - start);
            var batch = QueryBatch.Completions(queries[start..(start + count)], context);
            long before = GC.GetAllocatedBytesForCurrentThread();
            process.Refresh();
            var cpu = process.TotalProcessorTime;
            clock.Restart();
            var s = method.Score(batch, cancellationToken);
            batchedMs += clock.Elapsed.TotalMilliseconds;
            process.Refresh();
            batchedCpuMs += (process.TotalProcessorTime - cpu).TotalMilliseconds;
            allocated += GC.GetAllocatedBytesForCurrentThread() - before;
            if (s.QueryCount != count || s.ExampleCount != n)
            {
                throw new InvalidOperationException($"method {method.Name} returned a {s.QueryCount}×{s.ExampleCount} score matrix for {count} queries over {n} documents.");
            }

            s.Scores.CopyTo(all.AsSpan(start * n, count * n));
        }

        return (new ScoreMatrix(all, queries.Length, n, problem.SourceIds, problem.SourceCount), pre, singleMs, batchedMs / queries.Length, (double)allocated / queries.Length, preCpu, batchedCpuMs / queries.Length);
    }

    /// <summary>Writes report.md and the ground-truth artefacts (subsets, outputs per replicate, per-query LDS).</summary>
    public static void WriteReport(IReadOnlyList<LmMethodResult> rows, LmLdsOptions o, LmLdsData data, LmLdsTruth truth, string outDir, string commandLine, string hardware)
    {
        var inv = CultureInfo.InvariantCulture;
        Directory.CreateDirectory(outDir);
        var md = new StringBuilder();
        md.Append("# Language-model LDS report\n\n");
        md.Append(inv, $"Command: `{commandLine}`\n\n## Setting\n\n");
        md.Append(inv, $"- Model: GPT-2 layout {o.Config}; tokenizer {o.Tokenizer}\n");
        md.Append(inv, $"- Corpus: {data.Corpus.Spec} ({data.Corpus.Documents.Count} documents, {data.Corpus.Sources.Count} sources); documents of {o.MinTokens}..{o.Config.Context + 1} framed tokens only\n");
        md.Append(inv, $"- Base model: trained from scratch on {data.BaseDocuments.Length} documents (`{o.BaseRecipe.Key}`)\n");
        md.Append(inv, $"- Pool (LDS units): {data.PoolDocuments.Length} documents from {data.SourcesPresent.Length} sources; every subset model = the base fine-tuned on the subset (`{o.FineTuneRecipe.Key}`), seed = data order\n");
        md.Append(inv, $"- Queries: {data.Queries.Length} held-out documents; prompt = first half of the framed tokens, completion = the rest; output = {CompletionQuery.OutputFunction} (larger = better, compared as is)\n");
        md.Append(inv, $"- Document-level LDS: m = {truth.Plan.Count} subsets, α = {o.Alpha}, {o.SeedsPerSubset} seeds per subset (target = their mean), subset draw seed {o.Seed}\n");
        if (truth.SourcePlan is { } sp)
        {
            md.Append(inv, $"- Source-level LDS: {sp.Count} subsets of round(α·{sp.PoolSize}) sources, each model fine-tuned on all pool documents of its sources; a method predicts the sum of its source scores\n");
        }

        md.Append(inv, $"- Ground truth: setting `{truth.SettingHash}`, {truth.ModelsTrained} models trained this run, {truth.ModelsFromCache} from cache, {truth.Seconds:F1} s");
        md.Append(double.IsNaN(truth.SecondsPerFineTune) ? "\n" : string.Create(inv, $" ({truth.SecondsPerFineTune:F2} s per fine-tune)\n"));
        md.Append(inv, $"- Mean query log-likelihood: base {truth.BaseOutputs.Average():F2}, full-pool fine-tune {truth.FullOutputs.Average():F2} nats\n");
        md.Append(inv, $"- Hardware: {hardware}\n\n## LDS, latency and memory per method\n\n");
        if (truth.Examples.NoiseCeiling() is { } c)
        {
            md.Append(inv, $"Noise ceiling (Spearman between the two seeds of every subset model): document level **{c.Mean:F3}** ± {c.Ci95:F3}");
            if (truth.Sources?.NoiseCeiling() is { } sc)
            {
                md.Append(inv, $", source level **{sc.Mean:F3}** ± {sc.Ci95:F3}");
            }

            md.Append(".\n\n");
        }

        md.Append("| method | configuration | LDS (2-seed mean) | LDS (seed 0) | source LDS | precompute s | single p50 ms | batched ms/query | µs/document | state MiB | allocated MiB/query | precompute CPU s | batched CPU ms/query | CPU µs/document | fixed CPU ms/query | CPU µs per added document |\n");
        md.Append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var r in rows.Where(r => r.Error is null))
        {
            md.Append(inv, $"| `{r.Spec}` | {r.Description} | {r.Lds.Mean:F3} ± {r.Lds.Ci95:F3} | {r.LdsSeed0.Mean:F3} ± {r.LdsSeed0.Ci95:F3} | {(r.SourceLds is { } s ? $"{s.Mean:F3} ± {s.Ci95:F3}" : "-")} | {r.PrecomputeSeconds:F2} | {r.SingleP50Ms:F2} | {r.BatchedMsPerQuery:F3} | {r.MicrosecondsPerDocument:F3} | {r.StateBytes / 1048576.0:F2} | {r.AllocatedBytesPerQuery / 1048576.0:F2} | {r.PrecomputeCpuSeconds:F2} | {r.BatchedCpuMsPerQuery:F3} | {r.BatchedCpuMsPerQuery * 1000 / data.PoolDocuments.Length:F3} | {(r.Scaling is { } sc ? $"{sc.FixedCpuMs.ToString("F3", inv)} ± {sc.FixedSe.ToString("F3", inv)}" : "-")} | {(r.Scaling is { } sd ? $"{sd.PerDocumentCpuUs.ToString("F4", inv)} ± {sd.PerDocumentSe.ToString("F4", inv)}" : "-")} |\n");
        }

        if (CalibrationQueries(o, data.Queries.Length) is { Length: > 0 } held)
        {
            md.Append(inv, $"\n**Calibration split** (`--calibration-fraction {o.CalibrationFraction}`): queries {string.Join(' ', held)} were given to the methods as calibration queries (a blend with weight auto chooses its weight on them); every LDS in the table is over the other {data.Queries.Length - held.Length} queries only (the noise ceiling above is over all queries).\n");
        }

        var ok = rows.Where(r => r.Error is null).ToArray();
        if (ok.Length > 1)
        {
            md.Append(inv, $"\nPaired differences against the first row (`{ok[0].Spec}`), per query over the same reported queries (2-seed-mean LDS): mean ± standard error (± 95 % interval).\n\n| method | LDS − first row | SE | ± 95 % |\n|---|---|---|---|\n");
            foreach (var r in ok.Skip(1))
            {
                var d = MetricSummary.FromPerQuery([.. r.Lds.PerQuery.Zip(ok[0].Lds.PerQuery, (a, b) => a - b)]);
                md.Append(inv, $"| `{r.Spec}` | {d.Mean:+0.000;-0.000} | {d.Std / Math.Sqrt(d.Queries):F3} | {d.Ci95:F3} |\n");
            }
        }

        md.Append("\n± = 95% interval over queries (1.96·std/√queries). Skipped queries (constant predictions): ");
        md.Append(string.Join(", ", rows.Where(r => r.Error is null).Select(r => $"{r.Spec} {r.Lds.Skipped}"))).Append(".\n");
        if (rows.FirstOrDefault(r => r.Scaling is not null)?.Scaling is { } scale)
        {
            md.Append(inv, $"Fixed and per-document CPU: every method timed at n = {string.Join(", ", scale.Documents)} (the pool's documents replicated; probe-set methods import their state replicated, a fitted readout fitted again over all n, others precompute on the replicated documents), every (method, n) alternated in each of {scale.Passes} passes of every query; per pass the least-squares line of CPU ms/query against n: per added document = slope, fixed = intercept (mean ± standard error over the passes).\n\n");
            md.Append("| method | ").Append(string.Join(" | ", scale.Documents.Select(d => $"CPU ms/query at n = {d}"))).Append(" | CPU µs per document (slope ± SE) | fixed CPU ms/query (± SE) |\n|---|")
                .Append(string.Concat(Enumerable.Repeat("---|", scale.Documents.Length + 2))).Append('\n');
            foreach (var r in rows.Where(r => r.Scaling is not null))
            {
                var sc = r.Scaling!;
                md.Append(inv, $"| `{r.Spec}` | {string.Join(" | ", sc.CpuMsPerQuery.Select(v => v.ToString("F3", inv)))} | {sc.PerDocumentCpuUs:F4} ± {sc.PerDocumentSe:F4} | {sc.FixedCpuMs:F3} ± {sc.FixedSe:F3} |\n");
            }
        }

        if (rows.Any(r => r.ReadoutCosts is not null))
        {
            md.Append(inv, $"\nPer-document part timed apart from the fixed part (`--readout-documents`): each method's queries prepared once (its fixed part: the query's gradient and projection), then only its own per-document readout (the code `Score` runs after `Prepare`) timed over the pool's documents repeated, at every n and batch size alternated in each of {o.ScalePasses} passes (process CPU time, ≥ {250} ms per cell); per pass the least-squares line of CPU ms per query against n: slope = CPU µs per document per query (mean ± SE over the passes). The fixed part (Prepare) is timed in the same passes.\n\n");
            md.Append("| method | batch | documents n | readout CPU ms/query at each n | **CPU µs per document** (slope ± SE) | readout intercept ms/query | fixed part (Prepare) CPU ms/query |\n|---|---|---|---|---|---|---|\n");
            foreach (var r in rows.Where(r => r.ReadoutCosts is not null))
            {
                foreach (var rc in r.ReadoutCosts!)
                {
                    md.Append(inv, $"| `{r.Spec}` | {rc.Batch} | {string.Join(", ", rc.Fit.Documents)}{(rc.Skipped.Length > 0 ? $" (not {string.Join(", ", rc.Skipped)}: memory cap)" : string.Empty)} | {string.Join(", ", rc.Fit.CpuMsPerQuery.Select(v => v.ToString("F4", inv)))} | {rc.Fit.PerDocumentCpuUs:F5} ± {rc.Fit.PerDocumentSe:F5} | {rc.Fit.FixedCpuMs:F4} ± {rc.Fit.FixedSe:F4} | {rc.PrepareCpuMsPerQuery:F3} ± {rc.PrepareSe:F3} |\n");
                }
            }
        }

        md.Append('\n');
        foreach (var line in Comparison(rows))
        {
            md.Append("- ").Append(line).Append('\n');
        }

        foreach (var r in rows.Where(r => r.Error is not null))
        {
            md.Append(inv, $"\nNot run: `{r.Spec}`: {r.Error}\n");
        }

        File.WriteAllText(Path.Combine(outDir, "report.md"), md.ToString());
        var csv = new StringBuilder("replicate,subset,query,output\n");
        for (int r = 0; r < truth.Examples.Replicates.Count; r++)
        {
            var y = truth.Examples.Replicates[r];
            for (int j = 0; j < truth.Plan.Count; j++)
            {
                for (int qi = 0; qi < truth.Examples.QueryCount; qi++)
                {
                    csv.Append(inv, $"{r},{j},{qi},{y[(j * truth.Examples.QueryCount) + qi]:R}\n");
                }
            }
        }

        File.WriteAllText(Path.Combine(outDir, "ground-truth.csv"), csv.ToString());
        File.WriteAllLines(Path.Combine(outDir, "subsets.txt"), truth.Plan.Subsets.Select((s, j) => $"{string.Join(' ', truth.Plan.Seeds[j])}: {string.Join(' ', s.Select(i => data.Corpus.Documents[data.Split.Pool[i]].Id))}"));
    }

    private static readonly string[] ReadoutKeys = ["compress", "sketch", "normalize"];

    // The probe set a later row may import; null for a configuration that is scored but never served (a diagnostic such
    // as stride:operators=finetune, a combination whose partner state does not travel): its row stands, nothing is reused.
    private static ProbeSetState? Exportable(IProbeSetMethod method)
    {
        try
        {
            return method.ExportState();
        }
        catch (NotSupportedException)
        {
            return null;
        }
    }

    private static string ProbeSetKey(string name, Dictionary<string, string> opts, int models) =>
        name.ToLowerInvariant() + ":" + models.ToString(CultureInfo.InvariantCulture) + ":" + string.Join(',', opts
            .Where(kv => !ReadoutKeys.Contains(kv.Key.ToLowerInvariant()) && !kv.Key.Equals("models", StringComparison.OrdinalIgnoreCase))
            .OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase).Select(kv => $"{kv.Key.ToLowerInvariant()}={kv.Value}"));

    private static Dictionary<string, string> WithoutHarnessKeys(Dictionary<string, string> opts) =>
        opts.Where(kv => !kv.Key.Equals("models", StringComparison.OrdinalIgnoreCase)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.OrdinalIgnoreCase);
}
