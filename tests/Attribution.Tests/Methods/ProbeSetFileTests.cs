using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Attribution.Probes;
using Attribution.Contracts;
using Attribution.Contracts.Arrow;
using Attribution.Engine.Models;

namespace Attribution.Tests.Methods;

/// <summary>
/// <see cref="ProbeSetFile"/> (<c>attribute --probes</c>): a forward-only state written as an Arrow IPC file of the
/// probe wire schema is read back unit for unit and scores exactly as the method that simulated it; the file is the
/// wire schema (same columns, the wire metadata plus the set's identity) with one row per unit keyed as on the topic;
/// anything that is not one intact set is refused saying what.
/// </summary>
public sealed class ProbeSetFileTests
{
    private static readonly Dictionary<string, string> Settings = new() { ["horizon"] = "3", ["eps"] = "0.01", ["eta"] = "0.01", ["batch"] = "0", ["rank"] = "2", ["basis"] = "0" };

    private static (AttributionProblem Problem, QueryBatch Queries, ForwardOnlyMethod Method, ProbeSetIdentity Identity) Simulated(int examples = 70)
    {
        var layout = new MlpLayout([6, 5, 3]);
        var theta = KernelTests.RandomTheta(layout, 3);
        var (x, y) = KernelTests.RandomData(layout, examples, 4);
        var problem = new AttributionProblem(layout, theta, x, y, [.. Enumerable.Range(0, examples).Select(i => i % 3)], 3);
        var (qx, qy) = KernelTests.RandomData(layout, 4, 9);
        var method = (ForwardOnlyMethod)MethodFactory.Create("forward-only", Settings);
        method.Precompute(problem);
        return (problem, new QueryBatch(qx, qy, 6), method, ProbeSetIdentity.Of(problem, "forward-only;horizon=3"));
    }

    private static long[] ExampleIds(int n) => [.. Enumerable.Range(0, n).Select(i => 1000L + (7 * i))];

    private static byte[] Write(ProbeSetIdentity identity, ProbeSetState state, int examples)
    {
        using var output = new MemoryStream();
        ProbeSetFile.Write(output, identity, "run-a", 42, ExampleIds(examples), [], state);
        return output.ToArray();
    }

    [Fact]
    public void A_written_set_reads_back_unit_for_unit_and_scores_as_the_simulating_method()
    {
        var (problem, queries, method, identity) = Simulated();
        var state = method.ExportState();
        var bytes = Write(identity, state, problem.Count);

        var stored = ProbeSetFile.Read(bytes, "set.arrow");
        Assert.Null(stored.Identity.Difference(identity));
        Assert.Equal(("run-a", 42L), (stored.RunId, stored.Step));
        Assert.Equal(ExampleIds(problem.Count), stored.ExampleIds);
        Assert.Empty(stored.SourceIds); // forward-only has no source units: a source scores the sum of its examples
        Assert.Equal(state.ExampleTensors, stored.State.ExampleTensors);
        Assert.Equal(state.SourceTensors, stored.State.SourceTensors);
        for (int u = 0; u < state.Examples.Count; u++)
        {
            Assert.Equal(state.Examples[u], stored.State.Examples[u]);
        }

        var served = (ForwardOnlyMethod)MethodFactory.Create("forward-only", Settings);
        served.ImportState(ServedModel.Of(problem), stored.State);
        var (expected, expectedSources) = method.ScoreAll(queries);
        var (actual, actualSources) = served.ScoreAll(queries);
        Assert.Contains(expected.Scores, v => v != 0f);
        Assert.Equal(expected.Scores, actual.Scores);
        Assert.Equal(expectedSources, actualSources);
    }

    [Fact]
    public void A_spectral_set_travels_with_its_shared_directions_as_chunk_rows_and_scores_as_the_simulating_method()
    {
        // The MLP's default propagation stores each response as its gradient factors plus coefficients on Ritz vectors
        // shared by every unit: the file carries the directions as shared-chunk rows after the example rows.
        var settings = new Dictionary<string, string> { ["horizon"] = "3", ["eta"] = "0.01", ["batch"] = "0", ["basis"] = "0", ["propagation"] = "spectral", ["operator-rank"] = "16" };
        var layout = new MlpLayout([6, 5, 3]);
        var (x, y) = KernelTests.RandomData(layout, 40, 4);
        var problem = new AttributionProblem(layout, KernelTests.RandomTheta(layout, 3), x, y, [.. Enumerable.Range(0, 40).Select(i => i % 3)], 3, weightDecay: 1e-2f);
        var (qx, qy) = KernelTests.RandomData(layout, 4, 9);
        var queries = new QueryBatch(qx, qy, 6);
        var method = (ForwardOnlyMethod)MethodFactory.Create("forward-only", settings);
        method.Precompute(problem);
        var state = method.ExportState();
        Assert.NotEmpty(state.Shared);
        var identity = ProbeSetIdentity.Of(problem, "forward-only;propagation=spectral");
        var stored = ProbeSetFile.Read(Write(identity, state, problem.Count), "set.arrow");
        Assert.Equal(state.Shared.Select(t => t.Layout), stored.State.Shared.Select(t => t.Layout));
        Assert.All(state.Shared.Zip(stored.State.Shared), t => Assert.Equal(t.First.Values, t.Second.Values));
        var served = (ForwardOnlyMethod)MethodFactory.Create("forward-only", settings);
        served.ImportState(ServedModel.Of(problem), stored.State);
        var expected = method.Score(queries).Scores;
        Assert.Contains(expected, v => v != 0f);
        Assert.Equal(expected, served.Score(queries).Scores);
    }

    [Fact]
    public void The_file_is_the_probe_wire_schema_with_the_sets_identity_as_metadata_one_row_per_unit()
    {
        var (problem, _, method, identity) = Simulated();
        var bytes = Write(identity, method.ExportState(), problem.Count);

        using var contents = ArrowIpc.Read(bytes);
        Assert.Equal(ArrowIpcFormat.File, contents.Format);
        Assert.Equal(InfluenceProbe.Schema.FieldsList.Select(f => (f.Name, ArrowText.Type(f.DataType), f.IsNullable)),
            contents.Schema.FieldsList.Select(f => (f.Name, ArrowText.Type(f.DataType), f.IsNullable)));
        Assert.Equal("influence-probe", contents.Schema.Metadata["event-type"]);
        Assert.Equal("2", contents.Schema.Metadata["schema-version"]);
        Assert.Equal("forward-only;horizon=3", contents.Schema.Metadata[ProbeSetFile.MethodKey]);
        Assert.Equal(identity.ThetaSha256, contents.Schema.Metadata[ProbeSetFile.ThetaKey]);
        Assert.Equal(identity.DataSha256, contents.Schema.Metadata[ProbeSetFile.DataKey]);
        Assert.Equal(64, contents.Schema.Metadata[ProbeSetFile.FactorsKey].Length);
        // 70 rows (examples only) in record batches of at most 64 (a reader never needs the whole file as one batch).
        Assert.Equal([64, 6], contents.Batches.Select(b => b.Length));

        // Each row is the probe the Simulator would publish for that unit (keys as on the probes topic).
        var rows = ArrowEventFile.Read<InfluenceProbe>(bytes).Events;
        Assert.Equal("run-a/42/example/1000", rows[0].Key);
        Assert.Equal("run-a/42/example/1483", rows[69].Key);
        Assert.Equal(70, rows.Count);
        Assert.All(rows, r => Assert.Equal(("mlp:6-5-3", 70L, 0L, ProbePrecision.Float32), (r.Architecture, r.SetExamples, r.SetSources, r.Precision)));
        Assert.Equal(new ProbeFormat([6, 5, 3], 2, ProbePrecision.Float32).Tensors, rows[0].Tensors);
        Assert.Equal(2, rows[0].Rank);
    }

    [Fact]
    public void A_corrupt_truncated_or_foreign_file_is_refused_saying_what()
    {
        var (problem, _, method, identity) = Simulated(20);
        var state = method.ExportState();
        var bytes = Write(identity, state, problem.Count);

        // One factor changed (the value of the last example's last float, a mantissa bit): the checksum says so.
        var flipped = (byte[])bytes.Clone();
        Assert.NotEqual(0f, state.Examples[^1][^1]);
        var last = BitConverter.GetBytes(state.Examples[^1][^1]);
        int at = bytes.AsSpan().LastIndexOf(last);
        Assert.True(at > 0);
        flipped[at] ^= 0x01;
        Assert.Contains("do not match their checksum", Assert.Throws<ProbeFormatException>(() => ProbeSetFile.Read(flipped, "f.arrow")).Message, StringComparison.Ordinal);

        var truncated = bytes[..(bytes.Length / 2)];
        Assert.Contains("f.arrow is truncated or corrupt", Assert.Throws<ProbeFormatException>(() => ProbeSetFile.Read(truncated, "f.arrow")).Message, StringComparison.Ordinal);

        // Probes straight off the topic (an event stream, no set metadata) are not a probe-set file.
        var probe = new InfluenceProbe("run-a", 42, ProbeSubject.Example, 1, state.Architecture, 2, 1, 0, state.ExampleTensors, ProbePrecision.Float32, state.Examples[0]);
        var stream = EventCodecs.Probes.EncodeBatch([probe]);
        Assert.Contains("no 'probe-set-factors-sha256' schema metadata", Assert.Throws<ProbeFormatException>(() => ProbeSetFile.Read(stream, "s.arrow")).Message, StringComparison.Ordinal);

        // Shared tensors travel as chunk rows; a forward-only set whose shared tensors are not its directions is refused on import.
        var shared = new ProbeSetState
        {
            Architecture = state.Architecture, ExampleTensors = state.ExampleTensors, Examples = state.Examples, SourceTensors = state.SourceTensors, Sources = state.Sources,
            Shared = [new StateTensor(new ProbeTensor("operator", 2, 2, 0), [1f, 0f, 0f, 1f])],
        };
        var read = ProbeSetFile.Read(Write(identity, shared, problem.Count), "shared.arrow").State;
        Assert.Equal([1f, 0f, 0f, 1f], Assert.Single(read.Shared).Values);
        var served = (ForwardOnlyMethod)MethodFactory.Create("forward-only", Settings);
        Assert.Contains("carries only its shared directions", Assert.Throws<ArgumentException>(() => served.ImportState(ServedModel.Of(problem), read)).Message, StringComparison.Ordinal);
    }
}
