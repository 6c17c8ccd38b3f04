namespace Attribution.Ingest.Tests;

/// <summary>Reading a trainer's run directory: checkpoints with manifests in step order, sources from the manifest, file or seed.</summary>
public sealed class RunScannerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ingest-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private void Write(string relative, string text)
    {
        var path = Path.Combine(_dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    [Fact]
    public void Checkpoints_with_manifests_are_found_in_step_order_and_one_without_is_not_ready()
    {
        Write("checkpoints/step-20.safetensors", "x");
        Write("checkpoints/step-3.safetensors", "x");
        Write("checkpoints/step-40.safetensors", "x");   // no manifest yet: skipped
        Write("checkpoints/notes.txt", "x");
        Write("batches/step-20.json", "{\"exampleIds\": [5, 6], \"sourceIds\": [1, 0]}");
        Write("batches/step-3.json", "{\"exampleIds\": [1, 2, 3], \"sourceIds\": [2, 2, 2]}");
        var found = new RunScanner(_dir, 4, 1).Scan();
        Assert.Equal([3L, 20L], found.Select(c => c.Step));
        Assert.Equal([1L, 2L, 3L], found[0].ExampleIds);
        Assert.Equal([2L, 2L, 2L], found[0].SourceIds);
        Assert.Equal([1L, 0L], found[1].SourceIds);
        Assert.Equal(Path.Combine(_dir, "checkpoints", "step-20.safetensors"), found[1].Path);
    }

    [Fact]
    public void Without_source_ids_the_sources_file_assigns_them_and_else_the_seeded_hash()
    {
        Write("checkpoints/step-1.safetensors", "x");
        Write("batches/step-1.json", "{\"exampleIds\": [10, 11]}");
        var seeded = new RunScanner(_dir, 5, 9).Scan().Single();
        Assert.Equal([RunScanner.SeededSource(10, 9, 5), RunScanner.SeededSource(11, 9, 5)], seeded.SourceIds);

        Write(RunScanner.SourcesFileName, "{\"sources\": [{\"id\": 3, \"name\": \"web\", \"flagged\": true}], \"exampleSources\": {\"10\": 3, \"11\": 3}}");
        var scanner = new RunScanner(_dir, 5, 9);
        Assert.Equal([3L, 3L], scanner.Scan().Single().SourceIds);
        Assert.True(scanner.LoadSources()!.Sources.Single().Flagged);
    }

    [Fact]
    public void Malformed_manifests_and_sources_are_refused_naming_the_file_and_the_fix()
    {
        Write("checkpoints/step-1.safetensors", "x");
        Write("batches/step-1.json", "{\"exampleIds\": [1, 2], \"sourceIds\": [0]}");
        var e = Assert.Throws<RunFormatException>(() => new RunScanner(_dir, 2, 1).Scan());
        Assert.Contains("2 exampleIds but 1 sourceIds", e.Message, StringComparison.Ordinal);

        Write("batches/step-1.json", "{\"exampleIds\": [1, 2");
        e = Assert.Throws<RunFormatException>(() => new RunScanner(_dir, 2, 1).Scan());
        Assert.Contains("step-1.json: invalid", e.Message, StringComparison.Ordinal);
        Assert.Contains("expected e.g.", e.Message, StringComparison.Ordinal);

        Write("batches/step-1.json", "{\"exampleIds\": [1, 2]}");
        Write(RunScanner.SourcesFileName, "{\"exampleSources\": {\"1\": 0}}");
        e = Assert.Throws<RunFormatException>(() => new RunScanner(_dir, 2, 1).Scan());
        Assert.Contains("example 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_directory_has_no_checkpoints_and_a_non_safetensors_file_is_not_described()
    {
        Assert.Empty(new RunScanner(_dir, 2, 1).Scan());
        Write("bad.safetensors", "not safetensors");
        var e = Assert.Throws<RunFormatException>(() => RunScanner.Describe(Path.Combine(_dir, "bad.safetensors")));
        Assert.Contains("not a valid safetensors checkpoint", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_seeded_source_is_stable_in_range_and_spread_over_every_source()
    {
        var counts = new int[10];
        for (long id = 0; id < 10_000; id++)
        {
            var s = RunScanner.SeededSource(id, 1, 10);
            Assert.Equal(s, RunScanner.SeededSource(id, 1, 10));
            counts[s]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 900, 1100));
        Assert.NotEqual(
            Enumerable.Range(0, 50).Select(i => RunScanner.SeededSource(i, 1, 10)),
            Enumerable.Range(0, 50).Select(i => RunScanner.SeededSource(i, 2, 10)));
    }
}
