using System.Diagnostics;
using System.Globalization;
using Attribution.Attribution.Probes;
using Attribution.Contracts;
using Attribution.Engine;
using Attribution.Engine.Models;
using Attribution.Engine.Training;
using Attribution.Scorer;

/// <summary>
/// The Scorer's readout alone (<c>--readout-profile 1,4,8,16,64</c>): <see cref="AttributionModel.Score"/> on batches of
/// each size, timed in this thread's CPU time (so a loaded machine inflates it little), with the part of it spent in the
/// queries' forward-mode gradient factors, the example readout and the per-source sums. The model is built from the
/// probe set exactly as a Scorer's <c>ProbeIndex</c> builds it (decoded wire probes, default options).
/// </summary>
internal static class ReadoutProfile
{
    public static void Run(AttributionModel model, float[] queries, int[] batches, int queriesPerSize)
    {
        Console.WriteLine($"# readout profile: {model.ExampleIds.Length} examples ({model.Examples.Bytes / 1e6:F1} MB held, ranks [{string.Join(',', model.Examples.Ranks)}], input basis {(model.InputBasis is { } b ? $"{b.Dimension} dims, energy {b.EnergyKept:F4}" : "none")}) + {model.SourceIds.Length} sources (sums of their examples); thread CPU time; OPENBLAS_NUM_THREADS={Environment.GetEnvironmentVariable("OPENBLAS_NUM_THREADS") ?? "unset"}; load average {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("| batch | Score CPU ms per batch | CPU ms per query | of which: prediction (forward pass) | forward-mode factors | example readout | source sums | top-k (k = 10) | wall ms per batch | in the readout, sgemm calls of its shapes: full layers | biases | input-basis projection |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        var mlp = new Mlp(model.Layout);
        mlp.LoadFrom(model.Theta);
        Console.WriteLine($"# reading {model.Examples.Bytes / 1e6:F1} MB once (TensorPrimitives.Sum over an array of the set's size, thread CPU): {StreamMs(model.Examples.Bytes).ToString("F2", CultureInfo.InvariantCulture)} ms: the memory roof of one pass over the factors");
        foreach (int batch in batches)
        {
            int rounds = Math.Max(3, queriesPerSize / batch);
            var inputs = new float[batch * model.InputWidth];
            var labels = new int[batch];
            var exampleScores = new float[batch * model.Examples.Units];
            void Fill(int r)
            {
                int offset = (r * batch * 7) % (10_000 - batch);
                Array.Copy(queries, offset * model.InputWidth, inputs, 0, inputs.Length);
            }

            for (int r = 0; r < 3; r++)
            {
                Fill(r);
                model.Score(inputs, batch); // warm: JIT, pools
            }

            double score = 0, predict = 0, factors = 0, examples = 0, sources = 0, topk = 0;
            var predicted = new int[batch];
            var wall = Stopwatch.StartNew();
            for (int r = 0; r < rounds; r++)
            {
                Fill(r);
                long t0 = ThreadCpuNs();
                var scored = model.Score(inputs, batch);
                long t1 = ThreadCpuNs();
                scored.Predicted.CopyTo(labels, 0);
                var readout = mlp.ForwardModeGradients(inputs, labels, batch, ModelOutput.Margin);
                long t2 = ThreadCpuNs();
                model.Examples.JacobianScores(readout, exampleScores);
                long t3 = ThreadCpuNs();
                _ = new Attribution.Attribution.ScoreMatrix(exampleScores, batch, model.Examples.Units, model.ExampleSources, model.SourceIds.Length).SourceScores;
                long t4 = ThreadCpuNs();
                mlp.Predict(inputs, batch, predicted);
                long t5 = ThreadCpuNs();
                for (int q = 0; q < batch; q++)
                {
                    _ = model.TopK(scored, q, 10);
                }

                long t6 = ThreadCpuNs();
                predict += t5 - t4;
                topk += t6 - t5;
                score += t1 - t0;
                factors += t2 - t1;
                examples += t3 - t2;
                sources += t4 - t3;
            }

            // The wall clock covers Score and the three parts again: about twice one Score.
            double ms = 1e-6 / rounds;
            double wallMs = wall.Elapsed.TotalMilliseconds / rounds / 2;
            var (full, bias, basis) = BlasShapes(model, batch, rounds);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {batch} | {score * ms:F2} | {score * ms / batch:F3} | {predict * ms:F2} | {factors * ms:F2} | {examples * ms:F2} | {sources * ms:F2} | {topk * ms:F2} | {wallMs:F2} | {full:F2} | {bias:F2} | {basis:F2} |"));
        }
    }

    /// <summary>
    /// <c>--checkpoints J</c>: the Scorer's readout of one set (<c>Scorer:Checkpoints</c> 1, <see cref="AttributionModelScorer"/>)
    /// against J sets averaged (<see cref="CheckpointEnsembleScorer"/>), through their <c>Score</c> as the Scorer calls it,
    /// in thread CPU ms per batch, alternated 1, J, 1, J, ... over <paramref name="pairs"/> pairs. The J sets are J
    /// separate copies of the one simulated set (each built by <paramref name="build"/>; a run's checkpoints would differ
    /// in values, not in shapes, so the cost is the same).
    /// </summary>
    public static void Checkpoints(Func<AttributionModel> build, float[] queries, int[] batches, int j, int queriesPerSize, int pairs = 3)
    {
        var models = Enumerable.Range(0, j).Select(_ => build()).ToArray();
        IQueryScorer single = new AttributionModelScorer(models[^1]);
        IQueryScorer ensemble = new CheckpointEnsembleScorer(models, j);
        int d = models[0].InputWidth;
        Console.WriteLine($"# Scorer:Checkpoints 1 vs {j}: {models[0].ExampleIds.Length} examples, {models[0].StateBytes / 1e6:F1} MB per set, {models.Sum(m => m.StateBytes) / 1e6:F1} MB held at J = {j}; Score thread CPU ms per batch, alternated; load average {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine($"| batch | pair | J = 1 ms | J = {j} ms | ratio |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (int batch in batches)
        {
            int rounds = Math.Max(3, queriesPerSize / batch);
            List<ModelQuery> Batch(int r)
            {
                int offset = (r * batch * 7) % (10_000 - batch);
                return [.. Enumerable.Range(0, batch).Select(q => new ModelQuery($"q{q}", "bench", queries.AsSpan((offset + q) * d, d).ToArray(), null, DateTimeOffset.UnixEpoch))];
            }

            var inputs = Enumerable.Range(0, rounds).Select(Batch).ToArray();
            double Time(IQueryScorer scorer)
            {
                for (int r = 0; r < 3; r++)
                {
                    scorer.Score(inputs[r]); // warm: JIT, pools
                }

                long t0 = ThreadCpuNs();
                for (int r = 0; r < rounds; r++)
                {
                    scorer.Score(inputs[r]);
                }

                return (ThreadCpuNs() - t0) / 1e6 / rounds;
            }

            for (int p = 0; p < pairs; p++)
            {
                double one = Time(single), many = Time(ensemble);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {batch} | {p + 1} | {one:F2} | {many:F2} | {many / one:F2} |"));
            }
        }
    }

    /// <summary>
    /// The memory roof of a batch: thread CPU ms to read an array of the set's size once (<c>TensorPrimitives.Sum</c>,
    /// the same streaming loads the readout issues, no other work), after one pass to page it in.
    /// </summary>
    public static double StreamMs(long bytes, int rounds = 20)
    {
        var floats = new float[bytes / sizeof(float)];
        Array.Fill(floats, 1e-3f);
        float sink = System.Numerics.Tensors.TensorPrimitives.Sum(floats);
        long t0 = ThreadCpuNs();
        for (int r = 0; r < rounds; r++)
        {
            sink += System.Numerics.Tensors.TensorPrimitives.Sum(floats);
        }

        long t1 = ThreadCpuNs();
        GC.KeepAlive(sink);
        return (t1 - t0) / 1e6 / rounds;
    }

    /// <summary>
    /// The readout's BLAS calls at <paramref name="batch"/> queries, timed alone on arrays of their shapes (thread CPU
    /// ms per batch): the full layers' [q, in] × [units·out, in]ᵀ, every layer's bias [q, out] × [units, out]ᵀ, and the
    /// input layer's projection on its shared basis [q, in] × [k, in]ᵀ (what ResponseSet.JacobianScores issues).
    /// </summary>
    private static (double Full, double Bias, double Basis) BlasShapes(AttributionModel model, int batch, int rounds)
    {
        var set = model.Examples;
        int units = set.Units;
        double full = 0, bias = 0, basis = 0;
        for (int l = 0; l < set.Layers.Count; l++)
        {
            int o = set.Layers[l].Out, i = set.Layers[l].In;
            var a = Filled(batch * i);
            var d = Filled(batch * o);
            if (set.Ranks[l] == 0)
            {
                var w = Filled(units * o * i);
                var t = new float[batch * units * o];
                full += Time(() => Attribution.Engine.Blas.Gemm(false, true, batch, units * o, i, 1f, a, w, 0f, t), rounds);
            }

            var b = Filled(units * o);
            var tb = new float[batch * units];
            bias += Time(() => Attribution.Engine.Blas.Gemm(false, true, batch, units, o, 1f, d, b, 0f, tb), rounds);
            if (set.BasisDims[l] is int k and > 0)
            {
                var basisRows = Filled(k * i);
                var p = new float[batch * k];
                basis += Time(() => Attribution.Engine.Blas.Gemm(false, true, batch, k, i, 1f, a, basisRows, 0f, p), rounds);
            }
        }

        return (full, bias, basis);

        static float[] Filled(int n) => [.. Enumerable.Range(0, n).Select(j => (j % 17) * 1e-3f)];

        static double Time(Action call, int rounds)
        {
            call();
            long t0 = ThreadCpuNs();
            for (int r = 0; r < rounds; r++)
            {
                call();
            }

            return (ThreadCpuNs() - t0) / 1e6 / rounds;
        }
    }

    /// <summary>The model a Scorer's ProbeIndex would build from <paramref name="probeSet"/> (default Scorer options).</summary>
    public static AttributionModel Build(ProbeSet probeSet, float[] theta, int sources) => Build(Probes(probeSet), theta, sources);

    /// <summary>The model a Scorer's ProbeIndex would build from these probes (default Scorer options).</summary>
    public static AttributionModel Build(IReadOnlyList<InfluenceProbe> probes, float[] theta, int sources)
    {
        var examples = probes.Where(p => p.Subject == ProbeSubject.Example).OrderBy(p => p.SubjectId).ToArray();
        var shared = probes.Where(p => p.Subject == ProbeSubject.Shared).OrderBy(p => p.SubjectId).ToArray();
        if (shared.Length > 0)
        {
            // The exact spectral form (the MLP default): example factors + Ritz coefficients, the Ritz vectors joined from their chunks.
            return AttributionModel.FromExact(Bench.RunId, Bench.Step, theta, examples, SharedChunks.Join([.. shared.Select(p => (p.Tensors, p.Factors))]),
                [.. Enumerable.Range(0, sources).Select(s => (long)s)], [.. examples.Select(p => Bench.SourceOf(p.SubjectId, sources))], new ScorerOptions().InputBasisEnergy);
        }

        return new AttributionModel(Bench.RunId, Bench.Step, theta, ProbeCodec.FormatOf(examples[0]), [.. examples.Select(p => p.SubjectId)], [.. examples.Select(p => p.Factors)],
            [.. Enumerable.Range(0, sources).Select(s => (long)s)], [.. examples.Select(p => Bench.SourceOf(p.SubjectId, sources))], new ScorerOptions().InputBasisEnergy);
    }

    /// <summary>
    /// Saves the bench's run (θ as the run directory's safetensors, <see cref="RunDirectory"/>) and its probes as an
    /// Arrow IPC file of the probe wire schema (<c>probes.arrow</c>) under <paramref name="directory"/>: a bench cache,
    /// since simulating the set takes minutes.
    /// </summary>
    public static void Save(string directory, RunManifest manifest, IReadOnlyList<Parameter> parameters, ProbeSet probeSet)
    {
        RunDirectory.Save(directory, manifest, parameters);
        using var file = File.Create(Path.Combine(directory, ProbesFile));
        ArrowEventFile.Write(file, Probes(probeSet).Chunk(64));
    }

    /// <summary>The inverse of <see cref="Save"/>.</summary>
    public static (float[] Theta, IReadOnlyList<InfluenceProbe> Probes) Load(string directory) =>
        (RunDirectory.LoadMlp(directory).Model.ToFlat(), ArrowEventFile.Read<InfluenceProbe>(File.ReadAllBytes(Path.Combine(directory, ProbesFile))).Events);

    private const string ProbesFile = "probes.arrow";

    private static List<InfluenceProbe> Probes(ProbeSet probeSet)
    {
        var checkpointKey = System.Text.Encoding.UTF8.GetBytes(InfluenceProbe.CheckpointKey(Bench.RunId, Bench.Step));
        return [.. probeSet.Messages.Where(m => !m.Key.AsSpan().SequenceEqual(checkpointKey)).Select(m => EventCodecs.Probes.Decode(m.Value))];
    }

    /// <summary>This thread's CPU time so far in nanoseconds (/proc/thread-self/schedstat).</summary>
    public static long ThreadCpuNs() => long.Parse(File.ReadAllText("/proc/thread-self/schedstat").Split(' ')[0], CultureInfo.InvariantCulture);
}
