using System.Diagnostics;
using System.Globalization;
using Attribution.Attribution.Stride;
using Attribution.Engine;

namespace Attribution.Benchmarks;

/// <summary>
/// Per-query latency of STRIDE's sparse recovery (<see cref="LassoRecovery"/>) on the paper's design (K = 1000, d = 10)
/// at several n. Measurements are synthetic: y = 0.3 + M·x* + N(0, σ²) with a 50-sparse x* (entries ±1..2), since the
/// steering operators that would produce real ones are not built yet; recovery cost depends on K, n, d and the
/// sparsity, not on where y came from. Rounds alternate the λ rules (held-out-subset CV, fixed fraction) and the batched
/// call, and the median over rounds is reported, as wall time and as this process's CPU time (the sequential runs use one
/// thread, so CPU time is the figure that survives a loaded machine).
/// Run: dotnet run -c Release --project bench/Benchmarks -- stride-latency [n,n,...] [queries] [rounds]
/// </summary>
internal static class StrideLatency
{
    public static int Run(string[] args)
    {
        int[] sizes = args.Length > 0 ? [.. args[0].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))] : [5000, 50000];
        int queries = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 8;
        int rounds = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 5;
        const int kk = 1000, d = 10, sparsity = 50;
        const double sigma = 0.1;
        Console.WriteLine($"stride-latency: K = {kk}, d = {d}, {sparsity}-sparse x*, σ = {sigma}, {queries} queries x {rounds} alternating rounds, {Environment.ProcessorCount} cores");
        foreach (int n in sizes)
        {
            var clock = Stopwatch.StartNew();
            var design = SubsetDesign.Create(n, kk, d, seed: 1);
            double designMs = clock.Elapsed.TotalMilliseconds;
            var rng = new Rng(2);
            var ys = new float[queries * kk];
            var truth = new double[queries][];
            for (int q = 0; q < queries; q++)
            {
                var x = new double[n];
                foreach (int j in rng.Permutation(n)[..sparsity])
                {
                    x[j] = (rng.NextDouble() < 0.5 ? -1 : 1) * (1 + rng.NextDouble());
                }

                var y = new double[kk];
                design.Multiply(x, y);
                for (int k = 0; k < kk; k++)
                {
                    ys[(q * kk) + k] = (float)(0.3 + y[k] + (sigma * rng.NextNormal()));
                }

                truth[q] = x;
            }

            var cv = new LassoRecovery(design);
            var fixedRule = new LassoRecovery(design, new LassoOptions { Rule = LambdaRule.FixedFraction, FixedFraction = 0.05 });
            var scores = new float[queries * n];
            var cvMs = new List<double>();
            var fixedMs = new List<double>();
            var batchMs = new List<double>();
            var cvCpu = new List<double>();
            var fixedCpu = new List<double>();
            var process = Process.GetCurrentProcess();
            double cvErr = 0, fixedErr = 0;
            int cvNz = 0, fixedNz = 0;
            for (int round = 0; round < rounds; round++)
            {
                var cpu = process.TotalProcessorTime;
                clock.Restart();
                for (int q = 0; q < queries; q++)
                {
                    var fit = cv.Recover(ys.AsSpan(q * kk, kk));
                    cvErr = RelError(fit.Weights, truth[q]);
                    cvNz = fit.NonZeros;
                }

                cvMs.Add(clock.Elapsed.TotalMilliseconds / queries);
                process.Refresh();
                cvCpu.Add((process.TotalProcessorTime - cpu).TotalMilliseconds / queries);
                cpu = process.TotalProcessorTime;
                clock.Restart();
                for (int q = 0; q < queries; q++)
                {
                    var fit = fixedRule.Recover(ys.AsSpan(q * kk, kk));
                    fixedErr = RelError(fit.Weights, truth[q]);
                    fixedNz = fit.NonZeros;
                }

                fixedMs.Add(clock.Elapsed.TotalMilliseconds / queries);
                process.Refresh();
                fixedCpu.Add((process.TotalProcessorTime - cpu).TotalMilliseconds / queries);
                clock.Restart();
                cv.RecoverBatch(ys, queries, scores);
                batchMs.Add(clock.Elapsed.TotalMilliseconds / queries);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"n = {n,6}: design {designMs:F0} ms; per query (median of {rounds}, wall / CPU) CV-5 {Median(cvMs):F2} / {Median(cvCpu):F2} ms (rel. err {cvErr:F3}, {cvNz} non-zeros), fixed 0.05·λmax {Median(fixedMs):F2} / {Median(fixedCpu):F2} ms (rel. err {fixedErr:F3}, {fixedNz} non-zeros), CV-5 batched {Median(batchMs):F2} ms/query"));
        }

        return 0;
    }

    private static double RelError(double[] w, double[] x)
    {
        double e = 0, s = 0;
        for (int j = 0; j < x.Length; j++)
        {
            e += (w[j] - x[j]) * (w[j] - x[j]);
            s += x[j] * x[j];
        }

        return Math.Sqrt(e / s);
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
