using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Attribution.Contracts.Arrow;

namespace Attribution.Contracts.Tests;

/// <summary>
/// Writes every event type with our codec, then runs infra/node/arrow-interop.mjs once: apache-arrow (JavaScript,
/// a foreign implementation) reads our streams and dumps every value, and writes queries the way a JS client does
/// (dictionary strings from tableFromArrays, an extra list&lt;struct&gt; column, several batches, the file format).
/// </summary>
public sealed class NodeInteropFixture : IDisposable
{
    public NodeInteropFixture()
    {
        WorkDir = Directory.CreateTempSubdirectory("arrow-interop-").FullName;
        var cs = Directory.CreateDirectory(Path.Combine(WorkDir, "cs")).FullName;
        foreach (var (name, bytes, expected) in InteropEvents.All())
        {
            File.WriteAllBytes(Path.Combine(cs, name + ".arrow"), bytes);
            Expected[name] = expected;
        }
        var (setBytes, setExpected) = InteropEvents.ProbeSetFile();
        File.WriteAllBytes(Path.Combine(cs, "probe_set.arrow"), setBytes);
        Expected["probe_set"] = setExpected;
        var nodeDir = Path.Combine(RepoRoot.Path, "infra", "node");
        if (!Directory.Exists(Path.Combine(nodeDir, "node_modules", "apache-arrow")))
        {
            SetupError = "infra/node/node_modules/apache-arrow is missing; run './pipeline test' (it installs the npm packages) or 'cd infra/node && npm ci'.";
            return;
        }
        var start = new ProcessStartInfo("node", ["arrow-interop.mjs", WorkDir])
        {
            WorkingDirectory = nodeDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        try
        {
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(120)))
            {
                process.Kill(entireProcessTree: true);
                SetupError = "node arrow-interop.mjs did not finish within 120 s.";
                return;
            }
            if (process.ExitCode != 0)
            {
                SetupError = $"node arrow-interop.mjs exited with {process.ExitCode}: {stderr.Result}{stdout.Result}";
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            SetupError = $"Could not start 'node' ({e.Message}); install Node.js 20 (./pipeline test installs it).";
        }
    }

    public string WorkDir { get; }

    public string? SetupError { get; }

    public Dictionary<string, JsonObject> Expected { get; } = [];

    public void Dispose() => Directory.Delete(WorkDir, recursive: true);
}

public sealed class NodeInteropTests(NodeInteropFixture fixture) : IClassFixture<NodeInteropFixture>
{
    private string Dir(string sub) => Path.Combine(fixture.WorkDir, sub);

    private void RequireNode() => Assert.True(fixture.SetupError is null, fixture.SetupError);

    [Fact]
    public void EveryEventWeWrite_IsReadByArrowJs_WithEveryValue()
    {
        RequireNode();
        Assert.Equal(8, fixture.Expected.Count);
        foreach (var (name, expected) in fixture.Expected)
        {
            var error = Path.Combine(Dir("cs"), name + ".js.error");
            Assert.False(File.Exists(error), $"{name}: apache-arrow failed to read our stream: {(File.Exists(error) ? File.ReadAllText(error) : "")}");
            var actual = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("cs"), name + ".js.json")))!;
            Assert.True(JsonNode.DeepEquals(expected, actual), $"{name}: apache-arrow read different values.\nexpected {expected.ToJsonString()}\nactual   {actual.ToJsonString()}");
        }
    }

    [Fact]
    public void ProbeFactorsReadThroughArrowJsTables_AreTheValuesWritten()
    {
        // An Arrow user's view of a probe (table API, float16 decoded by apache-arrow): names, shapes, ranks and factors.
        RequireNode();
        var rows = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("cs"), "probes.js.table.json")))!.AsArray();
        var low = EventRoundTripTests.Probe(ProbePrecision.Float16);
        Assert.Equal(low.Architecture, (string?)rows[0]!["architecture"]);
        Assert.Equal(low.Tensors, rows[0]!["tensors"]!.AsArray().Select(t => new ProbeTensor((string)t!["name"]!, (int)t["rows"]!, (int)t["cols"]!, (int)t["rank"]!)));
        Assert.Equal(low.Factors, rows[0]!["factors"]!.AsArray().Select(v => (float)(double)v!));
        Assert.Equal(2.0, (double)rows[0]!["factors"]![2]!); // U[2, 0] of layers.0.weight
        Assert.Equal(1e30f, (float)(double)rows[1]!["factors"]![3]!);
    }

    [Fact]
    public void ProbeSetFileReadThroughArrowJsTables_IsTheSetWritten()
    {
        // A probe-set file (attribute --probes) is an Arrow IPC file of the probe wire schema: apache-arrow reads its
        // set metadata, its record batches, each row's key, tensors and every factor value.
        RequireNode();
        var file = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("cs"), "probe_set.js.table.json")))!;
        var set = InteropEvents.ProbeSetRows();
        Assert.Equal("forward-only;horizon=3", (string?)file["metadata"]!["probe-set-method"]);
        Assert.Equal("influence-probe", (string?)file["metadata"]!["event-type"]);
        Assert.Equal(2, (int)file["batches"]!);
        var rows = file["rows"]!.AsArray();
        Assert.Equal(set.Length, rows.Count);
        for (var i = 0; i < set.Length; i++)
        {
            Assert.Equal(set[i].Key, (string?)rows[i]!["key"]);
            Assert.Equal(set[i].Rank, (int)rows[i]!["rank"]!);
            Assert.Equal(set[i].Tensors, rows[i]!["tensors"]!.AsArray().Select(t => new ProbeTensor((string)t!["name"]!, (int)t["rows"]!, (int)t["cols"]!, (int)t["rank"]!)));
            Assert.Equal(set[i].Factors, rows[i]!["factors"]!.AsArray().Select(v => (float)(double)v!));
        }
    }

    [Theory]
    [InlineData("query_dictionary", 1)]
    [InlineData("queries_batches", 3)]
    [InlineData("queries_file", 3)]
    [InlineData("queries_text", 1)]
    public void QueriesWrittenByArrowJs_AreDecodedWithEveryValue(string name, int batches)
    {
        RequireNode();
        var bytes = File.ReadAllBytes(Path.Combine(Dir("js"), name + ".arrow"));
        AssertQueries(bytes, File.ReadAllText(Path.Combine(Dir("js"), name + ".expected.json")));
        using var contents = ArrowIpc.Read(bytes);
        Assert.Equal(batches, contents.Batches.Count);
        Assert.Equal(name == "queries_file" ? ArrowIpcFormat.File : ArrowIpcFormat.Stream, contents.Format);
        if (name == "query_dictionary")
        {
            Assert.Equal(1, EventCodecs.Queries.Decode(bytes) is { QueryId: "q-js-ü€-1" } ? 1 : 0); // one query, one event
        }
    }

    [Theory]
    [InlineData("queries_lz4", "lz4_frame")]
    [InlineData("queries_zstd", "zstd")]
    [InlineData("query_zstd_file", "zstd")]
    public void CompressedQueriesWrittenByArrowJs_AreDecodedWithEveryValue(string name, string codec)
    {
        // Committed fixtures (infra/node/arrow-interop.mjs --compressed): they need no Node at test time.
        var bytes = Fixture(name + ".arrow");
        AssertQueries(bytes, System.Text.Encoding.UTF8.GetString(Fixture(name + ".expected.json")));
        using var contents = ArrowIpc.Read(bytes);
        Assert.Equal(codec, contents.Compression);
    }

    [Fact]
    public void CompressedBodiesAsArrowJs21WritesThem_AreRefusedWithAClearError()
    {
        // apache-arrow 21.2.0 declares the compressed length where the uncompressed length belongs.
        var e = Assert.Throws<EventContractException>(() => EventCodecs.Queries.DecodeBatch(Fixture("queries_zstd.as-written.arrow")));
        Assert.StartsWith("model-query event: not a valid Arrow IPC stream: Malformed Arrow input, reading record batch 0:", e.Message, StringComparison.Ordinal);
    }

    private static byte[] Fixture(string name) => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "js", name));

    private static void AssertQueries(byte[] bytes, string expectedJson)
    {
        var expected = JsonNode.Parse(expectedJson)!.AsArray();
        var queries = EventCodecs.Queries.DecodeBatch(bytes);
        Assert.Equal(expected.Count, queries.Count);
        for (var i = 0; i < queries.Count; i++)
        {
            var q = queries[i];
            var e = expected[i]!;
            Assert.Equal(e["query_id"]!.GetValue<string>(), q.QueryId);
            Assert.Equal(e["model_version"]!.GetValue<string>(), q.ModelVersion);
            Assert.Equal(e["features"]?.AsArray().Select(x => x!.GetValue<string>()), q.Features?.Select(InteropEvents.F32));
            Assert.Equal(e["token_ids"]?.AsArray().Select(x => x!.GetValue<string>()), q.TokenIds?.Select(InteropEvents.L));
            Assert.Equal(e["timestamp_us"]!.GetValue<string>(), InteropEvents.L(Columns.ToMicros(q.Timestamp)));
            // Fixtures written before the language-model columns existed have no such keys: null on both sides.
            Assert.Equal(e["tokenizer"]?.GetValue<string>(), q.Tokenizer);
            Assert.Equal(e["prompt"]?.GetValue<string>(), q.Prompt);
            Assert.Equal(e["completion"]?.GetValue<string>(), q.Completion);
            Assert.Equal(e["completion_token_ids"]?.AsArray().Select(x => x!.GetValue<string>()), q.CompletionTokenIds?.Select(InteropEvents.L));
        }
    }
}

/// <summary>The events sent to apache-arrow, and the canonical dump it must produce for each (built from the records).</summary>
internal static class InteropEvents
{
    public static string L(long v) => v.ToString(CultureInfo.InvariantCulture);
    public static string F16(float v) => "0x" + BitConverter.HalfToUInt16Bits((Half)v).ToString("x4", CultureInfo.InvariantCulture);
    public static string F32(float v) => "0x" + BitConverter.SingleToUInt32Bits(v).ToString("x8", CultureInfo.InvariantCulture);
    private static string F64(double v) => "0x" + BitConverter.DoubleToUInt64Bits(v).ToString("x16", CultureInfo.InvariantCulture);
    private static JsonArray Longs(IReadOnlyList<long>? v) => v is null ? null! : new JsonArray(v.Select(x => (JsonNode)L(x)).ToArray());
    private static JsonArray Strings(IReadOnlyList<string>? v) => v is null ? null! : new JsonArray(v.Select(x => (JsonNode)x).ToArray());
    private static JsonArray Floats(IReadOnlyList<float>? v) => v is null ? null! : new JsonArray(v.Select(x => (JsonNode)F32(x)).ToArray());

    private static JsonObject Dump<T>(IReadOnlyList<T> rows, params (string Name, Func<T, JsonNode?> Value)[] columns) where T : IArrowEvent<T>
    {
        var fields = new JsonArray(T.Schema.FieldsList.Select(f => (JsonNode)new JsonObject
        {
            ["name"] = f.Name,
            ["type"] = ArrowText.Type(f.DataType),
            ["nullable"] = f.IsNullable,
        }).ToArray());
        Assert.Equal(T.Schema.FieldsList.Select(f => f.Name), columns.Select(c => c.Name));
        return new JsonObject
        {
            ["schema"] = new JsonObject
            {
                ["fields"] = fields,
                ["metadata"] = new JsonObject { ["event-type"] = T.EventType, ["schema-version"] = T.SchemaVersion.ToString(CultureInfo.InvariantCulture) },
            },
            ["batches"] = new JsonArray(new JsonObject
            {
                ["rows"] = rows.Count,
                ["columns"] = new JsonArray(columns.Select(c => (JsonNode)new JsonArray(rows.Select(r => c.Value(r)).ToArray())).ToArray()),
            }),
        };
    }

    private static JsonObject DumpProbes(IReadOnlyList<InfluenceProbe> probes) => Dump(probes,
        ("run_id", p => p.RunId), ("step", p => L(p.Step)), ("subject", p => (int)p.Subject), ("subject_id", p => L(p.SubjectId)),
        ("architecture", p => p.Architecture), ("rank", p => p.Rank), ("set_examples", p => L(p.SetExamples)), ("set_sources", p => L(p.SetSources)),
        ("tensor_names", p => new JsonArray(p.Tensors.Select(t => (JsonNode)t.Name).ToArray())), ("tensor_rows", p => new JsonArray(p.Tensors.Select(t => (JsonNode)t.Rows).ToArray())),
        ("tensor_cols", p => new JsonArray(p.Tensors.Select(t => (JsonNode)t.Cols).ToArray())), ("tensor_ranks", p => new JsonArray(p.Tensors.Select(t => (JsonNode)t.Rank).ToArray())),
        ("factors_f32", p => p.Precision == ProbePrecision.Float32 ? Floats(p.Factors) : null),
        ("factors_f16", p => p.Precision == ProbePrecision.Float16 ? new JsonArray(p.Factors.Select(x => (JsonNode)F16(x)).ToArray()) : null),
        ("set_shared", p => p.SetShared == 0 ? null : L(p.SetShared)));

    /// <summary>A probe set as <c>attribute --probes</c> lays it out: 3 example rows (rank 1 weight + bias) then 2 full-rank source rows, float32.</summary>
    public static InfluenceProbe[] ProbeSetRows()
    {
        ProbeTensor[] low = [new("layers.0.weight", 3, 2, 1), new("layers.0.bias", 3, 1, 0)];
        ProbeTensor[] full = [new("layers.0.weight", 3, 2, 0), new("layers.0.bias", 3, 1, 0)];
        InfluenceProbe Row(ProbeSubject subject, long id, ProbeTensor[] tensors, float scale) =>
            new("run-ü", 12, subject, id, "mlp:2-3", 1, 3, 2, tensors, ProbePrecision.Float32,
                [.. Enumerable.Range(0, (int)tensors.Sum(t => t.FactorCount)).Select(i => scale * (i - 3.5f) / 7f)]);
        return [Row(ProbeSubject.Example, 40, low, 1f), Row(ProbeSubject.Example, 7, low, -2f), Row(ProbeSubject.Example, long.MaxValue, low, 1e-30f),
            Row(ProbeSubject.Source, 0, full, 3f), Row(ProbeSubject.Source, 1, full, float.Epsilon)];
    }

    /// <summary>
    /// <see cref="ProbeSetRows"/> as an Arrow IPC file (<see cref="ArrowEventFile"/>, two record batches, the probe-set
    /// metadata keys <c>attribute --probes</c> writes), and the canonical dump apache-arrow must produce for it.
    /// </summary>
    public static (byte[] Bytes, JsonObject Expected) ProbeSetFile()
    {
        var rows = ProbeSetRows();
        var metadata = new Dictionary<string, string>
        {
            ["probe-set-method"] = "forward-only;horizon=3",
            ["probe-set-theta-sha256"] = new string('a', 64),
            ["probe-set-data-sha256"] = new string('b', 64),
            ["probe-set-factors-sha256"] = new string('c', 64),
        };
        using var output = new MemoryStream();
        ArrowEventFile.Write(output, [rows[..2], rows[2..]], metadata);
        var expected = DumpProbes(rows[..2]);
        expected["batches"]!.AsArray().Add(DumpProbes(rows[2..])["batches"]![0]!.DeepClone());
        var meta = expected["schema"]!["metadata"]!.AsObject();
        foreach (var (key, value) in metadata)
        {
            meta[key] = value;
        }

        return (output.ToArray(), expected);
    }

    public static IEnumerable<(string Name, byte[] Bytes, JsonObject Expected)> All()
    {
        var t0 = EventRoundTripTests.T0;
        TrainingBatch[] batches = [new("run-ü€😀", 42, [1, 2, long.MaxValue], [7, 7, -9], [0xde, 0xad, 0]), new("run-1", 0, [], [], null),
            new("lm", 3, [long.MaxValue, 9], [0, 2], Documents: [[256, 72, 105, 257], []])];
        static JsonArray Ints(IEnumerable<int> v) => new(v.Select(x => (JsonNode)x).ToArray());
        yield return ("training_batches", EventCodecs.TrainingBatches.EncodeBatch(batches), Dump(batches,
            ("run_id", b => b.RunId), ("step", b => L(b.Step)), ("example_ids", b => Longs(b.ExampleIds)), ("source_ids", b => Longs(b.SourceIds)),
            ("payload", b => b.Payload is null ? null : Convert.ToHexStringLower(b.Payload)),
            ("token_counts", b => b.Documents is { } d ? Ints(d.Select(x => x.Length)) : null), ("token_ids", b => b.Documents is { } d ? Ints(d.SelectMany(x => x)) : null)));
        CheckpointPublished[] checkpoints = [new("run-1", 300, "file:///tmp/ckpt/step-300.safetensors", "sha256:00ff", 109_386, EventRoundTripTests.Recipe),
            new("run-2", 7, "file:///tmp/gpt/model.safetensors", "sha256:01", 5, EventRoundTripTests.Recipe with { Architecture = "gpt:vocab=65", Tokenizer = "bytes" }),
            new("run-3", 1, "file:///old", "sha256:02", 3)];
        yield return ("checkpoints", EventCodecs.Checkpoints.EncodeBatch(checkpoints), Dump(checkpoints,
            ("run_id", c => c.RunId), ("step", c => L(c.Step)), ("uri", c => c.Uri), ("checksum", c => c.Checksum), ("parameter_count", c => L(c.ParameterCount)),
            ("architecture", c => c.Recipe?.Architecture), ("learning_rate", c => c.Recipe is { } r ? F64(r.LearningRate) : null), ("weight_decay", c => c.Recipe is { } r ? F64(r.WeightDecay) : null),
            ("batch_size", c => c.Recipe?.BatchSize), ("seed", c => c.Recipe is { } r ? L(unchecked((long)r.Seed)) : null), ("dataset", c => c.Recipe?.Dataset), ("tokenizer", c => c.Recipe?.Tokenizer)));
        // A low-rank float16 probe and a full float32 one: apache-arrow must read the tensor names, shapes, ranks and every factor value.
        InfluenceProbe[] probes = [EventRoundTripTests.Probe(ProbePrecision.Float16), EventRoundTripTests.Probe(ProbePrecision.Float32, id: -1) with { Subject = ProbeSubject.Example, Rank = 0,
            Tensors = [new("layers.0.weight", 2, 2, 0)], Factors = [1f, float.Epsilon, -0f, 1e30f] },
            // A shared-state chunk (STRIDE operators): subject 3 and the set's chunk count in the optional set_shared column.
            EventRoundTripTests.Probe(ProbePrecision.Float32, id: 1) with { Subject = ProbeSubject.Shared, Rank = 0, Tensors = [new("stride.matrices", 1, 3, 0)], Factors = [0.5f, -2f, 3f], SetShared = 2 }];
        yield return ("probes", EventCodecs.Probes.EncodeBatch(probes), DumpProbes(probes));
        ModelQuery[] queries = [new("q-1", "run-1@300", [0f, -0f, float.NaN, float.Epsilon, 1e30f], null, t0), new("q-2", "gpt@7", null, [101, 2023, 102], t0.AddDays(-20000)),
            ModelQuery.FromText("q-3", "gpt@7", "gpt2", "The answer is", " 42, ü€😀", t0), ModelQuery.FromTokens("q-4", "gpt@7", "bytes", [], [256, 0, long.MaxValue], t0)];
        static JsonNode Micros(ModelQuery q) => L(Columns.ToMicros(q.Timestamp));
        yield return ("queries", EventCodecs.Queries.EncodeBatch(queries), Dump(queries,
            ("query_id", q => q.QueryId), ("model_version", q => q.ModelVersion), ("features", q => Floats(q.Features)), ("token_ids", q => Longs(q.TokenIds)), ("timestamp", Micros),
            ("tokenizer", q => q.Tokenizer), ("prompt", q => q.Prompt), ("completion", q => q.Completion), ("completion_token_ids", q => Longs(q.CompletionTokenIds))));
        var attributions = Enumerable.Range(0, 5).Select(i => EventRoundTripTests.Attribution(i * 25, seed: i)).ToArray();
        yield return ("attributions", EventCodecs.Attributions.EncodeBatch(attributions), Dump(attributions,
            ("query_id", a => a.QueryId), ("model_version", a => a.ModelVersion), ("method", a => a.Method), ("example_ids", a => Longs(a.ExampleIds)),
            ("scores", a => Floats(a.Scores)), ("source_ids", a => Longs(a.SourceIds)), ("source_scores", a => Floats(a.SourceScores)), ("latency_us", a => L(a.LatencyMicros)),
            ("output_function", a => a.OutputFunction), ("example_source_ids", a => Longs(a.ExampleSourceIds)), ("source_names", a => Strings(a.SourceNames))));
        var one = new[] { EventRoundTripTests.Attribution(100, seed: 9) };
        yield return ("attribution_single", EventCodecs.Attributions.Encode(one[0]), Dump(one,
            ("query_id", a => a.QueryId), ("model_version", a => a.ModelVersion), ("method", a => a.Method), ("example_ids", a => Longs(a.ExampleIds)),
            ("scores", a => Floats(a.Scores)), ("source_ids", a => Longs(a.SourceIds)), ("source_scores", a => Floats(a.SourceScores)), ("latency_us", a => L(a.LatencyMicros)),
            ("output_function", a => a.OutputFunction), ("example_source_ids", a => Longs(a.ExampleSourceIds)), ("source_names", a => Strings(a.SourceNames))));
        ContaminationAlert[] alerts = [new("q-1", [3], [10, 11], 0.93, 0.5), new("q-2", [], [], double.NaN, double.NegativeInfinity)];
        yield return ("alerts", EventCodecs.Alerts.EncodeBatch(alerts), Dump(alerts,
            ("query_id", a => a.QueryId), ("source_ids", a => Longs(a.SourceIds)), ("example_ids", a => Longs(a.ExampleIds)), ("score", a => F64(a.Score)), ("threshold", a => F64(a.Threshold))));
    }
}

internal static class RepoRoot
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Pipeline.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no Pipeline.sln above {AppContext.BaseDirectory}");
    }
}
