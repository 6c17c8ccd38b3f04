using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Attribution.Downstream.Store;
using Spectre.Console;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline query "SELECT ..."</c>: SQL over the attribution store. Asks a running console (<c>--url</c>, default
/// http://127.0.0.1:8090) and, when none answers, opens the store file read-only (<c>--db</c>).
/// </summary>
internal static class QueryCommand
{
    public static Command Create()
    {
        var sql = new Argument<string>("sql") { Description = "One read-only statement, e.g. \"SELECT source_name, sum(score) FROM attribution_sources WHERE ts > now() - INTERVAL 1 HOUR GROUP BY ALL\"." };
        var url = new Option<string?>("--url") { Description = "A running console to ask (default http://127.0.0.1:8090, then the file)." };
        var db = new Option<string?>("--db") { Description = "The store file to open read-only when no console answers (default runs/attributions.duckdb)." };
        var maxRows = new Option<int>("--max-rows") { Description = "Most rows printed.", DefaultValueFactory = _ => 1000 };
        var csv = new Option<bool>("--csv") { Description = "Print CSV instead of a table." };
        var command = new Command("query", "SQL over the attributions (tables attributions, attribution_sources, attribution_examples; see docs/SERVICES.md).");
        command.Arguments.Add(sql);
        foreach (var o in new Option[] { url, db, maxRows, csv })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, token) =>
        {
            var text = parse.GetValue(sql)!;
            var limit = parse.GetValue(maxRows);
            if (limit < 1)
            {
                Console.Error.WriteLine($"error: --max-rows must be at least 1, got {limit}.");
                return 2;
            }

            SqlResult result;
            try
            {
                result = await AskConsoleAsync(parse.GetValue(url), parse.GetValue(db) is null, text, limit, token)
                    ?? AttributionStore.QueryFile(parse.GetValue(db) ?? "runs/attributions.duckdb", text, limit);
            }
            catch (SqlQueryException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }

            Print(result, parse.GetValue(csv));
            return 0;
        });
        return command;
    }

    /// <summary>The console's answer; null when no console listens there and the file may be tried instead.</summary>
    private static async Task<SqlResult?> AskConsoleAsync(string? url, bool fileAllowed, string sql, int maxRows, CancellationToken token)
    {
        if (url is null && !fileAllowed)
        {
            return null;
        }

        using var http = new HttpClient { BaseAddress = new Uri(url ?? "http://127.0.0.1:8090"), Timeout = TimeSpan.FromSeconds(60) };
        HttpResponseMessage response;
        try
        {
            response = await http.PostAsJsonAsync("/api/sql", new { sql, maxRows }, token);
        }
        catch (HttpRequestException e) when (url is null)
        {
            _ = e; // no console on the default port: use the file
            return null;
        }
        catch (HttpRequestException e)
        {
            throw new SqlQueryException($"no console answers at {url}: {e.Message}");
        }

        using (response)
        {
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(token));
            var root = doc.RootElement;
            if (!response.IsSuccessStatusCode)
            {
                throw new SqlQueryException(root.TryGetProperty("error", out var err) ? err.GetString() ?? response.ReasonPhrase ?? "" : $"HTTP {(int)response.StatusCode}");
            }

            var columns = root.GetProperty("columns").EnumerateArray().Select(c => c.GetString() ?? "").ToList();
            var rows = root.GetProperty("rows").EnumerateArray()
                .Select(r => r.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.Null ? null : (object?)(v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText())).ToArray())
                .ToList();
            return new SqlResult(columns, rows, root.GetProperty("truncated").GetBoolean());
        }
    }

    private static void Print(SqlResult result, bool csv)
    {
        static string Cell(object? v) => v switch
        {
            null => "",
            double d => d.ToString("G6", CultureInfo.InvariantCulture),
            float f => f.ToString("G6", CultureInfo.InvariantCulture),
            DateTimeOffset t => t.ToString("yyyy-MM-dd HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
            IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
            _ => v.ToString() ?? "",
        };
        if (csv)
        {
            Console.WriteLine(string.Join(',', result.Columns));
            foreach (var row in result.Rows)
            {
                Console.WriteLine(string.Join(',', row.Select(v => Cell(v) is var s && s.Contains(',', StringComparison.Ordinal) ? $"\"{s.Replace("\"", "\"\"", StringComparison.Ordinal)}\"" : Cell(v))));
            }
        }
        else
        {
            var table = new Table().Border(TableBorder.Simple);
            foreach (var c in result.Columns)
            {
                table.AddColumn(Markup.Escape(c));
            }

            foreach (var row in result.Rows)
            {
                table.AddRow(row.Select(v => Markup.Escape(Cell(v))).ToArray());
            }

            AnsiConsole.Write(table);
        }

        if (result.Truncated)
        {
            Console.Error.WriteLine($"(first {result.Rows.Count} rows; raise --max-rows for more)");
        }
    }
}
