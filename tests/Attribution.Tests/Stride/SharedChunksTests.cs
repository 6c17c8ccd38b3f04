using Attribution.Attribution;
using Attribution.Attribution.Probes;
using Attribution.Contracts;

namespace Attribution.Tests.Stride;

/// <summary>STRIDE's shared operator tensors travel as probe-sized chunks; these tests protect the split and the join.</summary>
public sealed class SharedChunksTests
{
    private static StateTensor Tensor(string name, int rows, int cols, float start) =>
        new(new ProbeTensor(name, rows, cols, 0), [.. Enumerable.Range(0, rows * cols).Select(i => start + i)]);

    // Protects the round trip: every chunk under the limit, whole rows only, the joined tensors equal to the originals.
    [Theory]
    [InlineData(12)]
    [InlineData(25)]
    [InlineData(1000)]
    public void Split_then_join_gives_the_tensors_back_with_every_chunk_under_the_limit(int maxFloats)
    {
        StateTensor[] shared = [Tensor("stride.basis", 3, 4, 0), Tensor("stride.matrices", 5, 6, 100), Tensor("stride.readout", 1, 2, -7)];
        var chunks = SharedChunks.Split(shared, maxFloats);
        Assert.All(chunks, c => Assert.InRange(c.Values.Length, 1, maxFloats));
        Assert.All(chunks, c => Assert.Equal(c.Tensors.Sum(t => t.FactorCount), c.Values.Length));
        Assert.All(chunks.SelectMany(c => c.Tensors), t => Assert.Equal(shared.Single(s => s.Layout.Name == t.Name).Layout.Cols, t.Cols));
        if (maxFloats == 12)
        {
            // The basis fills chunk 0; the matrices' rows of 6 go two per chunk (1, 2) and the fifth shares chunk 3 with the readout.
            Assert.Equal(4, chunks.Count);
            Assert.Equal(["stride.matrices", "stride.readout"], chunks[3].Tensors.Select(t => t.Name));
        }

        var joined = SharedChunks.Join(chunks);
        Assert.Equal(shared.Length, joined.Count);
        for (int t = 0; t < shared.Length; t++)
        {
            Assert.Equal(shared[t].Layout, joined[t].Layout);
            Assert.Equal(shared[t].Values, joined[t].Values);
        }
    }

    // Protects against silent truncation: a row wider than a chunk, or a chunk whose values do not fit its pieces, is an error.
    [Fact]
    public void A_row_wider_than_a_chunk_and_a_short_chunk_are_refused()
    {
        Assert.Contains("raise the chunk size", Assert.Throws<ArgumentException>(() => SharedChunks.Split([Tensor("wide", 1, 40, 0)], 16)).Message, StringComparison.Ordinal);
        var chunks = SharedChunks.Split([Tensor("m", 4, 3, 0)], 6);
        var broken = new List<(IReadOnlyList<ProbeTensor>, float[])> { chunks[0], (chunks[1].Tensors, chunks[1].Values[..5]) };
        Assert.Throws<ArgumentException>(() => SharedChunks.Join(broken));
    }

    // Protects the wire: a shared chunk keeps its subject, chunk count and key through the Arrow codec, and a chunk index
    // outside the announced count is refused.
    [Fact]
    public void A_shared_chunk_round_trips_through_the_probe_contract()
    {
        var chunk = SharedChunks.Split([Tensor("stride.matrices", 4, 3, 1)], 6)[1];
        var probe = new InfluenceProbe("run", 9, ProbeSubject.Shared, 1, "mlp:4-3-2", 0, 10, 2, chunk.Tensors, ProbePrecision.Float32, chunk.Values) { SetShared = 2 };
        var back = EventCodecs.Probes.Decode(EventCodecs.Probes.Encode(probe));
        Assert.Equal(ProbeSubject.Shared, back.Subject);
        Assert.Equal(2, back.SetShared);
        Assert.Equal("run/9/shared/1", back.Key);
        Assert.Equal(chunk.Values, back.Factors);
        Assert.Equal(chunk.Tensors, back.Tensors);
        var example = new InfluenceProbe("run", 9, ProbeSubject.Example, 3, "mlp:4-3-2", 0, 10, 2, [new("stride.subsets", 1, 2, 0)], ProbePrecision.Float32, [4f, 7f]);
        Assert.Equal(0, EventCodecs.Probes.Decode(EventCodecs.Probes.Encode(example)).SetShared);
        var outside = probe with { SubjectId = 2 };
        Assert.Contains("outside 0..set_shared-1", Assert.Throws<EventContractException>(() => EventCodecs.Probes.Decode(EventCodecs.Probes.Encode(outside))).Message, StringComparison.Ordinal);
    }
}
