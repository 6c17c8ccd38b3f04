using System.Diagnostics;
using System.Globalization;
using Attribution.Attribution;
using Attribution.Engine.Models;

namespace Attribution.Cli.Evaluation;

/// <summary>
/// One method's per-document cost, timed apart from the query's fixed part (<c>bench lm-lds --readout-documents</c>):
/// for a batch of <see cref="Batch"/> queries prepared once (<see cref="IPreparedScoring.Prepare"/>), the CPU time of
/// the method's own per-document part (<see cref="IPreparedScoring.Readout"/>, the code <c>Score</c> runs) at each n of
/// <see cref="Fit"/> (the pool's documents repeated), and of the fixed part itself. <see cref="Skipped"/> lists the n
/// whose repeated documents would exceed the memory cap.
/// </summary>
internal sealed record LmReadoutCost(int Batch, LmCostScaling Fit, double PrepareCpuMsPerQuery, double PrepareSe, int[] Skipped)
{
    /// <summary>"batch 32: prepare 2.1 ms/query; n 256: 0.01, ... ms/query; 0.0123 ± 0.0004 µs/document".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"batch {Batch}: fixed part (prepare) {PrepareCpuMsPerQuery:F3} ± {PrepareSe:F3} CPU ms/query; readout {string.Join(", ", Fit.Documents.Select((n, i) => $"n {n}: {Fit.CpuMsPerQuery[i]:F4}"))} CPU ms/query; {Fit.PerDocumentCpuUs:F5} ± {Fit.PerDocumentSe:F5} µs/document, intercept {Fit.FixedCpuMs:F4} ± {Fit.FixedSe:F4} ms{(Skipped.Length > 0 ? $" (not run at n = {string.Join(", ", Skipped)}: over the memory cap)" : string.Empty)}");
}

/// <summary>Times the per-document part of every <see cref="IPreparedScoring"/> method apart from its fixed part, all (method, n, batch) cells alternated.</summary>
internal static class LmLdsReadoutCost
{
    // Each timed cell runs its call this long (CPU) per pass: Process.TotalProcessorTime ticks are coarse (10 ms on Linux).
    private const double CellMs = 250;

    private sealed record Cell(int Method, int Batch, int Point, IDocumentReadout? Readout, PreparedQueries Prepared, QueryBatch Queries, IPreparedScoring Owner)
    {
        public int Repetitions { get; set; } = 1;
    }

    /// <summary>
    /// For each method and each batch size in <see cref="LmLdsOptions.ReadoutBatches"/>: CPU ms per query of the readout
    /// at the pool's n and at n·f for every f of <see cref="LmLdsOptions.ReadoutDocuments"/> (a cell whose repeated
    /// documents exceed <see cref="LmLdsOptions.ReadoutMaxMiB"/> is skipped), and of Prepare; every cell alternated in
    /// each of <see cref="LmLdsOptions.ScalePasses"/> passes, the order rotated between passes; process CPU time.
    /// </summary>
    public static LmReadoutCost[][] Measure(IReadOnlyList<IPreparedScoring> methods, CompletionQuery[] queries, LmLdsOptions options, CancellationToken cancellationToken)
    {
        int context = options.Config.Context, passes = options.ScalePasses;
        int[] batches = [.. options.ReadoutBatches!.Select(b => Math.Min(b, queries.Length))];
        int[] factors = [1, .. options.ReadoutDocuments!.Order()];
        var cells = new List<Cell>();
        var documents = new int[methods.Count][];
        var skipped = new int[methods.Count][];
        for (int m = 0; m < methods.Count; m++)
        {
            var method = methods[m];
            var base0 = method.Readout;
            var readouts = new List<IDocumentReadout>();
            var skip = new List<int>();
            foreach (int f in factors)
            {
                if (f == 1)
                {
                    readouts.Add(base0);
                }
                else if (base0.Bytes * (double)f > options.ReadoutMaxMiB * 1048576.0)
                {
                    skip.Add(base0.Documents * f);
                }
                else
                {
                    readouts.Add(method.RepeatedReadout(f));
                }
            }

            documents[m] = [.. readouts.Select(r => r.Documents)];
            skipped[m] = [.. skip];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"    {method.Describe()[..Math.Min(60, method.Describe().Length)]}…: readout at n = {string.Join(", ", documents[m])} ({string.Join(", ", readouts.Select(r => $"{r.Bytes / 1048576.0:F1}"))} MiB){(skip.Count > 0 ? $"; skipped n = {string.Join(", ", skip)} (over {options.ReadoutMaxMiB} MiB)" : string.Empty)}"));
            for (int b = 0; b < batches.Length; b++)
            {
                var batch = QueryBatch.Completions(queries[..batches[b]], context);
                var prepared = method.Prepare(batch, cancellationToken);
                cells.Add(new Cell(m, b, -1, null, prepared, batch, method));
                for (int i = 0; i < readouts.Count; i++)
                {
                    cells.Add(new Cell(m, b, i, readouts[i], prepared, batch, method));
                }
            }
        }

        // Warm-up (JIT, buffers) and the repetitions that make each cell last about CellMs.
        foreach (var cell in cells)
        {
            Run(cell);
            var clock = Stopwatch.StartNew();
            int calls = 0;
            while (clock.Elapsed.TotalMilliseconds < 20 || calls < 2)
            {
                Run(cell);
                calls++;
            }

            cell.Repetitions = Math.Clamp((int)Math.Ceiling(CellMs / (clock.Elapsed.TotalMilliseconds / calls)), 1, 1_000_000);
        }

        var process = Process.GetCurrentProcess();
        var ms = new double[cells.Count][];
        for (int c = 0; c < cells.Count; c++)
        {
            ms[c] = new double[passes];
        }

        for (int pass = 0; pass < passes; pass++)
        {
            for (int i = 0; i < cells.Count; i++)
            {
                int c = (i + (pass * 7)) % cells.Count;
                var cell = cells[c];
                process.Refresh();
                var cpu = process.TotalProcessorTime;
                for (int r = 0; r < cell.Repetitions; r++)
                {
                    Run(cell);
                }

                process.Refresh();
                ms[c][pass] = (process.TotalProcessorTime - cpu).TotalMilliseconds / cell.Repetitions / cell.Prepared.Count;
            }
        }

        var result = new LmReadoutCost[methods.Count][];
        for (int m = 0; m < methods.Count; m++)
        {
            result[m] = new LmReadoutCost[batches.Length];
            for (int b = 0; b < batches.Length; b++)
            {
                var mine = Enumerable.Range(0, cells.Count).Where(c => cells[c].Method == m && cells[c].Batch == b).ToArray();
                var prepare = mine.Single(c => cells[c].Readout is null);
                var points = mine.Where(c => cells[c].Readout is not null).OrderBy(c => cells[c].Point).ToArray();
                var perPass = Enumerable.Range(0, passes).Select(p => points.Select(c => ms[c][p]).ToArray()).ToArray();
                double mean = ms[prepare].Average();
                double se = Math.Sqrt(ms[prepare].Sum(x => (x - mean) * (x - mean)) / (passes - 1) / passes);
                result[m][b] = new LmReadoutCost(batches[b], LmCostScaling.Fit(documents[m], perPass), mean, se, skipped[m]);
            }
        }

        return result;

        void Run(Cell cell)
        {
            if (cell.Readout is { } readout)
            {
                readout.Score(cell.Prepared, cancellationToken);
            }
            else
            {
                cell.Owner.Prepare(cell.Queries, cancellationToken);
            }
        }
    }
}
