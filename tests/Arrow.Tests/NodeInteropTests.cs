using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Attribution.Arrow.Tests;

/// <summary>
/// Writes every C# fixture stream, then runs infra/node/arrow-interop.mjs once: apache-arrow reads
/// our streams (dumping their values and re-encoding them with tableToIPC) and writes its own
/// native fixtures. The tests compare the canonical dumps of both implementations.
/// </summary>
public sealed class NodeInteropFixture : IDisposable
{
    public NodeInteropFixture()
    {
        WorkDir = Directory.CreateTempSubdirectory("arrow-interop-").FullName;
        var cs = Directory.CreateDirectory(Path.Combine(WorkDir, "cs")).FullName;
        foreach (var (name, schema, batches) in Fixtures.Streams())
        {
            File.WriteAllBytes(Path.Combine(cs, name + ".arrow"), ArrowStreamWriter.ToBytes(schema, batches));
            Expected[name] = ArrowDump.Of(schema, batches);
        }
        var nodeDir = Path.Combine(RepoRoot.Path, "infra", "node");
        if (!Directory.Exists(Path.Combine(nodeDir, "node_modules", "apache-arrow")))
        {
            SetupError = $"infra/node/node_modules/apache-arrow is missing; run './pipeline test' (it installs the npm packages) or 'cd infra/node && npm ci'.";
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
    public void CSharpWrittenStreams_ReadByArrowJs_HaveEveryValueEqual()
    {
        RequireNode();
        foreach (var (name, expected) in fixture.Expected)
        {
            var error = Path.Combine(Dir("cs"), name + ".js.error");
            Assert.False(File.Exists(error), $"{name}: apache-arrow failed to read our stream: {(File.Exists(error) ? File.ReadAllText(error) : "")}");
            var ours = expected["batches"]!.AsArray().Count;
            var actual = ArrowDump.WithoutSynthesizedEmptyBatch(JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("cs"), name + ".js.json")))!, ours);
            Assert.True(JsonNode.DeepEquals(expected, actual), $"{name}: apache-arrow read different values.\nexpected {expected.ToJsonString()}\nactual   {actual.ToJsonString()}");
        }
    }

    [Fact]
    public void OurStreamsReEncodedByArrowJs_ReadBackByOurReader_WithSameSchemaAndRows()
    {
        RequireNode();
        foreach (var (name, expected) in fixture.Expected)
        {
            var bytes = File.ReadAllBytes(Path.Combine(Dir("rewrite"), name + ".arrow"));
            var (schema, batches) = ArrowStreamReader.ReadAll(bytes);
            var actual = ArrowDump.Of(schema, batches);
            Assert.True(JsonNode.DeepEquals(expected["schema"], actual["schema"]), $"{name}: schema differs after the JS rewrite: {actual["schema"]!.ToJsonString()}");
            Assert.True(JsonNode.DeepEquals(ArrowDump.Rows(expected), ArrowDump.Rows(actual)), $"{name}: rows differ after the JS rewrite");
        }
    }

    [Theory]
    [InlineData("all_types", 4, 9 + 0 + 65 + 8)]
    [InlineData("no_nulls", 1, 7)]
    [InlineData("empty", 0, 0)]
    public void ArrowJsNativeStreams_ReadByOurReader_MatchArrowJsValues(string name, int batchCount, int rowCount)
    {
        RequireNode();
        var bytes = File.ReadAllBytes(Path.Combine(Dir("js"), name + ".arrow"));
        var (schema, batches) = ArrowStreamReader.ReadAll(bytes);
        Assert.Equal(batchCount, batches.Count);
        Assert.Equal(rowCount, batches.Sum(b => b.Length));
        var expected = ArrowDump.WithoutSynthesizedEmptyBatch(JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("js"), name + ".js.json")))!, batches.Count);
        var actual = ArrowDump.Of(schema, batches);
        Assert.True(JsonNode.DeepEquals(expected, actual), $"{name}: our reader disagrees with apache-arrow.\nexpected {expected.ToJsonString()}\nactual   {actual.ToJsonString()}");
    }

    [Fact]
    public void ArrowJsNativeStream_ReWrittenByUs_IsReadIdenticallyByOurReader()
    {
        RequireNode();
        var bytes = File.ReadAllBytes(Path.Combine(Dir("js"), "all_types.arrow"));
        var (schema, batches) = ArrowStreamReader.ReadAll(bytes);
        var again = ArrowStreamReader.ReadAll(ArrowStreamWriter.ToBytes(schema, batches));
        Assert.True(JsonNode.DeepEquals(ArrowDump.Of(schema, batches), ArrowDump.Of(again.Schema, again.Batches)));
    }
}
