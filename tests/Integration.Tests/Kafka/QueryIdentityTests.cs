using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Attribution.Contracts;
using Attribution.Scorer;
using Attribution.Transport;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Attribution.Integration.Tests.Kafka;

/// <summary>
/// Exactly once per query id, whatever a client sends (issue 16), checked from outside the Scorer: a kafkajs producer
/// (Node; not librdkafka, not our code) sends valid, duplicate, unkeyed, mis-keyed and mutated queries into the running
/// mock-cluster pipeline; every input must end as one attribution, one dead letter, or one counted duplicate skip, and
/// no query id may have two attributions.
/// </summary>
[Collection(KafkaPipelineCollection.Name)]
public sealed class QueryIdentityTests(KafkaPipelineFixture kafka, ITestOutputHelper output)
{
    private const int Valid = 20;
    private const int Unkeyed = 6;
    private const int Duplicates = 5;
    private const int UnkeyedDuplicates = 3;
    private const int MisKeyed = 5;
    private const int Mutated = 40;

    private sealed record Input(string Kind, byte[]? Key, byte[] Value);

    [Fact]
    public async Task Inputs_from_a_kafkajs_client_each_end_as_one_attribution_dead_letter_or_counted_skip_and_no_id_is_attributed_twice()
    {
        var prefix = $"ident-{Guid.NewGuid().ToString("N")[..8]}";
        using var host = kafka.BuildScorer($"scorer-{prefix}");
        await host.StartAsync();
        var worker = host.Services.GetRequiredService<ScorerWorker>();
        await KafkaPipelineFixture.Until(() => worker.Index.Current, m => m is not null, () => "the Scorer's probe index" + $" (index error: {worker.Index.LastError ?? "none"}, swaps {worker.Index.Swaps})", 60);

        // A new group starts at the beginning of the shared queries topic: let it finish what earlier tests left there,
        // so the counters' changes below are this test's inputs alone.
        long Processed() => worker.HandledCount + worker.DeadLetteredCount;
        int backlog = kafka.ReadAll(Topics.Queries).Count;
        await KafkaPipelineFixture.Until(Processed, n => n >= backlog, $"the Scorer through the {backlog} earlier queries", 120);
        var before = (Processed(), worker.Metrics.QueriesScored, worker.Metrics.DuplicatesSkipped, worker.Metrics.QueriesRerouted, worker.DeadLetteredCount);

        var inputs = BuildInputs(prefix);
        var acks = await ProduceWithKafkajsAsync(inputs);

        // Keyed inputs went where Kafka's murmur2 puts their key: the same home our Scorer computes for an id.
        for (int i = 0; i < inputs.Count; i++)
        {
            if (inputs[i].Key is { } key)
            {
                Assert.Equal(Partitioner.ForKey(key, KafkaPipelineFixture.Partitions), acks[i].Partition);
            }
        }

        long rerouted() => worker.Metrics.QueriesRerouted - before.Item4;
        await KafkaPipelineFixture.Until(() => Processed() - before.Item1 - rerouted(), n => n >= inputs.Count, $"the Scorer through the {inputs.Count} kafkajs inputs", 120);
        // Re-keyed copies are inputs of their own: wait for them too.
        await KafkaPipelineFixture.Until(() => Processed() - before.Item1, n => n >= inputs.Count + rerouted(), "the re-keyed copies", 60);
        await host.StopAsync();

        var attributions = kafka.ReadAll(Topics.Attributions).Select(r => (Record: r, Result: EventCodecs.Attributions.Decode(r.Value)))
            .Where(x => x.Result.QueryId.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        var inputPositions = inputs.Select((_, i) => (acks[i].Partition, acks[i].Offset)).ToHashSet();
        var deadLetters = kafka.ReadAll(Topics.DeadLetter).Where(r => r.GetHeaderString(DeadLetterPublisher.OriginalTopicHeader) == Topics.Queries
            && inputPositions.Contains((int.Parse(r.GetHeaderString(DeadLetterPublisher.OriginalPartitionHeader)!, System.Globalization.CultureInfo.InvariantCulture),
                long.Parse(r.GetHeaderString(DeadLetterPublisher.OriginalOffsetHeader)!, System.Globalization.CultureInfo.InvariantCulture)))).ToList();
        long duplicates = worker.Metrics.DuplicatesSkipped - before.Item3;
        long reroutedCount = rerouted();

        // No query id has two attributions, each is on its id's home partition, keyed by the id.
        var twice = attributions.GroupBy(a => a.Result.QueryId).Where(g => g.Count() > 1).Select(g => $"{g.Key}×{g.Count()}").ToList();
        Assert.True(twice.Count == 0, $"query ids with more than one attribution: {string.Join(", ", twice)}");
        Assert.All(attributions, a =>
        {
            Assert.Equal(a.Result.QueryId, a.Record.KeyString);
            Assert.Equal(QueryValidator.Home(a.Result.QueryId, KafkaPipelineFixture.Partitions), a.Record.Partition);
        });
        // Every valid and every unkeyed query id was attributed, and no other id was.
        var expectedIds = Enumerable.Range(0, Valid).Select(i => $"{prefix}-v-{i:D3}").Concat(Enumerable.Range(0, Unkeyed).Select(i => $"{prefix}-u-{i:D3}"));
        Assert.Equal(expectedIds.Order(), attributions.Select(a => a.Result.QueryId).Order());
        // Mis-keyed copies are dead-lettered with an error naming both the key and the payload's id.
        for (int i = 0; i < MisKeyed; i++)
        {
            var key = $"{prefix}-fz-{i:D3}";
            var letter = Assert.Single(deadLetters, r => r.KeyString == key);
            var error = letter.GetHeaderString(DeadLetterPublisher.ErrorMessageHeader)!;
            Assert.Contains($"'{key}'", error, StringComparison.Ordinal);
            Assert.Contains($"'{prefix}-v-{i:D3}'", error, StringComparison.Ordinal);
        }

        // Exact copies and unkeyed copies of attributed ids are counted skips, not silence.
        Assert.True(duplicates >= Duplicates + UnkeyedDuplicates, $"{duplicates} duplicate skips counted; expected at least {Duplicates + UnkeyedDuplicates}");
        // The ledger: every input ended in exactly one outcome (a re-keyed input through its copy on the id's home).
        Assert.Equal(inputs.Count, attributions.Count + deadLetters.Count + duplicates);
        Assert.Equal(attributions.Count, worker.Metrics.QueriesScored - before.Item2);
        Assert.Equal(deadLetters.Count, worker.DeadLetteredCount - before.Item5);
        output.WriteLine($"{inputs.Count} kafkajs inputs ({Valid} valid, {Unkeyed} unkeyed, {Duplicates} duplicates, {UnkeyedDuplicates} unkeyed duplicates, " +
            $"{MisKeyed} mis-keyed, {Mutated} mutated) = {attributions.Count} attributions + {deadLetters.Count} dead letters + {duplicates} duplicate skips; {reroutedCount} unkeyed inputs off their id's partition were re-keyed onto it first");
    }

    /// <summary>The inputs, in send order: originals first, so copies of an id arrive after it.</summary>
    private List<Input> BuildInputs(string prefix)
    {
        var random = new Random(16);
        byte[] Encode(string id, int image) => EventCodecs.Queries.Encode(new ModelQuery(id, $"{KafkaPipelineFixture.RunId}@4", kafka.TestImage(image), null, DateTimeOffset.UtcNow));
        byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
        var inputs = new List<Input>();
        var valid = Enumerable.Range(0, Valid).Select(i => Encode($"{prefix}-v-{i:D3}", i)).ToArray();
        inputs.AddRange(valid.Select((v, i) => new Input("valid", Utf8($"{prefix}-v-{i:D3}"), v)));
        inputs.AddRange(Enumerable.Range(0, Unkeyed).Select(i => new Input("unkeyed", null, Encode($"{prefix}-u-{i:D3}", 100 + i))));
        inputs.AddRange(Enumerable.Range(0, Duplicates).Select(i => new Input("duplicate", Utf8($"{prefix}-v-{i:D3}"), valid[i])));
        inputs.AddRange(Enumerable.Range(0, UnkeyedDuplicates).Select(i => new Input("unkeyed duplicate", null, valid[10 + i])));
        inputs.AddRange(Enumerable.Range(0, MisKeyed).Select(i => new Input("mis-keyed", Utf8($"{prefix}-fz-{i:D3}"), valid[i])));
        for (int i = 0; i < Mutated; i++)
        {
            var original = valid[i % Valid];
            byte[] value = (i % 4) switch
            {
                0 => FlipBits(original, random, 1 + random.Next(3)),
                1 => original[..random.Next(1, original.Length)],
                2 => [.. original, .. RandomBytes(random, 1 + random.Next(16))],
                _ => RandomBytes(random, 16 + random.Next(600)),
            };
            // Half under the original's key (the copy's id may still decode to it), half under keys of their own.
            var key = i % 2 == 0 ? Utf8($"{prefix}-v-{i % Valid:D3}") : Utf8($"{prefix}-mut-{i:D3}");
            inputs.Add(new Input("mutated", key, value));
        }

        return inputs;
    }

    private static byte[] FlipBits(byte[] bytes, Random random, int bits)
    {
        var copy = (byte[])bytes.Clone();
        for (int b = 0; b < bits; b++)
        {
            copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
        }

        return copy;
    }

    private static byte[] RandomBytes(Random random, int n)
    {
        var bytes = new byte[n];
        random.NextBytes(bytes);
        return bytes;
    }

    private async Task<List<(int Partition, long Offset)>> ProduceWithKafkajsAsync(List<Input> inputs)
    {
        var root = AppContext.BaseDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "Pipeline.sln")))
        {
            root = Path.GetDirectoryName(root);
        }

        var nodeDir = Path.Combine(root ?? ".", "infra", "node");
        Assert.True(Directory.Exists(Path.Combine(nodeDir, "node_modules", "kafkajs")),
            $"{nodeDir}/node_modules/kafkajs is missing; run './pipeline test' (it installs the npm packages) or 'cd infra/node && npm ci'.");
        var work = Directory.CreateTempSubdirectory("kafkajs-");
        try
        {
            var inputPath = Path.Combine(work.FullName, "input.json");
            var outputPath = Path.Combine(work.FullName, "output.json");
            await File.WriteAllTextAsync(inputPath, JsonSerializer.Serialize(new
            {
                topic = Topics.Queries,
                messages = inputs.Select(m => new { key = m.Key is null ? null : Convert.ToBase64String(m.Key), value = Convert.ToBase64String(m.Value) }),
            }));
            var start = new ProcessStartInfo("node", ["kafkajs-produce.mjs", kafka.Cluster.BootstrapServers, inputPath, outputPath])
            {
                WorkingDirectory = nodeDir,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await process.WaitForExitAsync(timeout.Token);
            Assert.True(process.ExitCode == 0, $"node kafkajs-produce.mjs exited with {process.ExitCode}: {await stderr}{await stdout}");
            output.WriteLine((await stdout).Trim());
            using var acks = JsonDocument.Parse(await File.ReadAllTextAsync(outputPath));
            var result = acks.RootElement.EnumerateArray()
                .Select(a => (a.GetProperty("partition").GetInt32(), long.Parse(a.GetProperty("offset").GetString()!, System.Globalization.CultureInfo.InvariantCulture))).ToList();
            Assert.Equal(inputs.Count, result.Count);
            return result;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }
}
