using System.Globalization;

namespace Attribution.Downstream.Ledger;

/// <summary>The time windows the ledger sums over.</summary>
public enum LedgerWindow
{
    /// <summary>One UTC minute.</summary>
    Minute,

    /// <summary>One UTC hour.</summary>
    Hour,

    /// <summary>One UTC day.</summary>
    Day,
}

/// <summary>Window names and arithmetic.</summary>
public static class LedgerWindows
{
    /// <summary>Every window kind.</summary>
    public static IReadOnlyList<LedgerWindow> All { get; } = [LedgerWindow.Minute, LedgerWindow.Hour, LedgerWindow.Day];

    /// <summary>"minute", "hour" or "day".</summary>
    public static string Name(LedgerWindow window) => window switch
    {
        LedgerWindow.Minute => "minute",
        LedgerWindow.Hour => "hour",
        LedgerWindow.Day => "day",
        _ => throw new ArgumentOutOfRangeException(nameof(window), window, null),
    };

    /// <summary>Parses "minute", "hour" or "day" (case-insensitive).</summary>
    public static bool TryParse(string? text, out LedgerWindow window)
    {
        switch (text?.ToLowerInvariant())
        {
            case "minute": window = LedgerWindow.Minute; return true;
            case "hour": window = LedgerWindow.Hour; return true;
            case "day": window = LedgerWindow.Day; return true;
            default: window = default; return false;
        }
    }

    /// <summary>The UTC start of the window of kind <paramref name="window"/> that holds <paramref name="time"/>.</summary>
    public static DateTimeOffset Start(LedgerWindow window, DateTimeOffset time)
    {
        var t = time.UtcDateTime;
        return window switch
        {
            LedgerWindow.Minute => new DateTimeOffset(t.Year, t.Month, t.Day, t.Hour, t.Minute, 0, TimeSpan.Zero),
            LedgerWindow.Hour => new DateTimeOffset(t.Year, t.Month, t.Day, t.Hour, 0, 0, TimeSpan.Zero),
            LedgerWindow.Day => new DateTimeOffset(t.Year, t.Month, t.Day, 0, 0, 0, TimeSpan.Zero),
            _ => throw new ArgumentOutOfRangeException(nameof(window), window, null),
        };
    }
}

/// <summary>One ledger cell: a window, a model version and a source.</summary>
/// <param name="Window">Window kind.</param>
/// <param name="Start">UTC start of the window.</param>
/// <param name="ModelVersion">Model version that answered the queries.</param>
/// <param name="SourceId">Data source id.</param>
public readonly record struct LedgerKey(LedgerWindow Window, DateTimeOffset Start, string ModelVersion, long SourceId)
{
    /// <summary>The compacted topic's key: <c>window/start/model/source</c>, e.g. <c>hour/2026-12-05T01:00:00Z/run@5/3</c>.</summary>
    public string TopicKey => string.Create(CultureInfo.InvariantCulture,
        $"{LedgerWindows.Name(Window)}/{Start.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}/{ModelVersion}/{SourceId}");
}

/// <summary>The attribution mass a source received from a model version's queries in one window.</summary>
/// <param name="Key">Window, model version and source.</param>
/// <param name="Mass">Sum of the source's attribution score over the window's queries (signed).</param>
/// <param name="PositiveMass">Sum of the positive scores only (how much the answers leaned on the source).</param>
/// <param name="Queries">Queries whose attribution lists the source.</param>
public sealed record LedgerEntry(LedgerKey Key, double Mass, double PositiveMass, long Queries);
