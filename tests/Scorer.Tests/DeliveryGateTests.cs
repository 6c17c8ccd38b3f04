using System.Text;
using Attribution.Contracts;
using Attribution.Transport;
using Microsoft.Extensions.Logging.Abstractions;

namespace Attribution.Scorer.Tests;

/// <summary>Delivery and dedup: one decision per query id at a time; duplicates counted and skipped; failures re-read the partition.</summary>
public sealed class DeliveryGateTests
{
    private sealed class Ledger : IAttributionLedger
    {
        public HashSet<(int, string)> Ids { get; } = [];

        public List<int> CaughtUp { get; } = [];

        public List<int> Stale { get; } = [];

        public List<(int Partition, long Offset, string Id)> Own { get; } = [];

        public void CatchUp(IReadOnlyCollection<int> partitions, CancellationToken cancellationToken) => CaughtUp.AddRange(partitions);

        public bool Contains(int partition, string queryId) => Ids.Contains((partition, queryId));

        public void AddOwn(int partition, long offset, string queryId)
        {
            Own.Add((partition, offset, queryId));
            Ids.Add((partition, queryId));
        }

        public void MarkStale(IEnumerable<int> partitions) => Stale.AddRange(partitions);
    }

    private static PendingQuery Pending(string id, int home = 1) =>
        new(new EventRecord(Topics.Queries, home, 0, Encoding.UTF8.GetBytes(id), [], [], DateTimeOffset.UnixEpoch),
            new ModelQuery(id, "v", [0f], null, DateTimeOffset.UnixEpoch), home);

    [Fact]
    public void New_ids_are_admitted_after_their_partitions_are_caught_up_and_an_attributed_id_is_a_counted_skip()
    {
        var ledger = new Ledger();
        ledger.Ids.Add((1, "done"));
        var metrics = new ScorerMetrics();
        var gate = new DeliveryGate(ledger, metrics, NullLogger.Instance);
        PendingQuery a = Pending("a", 1), b = Pending("b", 3), done = Pending("done", 1);
        var work = gate.Admit([a, done, b], CancellationToken.None);
        Assert.Equal([a, b], work);
        Assert.Equal([1, 3], ledger.CaughtUp.Order());
        Assert.True(done.Done.Task.IsCompletedSuccessfully);
        Assert.Equal(1, metrics.DuplicatesSkipped);
        Assert.Equal(2, gate.InFlight);
    }

    [Fact]
    public void A_delivered_query_is_recorded_as_own_and_its_later_copy_is_skipped()
    {
        var ledger = new Ledger();
        var metrics = new ScorerMetrics();
        var gate = new DeliveryGate(ledger, metrics, NullLogger.Instance);
        var first = Pending("q");
        Assert.Single(gate.Admit([first], CancellationToken.None));
        gate.Delivered(first, offset: 17);
        Assert.True(first.Done.Task.IsCompletedSuccessfully);
        Assert.Equal([(1, 17L, "q")], ledger.Own);
        Assert.Equal(0, gate.InFlight);

        var again = Pending("q");
        Assert.Empty(gate.Admit([again], CancellationToken.None));
        Assert.True(again.Done.Task.IsCompletedSuccessfully);
        Assert.Equal(1, metrics.DuplicatesSkipped);
    }

    [Fact]
    public async Task A_copy_arriving_while_its_id_is_in_flight_follows_the_first_copys_outcome()
    {
        var gate = new DeliveryGate(new Ledger(), new ScorerMetrics(), NullLogger.Instance);
        PendingQuery first = Pending("q"), copy = Pending("q"), failedFirst = Pending("r"), failedCopy = Pending("r");
        // Two copies in one batch: only the first is scored.
        Assert.Equal([first, failedFirst], gate.Admit([first, copy, failedFirst, failedCopy], CancellationToken.None));
        Assert.False(copy.Done.Task.IsCompleted);
        gate.Delivered(first, 5);
        await copy.Done.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var error = new EventLogException("produce failed", isTransient: true);
        gate.Failed(failedFirst, error);
        var thrown = await Assert.ThrowsAsync<EventLogException>(() => failedCopy.Done.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Same(error, thrown);
    }

    [Fact]
    public void A_failed_produce_marks_the_home_partition_stale_and_frees_the_id_for_its_retry()
    {
        var ledger = new Ledger();
        var gate = new DeliveryGate(ledger, new ScorerMetrics(), NullLogger.Instance);
        var first = Pending("q", home: 2);
        gate.Admit([first], CancellationToken.None);
        gate.Failed(first, new InvalidOperationException("boom"));
        Assert.Equal([2], ledger.Stale);
        Assert.True(first.Done.Task.IsFaulted);
        // The retry is admitted (the id is no longer in flight and has no attribution).
        var retry = Pending("q", home: 2);
        Assert.Equal([retry], gate.Admit([retry], CancellationToken.None));
    }
}
