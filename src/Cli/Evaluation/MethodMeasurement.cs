using System.Diagnostics;
using Attribution.Attribution;
using Attribution.Attribution.Evaluation;

namespace Attribution.Cli.Evaluation;

/// <summary>Quality and cost of one method in one benchmark run.</summary>
internal sealed record MethodResult(
    string Spec,
    string Description,
    MetricSummary Lds,
    MetricSummary? LdsSeedMean,
    MetricSummary? Loo,
    TopKRemovalResult? TopK,
    double PrecomputeSeconds,
    double SingleP50Ms,
    double SingleP99Ms,
    double BatchedP50Ms,
    double BatchedP99Ms,
    int BatchSize,
    long StateBytes,
    double[] Predicted,
    MetricSummary? SourceLds = null,
    IReadOnlyList<(string Config, double Lds)>? Tuning = null,
    double SingleCpuMs = double.NaN,
    double BatchedCpuMs = double.NaN,
    double PrecomputeCpuSeconds = double.NaN);

/// <summary>Times a method's offline phase and its per-query readout, and returns its full score matrix.</summary>
internal static class MethodMeasurement
{
    /// <summary>
    /// Precomputes, then scores <paramref name="latencyQueries"/> single queries one call each (single-query latency),
    /// then every query in batches of <paramref name="batchSize"/> (batched per-query latency = call time / batch size).
    /// Beside wall clock, the process CPU time of the precompute and per query of each loop (what a loaded machine does not
    /// distort as much).
    /// </summary>
    public static (ScoreMatrix Scores, double PrecomputeSeconds, double PrecomputeCpuSeconds, double[] SingleMs, double[] BatchedMs, double SingleCpuMs, double BatchedCpuMs) Measure(
        IAttributionMethod method, AttributionProblem problem, QueryBatch queries, int latencyQueries, int batchSize,
        CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var cpu = ProcessCpu();
        method.Precompute(problem, cancellationToken);
        double precompute = clock.Elapsed.TotalSeconds;
        double precomputeCpu = (ProcessCpu() - cpu).TotalSeconds;
        int d = queries.InputWidth;

        // One warm-up call so JIT and first-touch allocation are not billed to the first query.
        method.Score(Slice(queries, 0, 1, d), cancellationToken);
        int singles = Math.Min(latencyQueries, queries.Count);
        var singleMs = new double[singles];
        cpu = ProcessCpu();
        for (int q = 0; q < singles; q++)
        {
            var one = Slice(queries, q, 1, d);
            clock.Restart();
            method.Score(one, cancellationToken);
            singleMs[q] = clock.Elapsed.TotalMilliseconds;
        }

        double singleCpuMs = (ProcessCpu() - cpu).TotalMilliseconds / singles;
        cpu = ProcessCpu();

        int n = problem.Count;
        var all = new float[(long)queries.Count * n];
        var batchedMs = new List<double>();
        for (int start = 0; start < queries.Count; start += batchSize)
        {
            int count = Math.Min(batchSize, queries.Count - start);
            var batch = Slice(queries, start, count, d);
            clock.Restart();
            var s = method.Score(batch, cancellationToken);
            double ms = clock.Elapsed.TotalMilliseconds;
            if (s.QueryCount != count || s.ExampleCount != n)
            {
                throw new InvalidOperationException($"method {method.Name} returned a {s.QueryCount}×{s.ExampleCount} score matrix for {count} queries over {n} examples.");
            }

            // Only full batches give a representative per-query figure; a short tail batch would inflate it.
            if (count == batchSize || start == 0)
            {
                batchedMs.Add(ms / count);
            }

            s.Scores.CopyTo(all.AsSpan(start * n, count * n));
        }

        double batchedCpuMs = (ProcessCpu() - cpu).TotalMilliseconds / queries.Count;
        return (new ScoreMatrix(all, queries.Count, n, problem.SourceIds, problem.SourceCount), precompute, precomputeCpu, singleMs, [.. batchedMs], singleCpuMs, batchedCpuMs);
    }

    private static TimeSpan ProcessCpu()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime;
    }

    private static QueryBatch Slice(QueryBatch queries, int start, int count, int d) =>
        new(queries.Inputs.AsSpan(start * d, count * d).ToArray(), queries.Labels.AsSpan(start, count).ToArray(), d);
}
