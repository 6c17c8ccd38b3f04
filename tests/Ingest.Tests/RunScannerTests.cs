using Attribution.Contracts;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

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

    [Fact]
    public void The_recipe_every_checkpoint_event_states_comes_from_run_json_and_its_absence_is_refused_with_the_fix()
    {
        var missing = Assert.Throws<RunFormatException>(() => new RunScanner(_dir, 4, 1).LoadRecipe());
        Assert.Contains("run.json is missing: every checkpoint event states the run's architecture and training recipe", missing.Message, StringComparison.Ordinal);

        var recipe = TrainingRecipe.DefaultMlp([0, 1, 2], [0], epochs: 1, seed: 7) with { BatchSize = 2 };
        Write("run.json", new RunManifest { Recipe = recipe }.ToJson());
        var read = new RunScanner(_dir, 4, 1).LoadRecipe();
        var data = new ClassifierRun(read, null);
        Assert.Equal(new CheckpointRecipe("mlp:784-128-64-10", 0.05f, 5e-4f, 2, 7, "fashion-mnist"), data.CheckpointRecipe);
        Assert.Equal(784, data.Features);
    }

    [Fact]
    public void Checkpoints_saved_along_training_are_published_before_the_model_only_when_asked()
    {
        // train --save-every 1 over 3 epochs of 2 steps: epochs 1, 2 and 3 (the last is the model itself).
        var recipe = TrainingRecipe.DefaultMlp([0, 1, 2, 3], [0], epochs: 3, seed: 7) with { BatchSize = 2 };
        var saved = new[] { new TrainingCheckpoint(1, 2, "training-checkpoints/epoch-0001.safetensors"), new TrainingCheckpoint(2, 4, "training-checkpoints/epoch-0002.safetensors"),
            new TrainingCheckpoint(3, 6, "training-checkpoints/epoch-0003.safetensors") };
        Write("run.json", new RunManifest { Recipe = recipe, Metrics = new TrainingMetrics { Steps = 6 }, TrainingCheckpoints = saved }.ToJson());
        Write(RunDirectory.CheckpointFile, "x");
        Write(saved[0].File, "x");
        Write(saved[1].File, "x");
        Write(saved[2].File, "x");

        var model = Assert.Single(new RunScanner(_dir, 4, 1).Scan());
        Assert.Equal(6, model.Step);
        var all = new RunScanner(_dir, 4, 1) { TrainingCheckpoints = true }.Scan();
        Assert.Equal([2L, 4L, 6L], all.Select(c => c.Step));
        Assert.Equal([Path.Combine(_dir, saved[0].File), Path.Combine(_dir, saved[1].File), model.Path], all.Select(c => c.Path));
        Assert.All(all, c => Assert.Equal([0L, 1, 2, 3], c.ExampleIds));
        Assert.All(all, c => Assert.Equal(model.SourceIds, c.SourceIds));

        File.Delete(Path.Combine(_dir, saved[1].File));
        var e = Assert.Throws<RunFormatException>(() => new RunScanner(_dir, 4, 1) { TrainingCheckpoints = true }.Scan());
        Assert.Contains("lists training checkpoint 'training-checkpoints/epoch-0002.safetensors' (step 4)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Batch_inputs_of_a_data_set_Ingest_cannot_read_are_refused_naming_it()
    {
        var recipe = TrainingRecipe.DefaultMlp([0], [0]) with { Data = new() { Name = "cifar-10", TrainIds = [0] } };
        var error = Assert.Throws<RunFormatException>(() => new ClassifierRun(recipe, null).Payload([0L], "run.json"));
        Assert.Equal("run.json: data set 'cifar-10' is not one Ingest can read inputs from (known: fashion-mnist).", error.Message);
    }

    [Fact]
    public void A_language_model_run_is_published_as_its_documents_with_the_gpt_architecture_and_the_tokenizer()
    {
        // A run as './pipeline train --model gpt' writes it: run.json (recipe, data) beside the Hugging Face checkpoint.
        var config = new GptConfig(VocabSize: ByteTokenizer.Size, Context: 16, DModel: 8, Heads: 2, Layers: 1);
        var gpt = new Gpt(config, seed: 3);
        GptCheckpoint.Save(_dir, gpt);
        var corpus = TextCorpus.Load("fortunes/tao");
        long[] train = [corpus.Documents[4].Id, corpus.Documents[0].Id, corpus.Documents[2].Id];
        var recipe = new GptRecipe { Config = config, Corpus = corpus.Spec, Steps = 7, BatchSize = 2, LearningRate = 2e-3f, WeightDecay = 0.05f, Seed = 11 };
        var json = System.Text.Json.JsonSerializer.Serialize(new
        {
            recipe,
            data = new { corpus = corpus.Spec, tokenizer = "bytes", trainDocumentIds = train, validationDocumentIds = new long[] { corpus.Documents[1].Id } },
            checkpoint = GptCheckpoint.WeightsFile,
        }, new System.Text.Json.JsonSerializerOptions { PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase });
        Write("run.json", json);

        var scanner = new RunScanner(_dir, 4, 1);
        var found = Assert.Single(scanner.Scan());
        Assert.Equal(7, found.Step);
        Assert.Equal(train, found.ExampleIds);
        Assert.Equal([corpus.Documents[4].SourceId, corpus.Documents[0].SourceId, corpus.Documents[2].SourceId], found.SourceIds.Select(s => (int)s));
        var data = Assert.IsType<LanguageRun>(RunData.Load(scanner, null));
        Assert.Equal(new CheckpointRecipe(new GptModel(gpt).Architecture, 2e-3f, 0.05f, 2, 11, corpus.Spec, "bytes"), data.CheckpointRecipe);
        Assert.StartsWith("gpt:vocab=259,context=16,d=8,heads=2,layers=1", data.CheckpointRecipe.Architecture, StringComparison.Ordinal);

        // The batch event carries each document's token ids, framed as the model trained on them, through the codec.
        var batch = EventCodecs.TrainingBatches.Decode(EventCodecs.TrainingBatches.Encode(data.Batch("lm", 7, found.ExampleIds, found.SourceIds, "run.json")));
        Assert.Null(batch.Payload);
        Assert.Equal(3, batch.Documents!.Count);
        Assert.Equal(ByteTokenizer.Instance.EncodeDocument(corpus.Documents[4].Bytes), batch.Documents[0]);
        Assert.Equal(ByteTokenizer.Instance.EncodeDocument(corpus.Documents[2].Bytes), batch.Documents[2]);
        Assert.Contains("document 5 is not a training document", Assert.Throws<RunFormatException>(() => data.Batch("lm", 7, [5], [0], "run.json")).Message, StringComparison.Ordinal);
    }
}
