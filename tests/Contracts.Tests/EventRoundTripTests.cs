using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;
using Attribution.Contracts.Arrow;
using FsCheck;
using FsCheck.Fluent;

namespace Attribution.Contracts.Tests;

public class EventRoundTripTests
{
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    // Records hold lists, so compare by value through their JSON form (floats keep every bit via round-trip formatting).
    internal static void AssertSame<T>(T expected, T actual) =>
        Assert.Equal(JsonSerializer.Serialize(expected, Json), JsonSerializer.Serialize(actual, Json));

    internal static readonly DateTimeOffset T0 = new(2026, 11, 22, 21, 54, 2, 123, 456, TimeSpan.Zero);

    internal static AttributionResult Attribution(int k, int seed = 1)
    {
        var rng = new Random(seed);
        return new AttributionResult($"q-{seed}", "run-7@step-300", "forward-only", Enumerable.Range(0, k).Select(i => (long)rng.Next()).ToArray(),
            Enumerable.Range(0, k).Select(_ => (float)rng.NextDouble()).ToArray(), [3, 1, 4], [0.5f, -0.25f, float.NaN], 1234)
        {
            // Odd seeds carry the optional columns (a language model's attribution), even seeds leave them null.
            OutputFunction = seed % 2 == 1 ? "completion log-likelihood (nats)" : null,
            ExampleSourceIds = seed % 2 == 1 ? Enumerable.Range(0, k).Select(i => (long)(i % 3)).ToArray() : null,
            SourceNames = seed % 2 == 1 ? ["fortunes/art", "", "dict-jargon ü€"] : null,
        };
    }

    /// <summary>A probe of one rank-1 weight (3 x 2: U 3 values, Vt 2) and its bias (3): 8 factors, exact in float16.</summary>
    internal static InfluenceProbe Probe(ProbePrecision precision = ProbePrecision.Float16, long id = 5) =>
        new("run-1", 300, ProbeSubject.Source, id, "mlp:2-3", 1, 40, 4, [new("layers.0.weight", 3, 2, 1), new("layers.0.bias", 3, 1, 0)], precision,
            [0.5f, -1f, 2f, 0.25f, 3f, -0.125f, 1.5f, 4f]);

    internal static CheckpointRecipe Recipe { get; } = new("mlp:784-128-64-10", 0.05, 5e-4, 128, ulong.MaxValue - 1, "fashion-mnist");

    [Fact]
    public void EveryEventType_RoundTripsThroughOneSelfContainedStream()
    {
        AssertSame(new TrainingBatch("run-1", 42, [1, 2, 3], [7, 7, 9], [0xde, 0xad]), EventCodecs.TrainingBatches.Decode(EventCodecs.TrainingBatches.Encode(new TrainingBatch("run-1", 42, [1, 2, 3], [7, 7, 9], [0xde, 0xad]))));
        var tb = new TrainingBatch("run-1", 0, [], [], null);
        AssertSame(tb, EventCodecs.TrainingBatches.Decode(EventCodecs.TrainingBatches.Encode(tb)));
        var documents = new TrainingBatch("lm", 7, [long.MaxValue, 3, 4], [0, 1, 1], Documents: [[256, 72, 105, 257], [], [256, 257]]);
        AssertSame(documents, EventCodecs.TrainingBatches.Decode(EventCodecs.TrainingBatches.Encode(documents)));
        var cp = new CheckpointPublished("run-1", 300, "file:///tmp/ckpt/step-300.safetensors", "sha256:00ff", 109_386, Recipe);
        AssertSame(cp, EventCodecs.Checkpoints.Decode(EventCodecs.Checkpoints.Encode(cp)));
        var lm = cp with { Recipe = new CheckpointRecipe("gpt:vocab=65,context=64,d=64,heads=4,layers=2,mlp=4,tied=1", 3e-3, 0.1, 16, 7, "fortunes,foldoc", "bytes") };
        AssertSame(lm, EventCodecs.Checkpoints.Decode(EventCodecs.Checkpoints.Encode(lm)));
        var noRecipe = cp with { Recipe = null };
        AssertSame(noRecipe, EventCodecs.Checkpoints.Decode(EventCodecs.Checkpoints.Encode(noRecipe)));
        foreach (var precision in new[] { ProbePrecision.Float16, ProbePrecision.Float32 })
        {
            var probe = Probe(precision);
            AssertSame(probe, EventCodecs.Probes.Decode(EventCodecs.Probes.Encode(probe)));
        }
        Assert.Equal("run-1/300/source/5", Probe().Key);
        Assert.Equal("run-1/300/example/7", InfluenceProbe.KeyOf("run-1", 300, ProbeSubject.Example, 7));
        Assert.Equal("run-1/300/checkpoint", InfluenceProbe.CheckpointKey("run-1", 300));
        var image = new ModelQuery("q-1", "run-1@300", [0f, 0.5f, 1f, -0f], null, T0);
        AssertSame(image, EventCodecs.Queries.Decode(EventCodecs.Queries.Encode(image)));
        var tokens = ModelQuery.FromTokens("q-2", "run-1@300", "gpt2", [101, 2023, 102], [7], T0);
        AssertSame(tokens, EventCodecs.Queries.Decode(EventCodecs.Queries.Encode(tokens)));
        var text = ModelQuery.FromText("q-3", "run-1@300", "bytes", "", "a completion ü€", T0);
        AssertSame(text, EventCodecs.Queries.Decode(EventCodecs.Queries.Encode(text)));
        var attribution = Attribution(100);
        AssertSame(attribution, EventCodecs.Attributions.Decode(EventCodecs.Attributions.Encode(attribution)));
        Assert.Equal(["fortunes/art", "", "dict-jargon ü€"], EventCodecs.Attributions.Decode(EventCodecs.Attributions.Encode(attribution)).SourceNames);
        var plain = Attribution(3, seed: 2);
        AssertSame(plain, EventCodecs.Attributions.Decode(EventCodecs.Attributions.Encode(plain)));
        var alert = new ContaminationAlert("q-1", [3], [10, 11], 0.93, 0.5);
        AssertSame(alert, EventCodecs.Alerts.Decode(EventCodecs.Alerts.Encode(alert)));
    }

    [Fact]
    public void SpanIndexReferences_RoundTrip_AndAReferenceWithoutASha256IsRejected()
    {
        var reference = new SpanIndexPublished("run-1", 300, "file:///runs/r/span-index/run-1-300.spans", "sha256:ab12", 35_789, 3_917_551, 32_100_000, "gpt2");
        Assert.Equal(reference, EventCodecs.SpanIndexes.Decode(EventCodecs.SpanIndexes.Encode(reference)));
        var e = Assert.Throws<EventContractException>(() => EventCodecs.SpanIndexes.Decode(EventCodecs.SpanIndexes.Encode(reference with { Checksum = "md5:ab12" })));
        Assert.Contains("sha256", e.Message, StringComparison.Ordinal);
    }

    private static byte[] Fixture(string name) => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", name));

    [Fact]
    public void StreamsWrittenByTheFormerCodec_StillDecode()
    {
        // Written by the hand-written codec this repository used before Apache.Arrow (same schemas, different
        // flatbuffer layout): events already on topics and in files must stay readable.
        AssertSame(new TrainingBatch("run-1", 42, [1, 2, 3], [7, 7, 9], [0xde, 0xad]), EventCodecs.TrainingBatches.Decode(Fixture("former-codec/training-batch.arrow")));
        AssertSame(new CheckpointPublished("run-1", 300, "file:///tmp/ckpt/step-300.safetensors", "sha256:00ff", 109_386), EventCodecs.Checkpoints.Decode(Fixture("former-codec/checkpoint-published.arrow")));
        // Schema-version-1 probes (a private header inside a binary column) are no longer read: the Simulator redoes them.
        Assert.Contains("'architecture'", Assert.Throws<EventContractException>(() => EventCodecs.Probes.Decode(Fixture("former-codec/influence-probe.arrow"))).Message, StringComparison.Ordinal);
        AssertSame(new ModelQuery("q-1", "run-1@300", [0f, 0.5f, 1f, -0f], null, T0), EventCodecs.Queries.Decode(Fixture("former-codec/model-query.arrow")));
        var attributions = EventCodecs.Attributions.DecodeBatch(Fixture("former-codec/attribution.arrow"));
        AssertSame(new AttributionResult("q-1", "run-7@step-300", "forward-only", [5, 9, 2], [0.5f, 0.25f, -1f], [3, 1], [0.75f, float.NaN], 1234), attributions[0]);
        AssertSame(new AttributionResult("q-2", "run-7@step-300", "tracin", [], [], [], [], 0), attributions[1]);
        AssertSame(new ContaminationAlert("q-1", [3], [10, 11], 0.93, 0.5), EventCodecs.Alerts.Decode(Fixture("former-codec/contamination-alert.arrow")));
    }

    [Fact]
    public void BatchEncoding_RoundTripsAllEventsInOrder_AndPooledWriterEncodingMatches()
    {
        var events = Enumerable.Range(0, 50).Select(i => Attribution(i % 7, seed: i)).ToArray();
        var decoded = EventCodecs.Attributions.DecodeBatch(EventCodecs.Attributions.EncodeBatch(events));
        Assert.Equal(events.Length, decoded.Count);
        for (var i = 0; i < events.Length; i++)
        {
            AssertSame(events[i], decoded[i]);
        }
        var pooled = new ArrayBufferWriter<byte>();
        EventCodecs.Attributions.Encode(events[3], pooled);
        Assert.Equal(EventCodecs.Attributions.Encode(events[3]), pooled.WrittenSpan.ToArray());
    }

    [Fact]
    public void QueryTimestamp_IsMicrosecondUtcOnTheWire()
    {
        var bytes = EventCodecs.Queries.Encode(new ModelQuery("q", "m", [1f], null, T0.ToOffset(TimeSpan.FromHours(2))));
        using var contents = ArrowIpc.Read(bytes);
        Assert.Equal("timestamp[us, UTC]", ArrowText.Type(contents.Schema.GetFieldByName("timestamp").DataType));
        Assert.Equal((T0 - DateTimeOffset.UnixEpoch).Ticks / 10, ((Apache.Arrow.TimestampArray)contents.Batches[0].Column("timestamp")).Values[0]);
        Assert.Equal(T0, EventCodecs.Queries.Decode(bytes).Timestamp);
    }

    [Fact]
    public void RandomAttributions_RoundTripExactly()
    {
        var gen =
            from k in Gen.Choose(0, 120)
            from ids in Gen.ArrayOf(ArbMap.Default.GeneratorFor<long>(), k)
            from scores in Gen.ArrayOf(ArbMap.Default.GeneratorFor<float>(), k)
            from method in ArbMap.Default.GeneratorFor<NonNull<string>>()
            from latency in Gen.Choose(0, int.MaxValue)
            select new AttributionResult("q", "m", method.Get, ids, scores, ids.Take(2).ToArray(), scores.Take(2).ToArray(), latency);
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300).WithReplay(4242UL, 1UL), Prop.ForAll(gen.ToArbitrary(), a =>
        {
            var b = EventCodecs.Attributions.Decode(EventCodecs.Attributions.Encode(a));
            return JsonSerializer.Serialize(a, Json) == JsonSerializer.Serialize(b, Json);
        }));
    }
}
