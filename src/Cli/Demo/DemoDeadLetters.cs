using System.Diagnostics;
using System.Text;
using Attribution.Contracts;
using Attribution.Transport;
using Spectre.Console;

namespace Attribution.Cli.Demo;

/// <summary>
/// The demos' poison-query check: reads the dead-letter topic for the given query keys (until all are found or the
/// timeout passes) and shows each with its error, so a viewer sees bad input refused with a reason while the stream
/// goes on. Shared by the image and the language-model demo.
/// </summary>
internal static class DemoDeadLetters
{
    /// <summary>The dead-lettered records among <paramref name="keys"/>, with their error header, in arrival order.</summary>
    public static async Task<List<(string Key, string Error)>> CollectAsync(IEventLog log, IReadOnlyCollection<string> keys, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var reader = log.CreateConsumer(new ConsumerSettings { Topics = [Topics.DeadLetter], Start = StartPosition.Beginning });
        var found = new List<(string Key, string Error)>();
        var deadline = Stopwatch.StartNew();
        while (found.Count < keys.Count && deadline.Elapsed < timeout)
        {
            if (await Task.Run(() => reader.Consume(TimeSpan.FromMilliseconds(100), cancellationToken), cancellationToken) is { } r)
            {
                var key = Encoding.UTF8.GetString(r.Key);
                if (keys.Contains(key))
                {
                    found.Add((key, r.GetHeaderString(DeadLetterPublisher.ErrorMessageHeader) ?? "(no error header)"));
                }
            }
        }

        return found;
    }

    /// <summary>Writes the found records as a table, each error cut at <paramref name="width"/> characters.</summary>
    public static void Show(string title, IReadOnlyList<(string Key, string Error)> found, int width)
    {
        var t = new Table().Border(TableBorder.Simple).Title(title).AddColumns("query", "error");
        foreach (var (key, error) in found)
        {
            t.AddRow(Markup.Escape(key), Markup.Escape(error.Length > width ? error[..width] + "…" : error));
        }

        AnsiConsole.Write(t);
    }
}
