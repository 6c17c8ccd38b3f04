using System.Text;
using Attribution.Contracts;
using Attribution.Transport;

namespace Attribution.Scorer.Tests;

/// <summary>A query's identity (key = payload id, or the payload id when unkeyed), its home partition, and its shape.</summary>
public sealed class QueryValidatorTests
{
    private static ModelQuery Query(string id, IReadOnlyList<float>? features = null, IReadOnlyList<long>? tokens = null) =>
        new(id, "run@1", features ?? [1f, 2f, 3f], tokens, DateTimeOffset.UnixEpoch);

    private static EventRecord Record(string? key, int partition = 0) =>
        new(Topics.Queries, partition, 42, key is null ? [] : Encoding.UTF8.GetBytes(key), [], [], DateTimeOffset.UnixEpoch);

    [Fact]
    public void A_key_equal_to_the_payload_id_is_the_query_id()
    {
        Assert.Equal("q-00143", QueryValidator.Identify(Record("q-00143"), Query("q-00143")));
    }

    [Fact]
    public void An_unkeyed_record_takes_its_id_from_the_payload()
    {
        Assert.Equal("q-7", QueryValidator.Identify(Record(null), Query("q-7")));
    }

    [Fact]
    public void A_key_naming_another_id_is_rejected_with_both_ids_in_the_error()
    {
        var e = Assert.Throws<QueryRejectedException>(() => QueryValidator.Identify(Record("fz-0000"), Query("q-00143")));
        Assert.Contains("'fz-0000'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'q-00143'", e.Message, StringComparison.Ordinal);
        Assert.Contains("queries[0]@42", e.Message, StringComparison.Ordinal);
        // A one-character difference (a flipped bit in the id) is a mismatch too.
        Assert.Throws<QueryRejectedException>(() => QueryValidator.Identify(Record("q-00143"), Query("q=00143")));
    }

    [Fact]
    public void A_binary_key_is_shown_escaped_and_an_empty_payload_id_is_rejected()
    {
        var record = new EventRecord(Topics.Queries, 1, 3, [0x01, 0x41], [], [], DateTimeOffset.UnixEpoch);
        var e = Assert.Throws<QueryRejectedException>(() => QueryValidator.Identify(record, Query("q-1")));
        Assert.Contains("\\u0001A", e.Message, StringComparison.Ordinal);
        Assert.Contains("empty query id", Assert.Throws<QueryRejectedException>(() => QueryValidator.Identify(Record(null), Query(""))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_home_partition_is_where_the_log_puts_the_id_as_a_key()
    {
        foreach (var id in new[] { "q-0", "q-00143", "errors-1f2e3d4c-059", "é" })
        {
            Assert.Equal(Partitioner.ForKey(Encoding.UTF8.GetBytes(id), 4), QueryValidator.Home(id, 4));
            Assert.InRange(QueryValidator.Home(id, 7), 0, 6);
        }
    }

    [Fact]
    public void Tokens_a_wrong_width_and_non_finite_features_are_rejected_with_what_to_fix()
    {
        QueryValidator.Validate(Query("ok"), 3);
        Assert.Contains("language-model query", Assert.Throws<QueryRejectedException>(() => QueryValidator.Validate(new ModelQuery("t", "v", null, [1L], DateTimeOffset.UnixEpoch), 3)).Message, StringComparison.Ordinal);
        Assert.Contains("has 2 features; the model takes 3", Assert.Throws<QueryRejectedException>(() => QueryValidator.Validate(Query("w", [1f, 2f]), 3)).Message, StringComparison.Ordinal);
        Assert.Contains("non-finite value (NaN) at feature 1", Assert.Throws<QueryRejectedException>(() => QueryValidator.Validate(Query("n", [1f, float.NaN, 0f]), 3)).Message, StringComparison.Ordinal);
        Assert.Contains("at feature 2", Assert.Throws<QueryRejectedException>(() => QueryValidator.Validate(Query("i", [1f, 0f, float.PositiveInfinity]), 3)).Message, StringComparison.Ordinal);
    }
}
