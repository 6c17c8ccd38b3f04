using System.Data.Common;
using DuckDB.NET.Data;

namespace Attribution.Downstream.Store;

/// <summary>The columns and rows a SQL query returned.</summary>
/// <param name="Columns">Column names.</param>
/// <param name="Rows">Rows, each value a string, number, boolean, timestamp or null.</param>
/// <param name="Truncated">Whether more rows matched than were returned.</param>
public sealed record SqlResult(IReadOnlyList<string> Columns, IReadOnlyList<object?[]> Rows, bool Truncated);

/// <summary>A SQL query the store refused or DuckDB could not run; the message says why.</summary>
public sealed class SqlQueryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The embedded analytical store of attribution events (DuckDB). Tables:
/// <c>attributions</c> (one row per event: query_id, model_version, method, ts, latency_us, trace_id, partition, "offset"),
/// <c>attribution_sources</c> (one row per event and source: query_id, model_version, ts, source, source_name, flagged, score),
/// <c>attribution_examples</c> (the top examples: query_id, model_version, ts, rank, example_id, source, source_name, score).
/// <c>ts</c> is when the Scorer appended the event. Rows older than the retention are deleted as new events arrive.
/// Events are written once: the store remembers the last offset of each partition it holds and skips what it has,
/// so a restart that re-reads the topic adds nothing twice. Thread-safe (one connection, serialised).
/// </summary>
public sealed class AttributionStore : IAttributionSink, IDisposable
{
    private static readonly TimeSpan RetentionCheckEvery = TimeSpan.FromSeconds(10);
    private readonly DuckDBConnection _connection;
    private readonly TrainingCatalog _catalog;
    private readonly TimeSpan _retention;
    private readonly TimeProvider _clock;
    private readonly Dictionary<int, long> _lastOffset = [];
    private readonly Lock _lock = new();
    private DateTimeOffset _nextRetentionCheck = DateTimeOffset.MinValue;
    private long _rows;

    /// <summary>Opens (or creates) the store at <paramref name="path"/> (":memory:" for none on disk).</summary>
    public AttributionStore(string path, TimeSpan retention, TrainingCatalog? catalog = null, TimeProvider? clock = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (path != ":memory:" && Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir)
        {
            Directory.CreateDirectory(dir);
        }

        Location = path;
        _retention = retention;
        _catalog = catalog ?? TrainingCatalog.Empty;
        _clock = clock ?? TimeProvider.System;
        _connection = new DuckDBConnection($"Data Source={path}");
        _connection.Open();
        Execute("""
            CREATE TABLE IF NOT EXISTS attributions (query_id VARCHAR NOT NULL, model_version VARCHAR NOT NULL, method VARCHAR NOT NULL,
                ts TIMESTAMPTZ NOT NULL, latency_us BIGINT NOT NULL, trace_id VARCHAR, "partition" INTEGER NOT NULL, "offset" BIGINT NOT NULL);
            CREATE TABLE IF NOT EXISTS attribution_sources (query_id VARCHAR NOT NULL, model_version VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
                source BIGINT NOT NULL, source_name VARCHAR NOT NULL, flagged BOOLEAN NOT NULL, score DOUBLE NOT NULL);
            CREATE TABLE IF NOT EXISTS attribution_examples (query_id VARCHAR NOT NULL, model_version VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
                rank INTEGER NOT NULL, example_id BIGINT NOT NULL, source BIGINT, source_name VARCHAR, score DOUBLE NOT NULL);
            """);
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = """SELECT "partition", max("offset"), count(*) FROM attributions GROUP BY "partition" """;
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            _lastOffset[reader.GetInt32(0)] = reader.GetInt64(1);
            _rows += reader.GetInt64(2);
        }
    }

    /// <summary>Where the store lives (a file path or ":memory:").</summary>
    public string Location { get; }

    /// <summary>How long rows are kept.</summary>
    public TimeSpan Retention => _retention;

    /// <summary>Attribution events held (after retention).</summary>
    public long Rows => Interlocked.Read(ref _rows);

    /// <inheritdoc/>
    public void Accept(IReadOnlyList<AttributionEnvelope> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        lock (_lock)
        {
            var fresh = batch.Where(e => !_lastOffset.TryGetValue(e.Partition, out var last) || e.Offset > last).ToList();
            if (fresh.Count > 0)
            {
                Append(fresh);
            }

            var now = _clock.GetUtcNow();
            if (now >= _nextRetentionCheck)
            {
                _nextRetentionCheck = now + RetentionCheckEvery;
                ApplyRetention(now);
            }
        }
    }

    /// <summary>Deletes rows older than the retention as of <paramref name="now"/>; returns the attribution events deleted.</summary>
    public long ApplyRetention(DateTimeOffset now)
    {
        lock (_lock)
        {
            var cutoff = now - _retention;
            long deleted = 0;
            foreach (var table in new[] { "attribution_sources", "attribution_examples", "attributions" })
            {
                using var cmd = _connection.CreateCommand();
                cmd.CommandText = $"DELETE FROM {table} WHERE ts < $cutoff";
                cmd.Parameters.Add(new DuckDBParameter("cutoff", cutoff.UtcDateTime));
                var n = cmd.ExecuteNonQuery();
                if (table == "attributions")
                {
                    deleted = n;
                }
            }

            Interlocked.Add(ref _rows, -deleted);
            return deleted;
        }
    }

    /// <summary>
    /// Runs one read-only statement (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, PRAGMA table_info) and returns at most
    /// <paramref name="maxRows"/> rows.
    /// </summary>
    /// <exception cref="SqlQueryException">The statement is not read-only, or DuckDB rejected it (its message says why).</exception>
    public SqlResult Query(string sql, int maxRows = 1000)
    {
        lock (_lock)
        {
            return Run(_connection, sql, maxRows);
        }
    }

    /// <summary>
    /// Runs one read-only statement against a store file that no process holds open for writing (DuckDB lets one process
    /// write a file; while a console runs, ask it instead: <c>./pipeline query --url</c>).
    /// </summary>
    /// <exception cref="SqlQueryException">The file is missing or locked, or the statement was refused.</exception>
    public static SqlResult QueryFile(string path, string sql, int maxRows = 1000)
    {
        if (!File.Exists(path))
        {
            throw new SqlQueryException($"no attribution store at '{Path.GetFullPath(path)}': run './pipeline console' (or the demo) to fill one, or give --db FILE.");
        }

        try
        {
            using var connection = new DuckDBConnection($"Data Source={path};ACCESS_MODE=READ_ONLY");
            connection.Open();
            return Run(connection, sql, maxRows);
        }
        catch (DbException e)
        {
            throw new SqlQueryException($"cannot open '{path}' ({e.Message}); if a console is running, query it with --url http://HOST:PORT.", e);
        }
    }

    private static SqlResult Run(DuckDBConnection connection, string sql, int maxRows)
    {
        ArgumentNullException.ThrowIfNull(sql);
        var text = sql.Trim().TrimEnd(';').Trim();
        var first = text.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.ToUpperInvariant();
        if (first is not ("SELECT" or "WITH" or "DESCRIBE" or "SHOW" or "SUMMARIZE" or "EXPLAIN" or "FROM" or "VALUES") || text.Contains(';', StringComparison.Ordinal))
        {
            throw new SqlQueryException($"only one read-only statement is allowed (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); got '{(text.Length > 60 ? text[..60] + "…" : text)}'.");
        }

        try
        {
            using var cmd = connection.CreateCommand();
            cmd.CommandText = text;
            using var reader = cmd.ExecuteReader();
            var columns = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToList();
            var rows = new List<object?[]>();
            var truncated = false;
            while (reader.Read())
            {
                if (rows.Count == maxRows)
                {
                    truncated = true;
                    break;
                }

                var row = new object?[reader.FieldCount];
                for (int i = 0; i < row.Length; i++)
                {
                    row[i] = reader.IsDBNull(i) ? null : Plain(reader.GetValue(i));
                }

                rows.Add(row);
            }

            return new SqlResult(columns, rows, truncated);
        }
        catch (DbException e)
        {
            throw new SqlQueryException(e.Message, e);
        }
    }

    private static object? Plain(object value) => value switch
    {
        System.Numerics.BigInteger b => (double)b,
        decimal d => (double)d,
        DateTime t => new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)),
        _ => value,
    };

    private void Append(List<AttributionEnvelope> events)
    {
        using var tx = _connection.BeginTransaction();
        using (var a = _connection.CreateAppender("attributions"))
        {
            foreach (var e in events)
            {
                var r = e.Result;
                var row = a.CreateRow().AppendValue(r.QueryId).AppendValue(r.ModelVersion).AppendValue(r.Method).AppendValue(e.Timestamp.UtcDateTime)
                    .AppendValue(r.LatencyMicros);
                (e.TraceParent is { } tp ? row.AppendValue(TraceId(tp)) : row.AppendNullValue()).AppendValue(e.Partition).AppendValue(e.Offset).EndRow();
            }
        }

        using (var a = _connection.CreateAppender("attribution_sources"))
        {
            foreach (var e in events)
            {
                var r = e.Result;
                for (int i = 0; i < r.SourceIds.Count; i++)
                {
                    var s = r.SourceIds[i];
                    a.CreateRow().AppendValue(r.QueryId).AppendValue(r.ModelVersion).AppendValue(e.Timestamp.UtcDateTime).AppendValue(s)
                        .AppendValue(_catalog.SourceName(s)).AppendValue(_catalog.IsFlagged(s)).AppendValue((double)r.SourceScores[i]).EndRow();
                }
            }
        }

        using (var a = _connection.CreateAppender("attribution_examples"))
        {
            foreach (var e in events)
            {
                var r = e.Result;
                for (int i = 0; i < r.ExampleIds.Count; i++)
                {
                    var row = a.CreateRow().AppendValue(r.QueryId).AppendValue(r.ModelVersion).AppendValue(e.Timestamp.UtcDateTime).AppendValue(i + 1)
                        .AppendValue(r.ExampleIds[i]);
                    row = _catalog.SourceOf(r.ExampleIds[i]) is { } s ? row.AppendValue(s).AppendValue(_catalog.SourceName(s)) : row.AppendNullValue().AppendNullValue();
                    row.AppendValue((double)r.Scores[i]).EndRow();
                }
            }
        }

        tx.Commit();
        foreach (var e in events)
        {
            _lastOffset[e.Partition] = Math.Max(_lastOffset.GetValueOrDefault(e.Partition, -1), e.Offset);
        }

        Interlocked.Add(ref _rows, events.Count);
    }

    /// <summary>The trace id of a W3C traceparent ("00-traceid-spanid-flags"), or the header as given when it is not one.</summary>
    private static string TraceId(string traceParent) => traceParent.Split('-') is { Length: 4 } parts ? parts[1] : traceParent;

    private void Execute(string sql)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            _connection.Dispose();
        }
    }
}
