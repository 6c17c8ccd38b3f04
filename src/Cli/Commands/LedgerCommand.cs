using System.CommandLine;
using System.Globalization;
using Attribution.Downstream.Ledger;
using Attribution.Transport;
using Attribution.Transport.Kafka;
using Spectre.Console;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline ledger --kafka B</c>: the source ledger as a data-governance reader sees it: the latest record per key of
/// the compacted <c>ledger</c> topic (Arrow), filtered by window, model version and source.
/// </summary>
internal static class LedgerCommand
{
    public static Command Create()
    {
        var kafka = new Option<string>("--kafka") { Description = "Kafka bootstrap servers (host:port,...).", Required = true };
        var topic = new Option<string>("--topic") { Description = "The ledger topic (Downstream:LedgerTopic).", DefaultValueFactory = _ => "ledger" };
        var window = new Option<string>("--window") { Description = "minute, hour or day.", DefaultValueFactory = _ => "hour" };
        var model = new Option<string?>("--model") { Description = "Only this model version." };
        var source = new Option<long?>("--source") { Description = "Only this source id." };
        var last = new Option<int>("--last") { Description = "Only the newest N windows.", DefaultValueFactory = _ => 24 };
        var command = new Command("ledger", "Print the source ledger (attribution mass per source, per window and model version) from its compacted topic.");
        foreach (var o in new Option[] { kafka, topic, window, model, source, last })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, token) =>
        {
            if (!LedgerWindows.TryParse(parse.GetValue(window), out var w))
            {
                Console.Error.WriteLine($"error: --window must be minute, hour or day, got '{parse.GetValue(window)}'.");
                return 2;
            }

            await using var log = new KafkaEventLog(new KafkaOptions { BootstrapServers = parse.GetValue(kafka)!, ClientId = "pipeline-ledger" });
            var records = await TopicReader.ReadToEndAsync(log, parse.GetValue(topic)!, token);
            var latest = new Dictionary<string, (LedgerEntry Entry, string? Name)>(StringComparer.Ordinal);
            var bad = 0;
            foreach (var r in records)
            {
                try
                {
                    foreach (var e in LedgerArrow.Decode(r.Value))
                    {
                        latest[e.Entry.Key.TopicKey] = e;
                    }
                }
                catch (FormatException e)
                {
                    bad++;
                    Console.Error.WriteLine($"warning: {r}: {e.Message}");
                }
            }

            var m = parse.GetValue(model);
            var s = parse.GetValue(source);
            var rows = latest.Values.Where(e => e.Entry.Key.Window == w && (m is null || e.Entry.Key.ModelVersion == m) && (s is null || e.Entry.Key.SourceId == s)).ToList();
            var starts = rows.Select(e => e.Entry.Key.Start).Distinct().Order().TakeLast(Math.Max(1, parse.GetValue(last))).ToHashSet();
            var table = new Table().Border(TableBorder.Simple).AddColumns("window start (UTC)", "model", "source", "mass", "positive mass", "queries");
            foreach (var (e, name) in rows.Where(r => starts.Contains(r.Entry.Key.Start)).OrderBy(r => r.Entry.Key.Start).ThenByDescending(r => r.Entry.PositiveMass))
            {
                table.AddRow(e.Key.Start.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture), Markup.Escape(e.Key.ModelVersion),
                    Markup.Escape(name ?? e.Key.SourceId.ToString(CultureInfo.InvariantCulture)), e.Mass.ToString("F4", CultureInfo.InvariantCulture),
                    e.PositiveMass.ToString("F4", CultureInfo.InvariantCulture), e.Queries.ToString(CultureInfo.InvariantCulture));
            }

            AnsiConsole.Write(table);
            Console.WriteLine($"{records.Count} records read from '{parse.GetValue(topic)}', {latest.Count} ledger cells{(bad > 0 ? $", {bad} unreadable" : "")}.");
            return 0;
        });
        return command;
    }
}
