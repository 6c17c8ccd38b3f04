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
/// queries' forward-mode gradient factors, the example readout and the source readout. The model is built from the
/// probe set exactly as a Scorer's <c>ProbeIndex</c> builds it (decoded wire probes, default options).
/// </summary>
internal static class ReadoutProfile
{
    public static void Run(AttributionModel model, float[] queries, int[] batches, int queriesPerSize)
    {
        Console.WriteLine($"# readout profile: {model.ExampleIds.Length} examples ({model.Examples.Bytes / 1e6:F1} MB held, ranks [{string.Join(',', model.Examples.Ranks)}], input basis {(model.InputBasis is { } b ? $"{b.Dimension} dims, energy {b.EnergyKept:F4}" : "none")}) + {model.SourceIds.Length} sources ({model.Sources.Bytes / 1e6:F1} MB); thread CPU time; OPENBLAS_NUM_THREADS={Environment.GetEnvironmentVariable("OPENBLAS_NUM_THREADS") ?? "unset"}; load average {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("| batch | Score CPU ms per batch | CPU ms per query | of which: forward-mode factors | example readout | source readout | wall ms per batch |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        var mlp = new Mlp(model.Layout);
        mlp.LoadFrom(model.Theta);
        foreach (int batch in batches)
        {
            int rounds = Math.Max(3, queriesPerSize / batch);
            var inputs = new float[batch * model.InputWidth];
            var labels = new int[batch];
            var exampleScores = new float[batch * model.Examples.Units];
            var sourceScores = new float[batch * model.Sources.Units];
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

            double score = 0, factors = 0, examples = 0, sources = 0;
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
                model.Sources.JacobianScores(readout, sourceScores);
                long t4 = ThreadCpuNs();
                score += t1 - t0;
                factors += t2 - t1;
                examples += t3 - t2;
                sources += t4 - t3;
            }

            // The wall clock covers Score and the three parts again: about twice one Score.
            double ms = 1e-6 / rounds;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {batch} | {score * ms:F2} | {score * ms / batch:F3} | {factors * ms:F2} | {examples * ms:F2} | {sources * ms:F2} | {wall.Elapsed.TotalMilliseconds / rounds / 2:F2} |"));
        }
    }

    /// <summary>The model a Scorer's ProbeIndex would build from <paramref name="probeSet"/> (default Scorer options).</summary>
    public static AttributionModel Build(ProbeSet probeSet, float[] theta) => Build(Probes(probeSet), theta);

    /// <summary>The model a Scorer's ProbeIndex would build from these probes (default Scorer options).</summary>
    public static AttributionModel Build(IReadOnlyList<InfluenceProbe> probes, float[] theta)
    {
        var examples = probes.Where(p => p.Subject == ProbeSubject.Example).OrderBy(p => p.SubjectId).ToArray();
        var sources = probes.Where(p => p.Subject == ProbeSubject.Source).OrderBy(p => p.SubjectId).ToArray();
        return new AttributionModel(Bench.RunId, Bench.Step, theta, ProbeCodec.FormatOf(examples[0]), [.. examples.Select(p => p.SubjectId)], [.. examples.Select(p => p.Factors)],
            ProbeCodec.FormatOf(sources[0]), [.. sources.Select(p => p.SubjectId)], [.. sources.Select(p => p.Factors)], new ScorerOptions().InputBasisEnergy);
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
