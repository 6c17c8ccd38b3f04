using Attribution.Downstream.Feed;
using Attribution.Transport.Messages;
using Microsoft.Playwright;

namespace Attribution.Downstream.Tests;

/// <summary>
/// The console in a real browser: Debian's chromium, headless, driven by Playwright (its own browser download is not
/// used). Screenshots go to $CONSOLE_SCREENSHOT_DIR when set (docs/screenshots is where the committed ones live).
/// </summary>
public sealed class ConsoleBrowserTests
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task Console_shows_the_stream_with_image_previews_the_ledger_chart_alerts_with_evidence_health_and_sql()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: install Debian's chromium (./pipeline test installs it).");
        await using var f = await ConsoleFixture.StartAsync();
        var rng = new Random(11);
        var events = Enumerable.Range(0, 60).Select(i => SyntheticAttributions.Make(rng, i, "demo@120")).ToList();
        // The last query leans on the flagged source: its top example comes from it, and an alert names it.
        var leak = events[^1] with { ExampleIds = [FlaggedExample, 10, 21, 32] };
        events[^1] = leak;
        var feed = f.Get<AttributionFeed>();
        await f.PublishAsync(events[..^1]);
        await WaitAsync(() => feed.Events == events.Count - 1);
        await f.PublishAsync([leak]); // read last: the newest in the stream
        await WaitAsync(() => feed.Events == events.Count);
        f.Alerts.Add(new ContaminationAlertMessage
        {
            QueryId = leak.QueryId, ModelVersion = leak.ModelVersion, FlaggedExampleIds = [FlaggedExample], Rule = AlertRule.ExampleLead,
            Score = 3.2, Threshold = 1.5, Timestamp = DateTimeOffset.UtcNow,
        });
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1440, Height = 1000 } });
        await page.GotoAsync(f.Console.WebUrl.ToString());

        // The stream: newest first, 40 shown, each with its top examples.
        await page.WaitForFunctionAsync("document.querySelectorAll('.attr').length === 40");
        Assert.Equal(leak.QueryId, await page.Locator(".attr").First.GetAttributeAsync("data-query"));

        // The image preview is the training example's own 28x28 pixels, drawn on a canvas.
        var catalog = f.Get<TrainingCatalog>();
        var expected = catalog.Preview(FlaggedExample)!.Pixels!.Sum(p => (long)p);
        var selector = $".attr[data-query='{leak.QueryId}'] .ex[data-example='{FlaggedExample}'] canvas";
        await page.WaitForSelectorAsync(selector);
        var drawn = await page.EvaluateAsync<long>($$"""
            () => { const c = document.querySelector("{{selector}}"); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; }
            """);
        Assert.Equal(expected, drawn);
        Assert.Contains("eval-suite-v2", await page.Locator($".attr[data-query='{leak.QueryId}'] .ex[data-example='{FlaggedExample}'] .src").InnerTextAsync(), StringComparison.Ordinal);

        // The ledger chart: one bar per source in the latest minute, the flagged one in red.
        await page.WaitForFunctionAsync("document.querySelectorAll('.ledger-bar').length === 5");
        Assert.Equal("#dc2626", await page.Locator($".ledger-bar[data-source='{ConsoleFixture.FlaggedSource}']").GetAttributeAsync("fill"));

        // The alert, with its evidence (the query's top examples, previews included).
        await page.WaitForSelectorAsync($".alert[data-alert='{leak.QueryId}'] .ex canvas");
        Assert.Contains("example-lead", await page.Locator($".alert[data-alert='{leak.QueryId}']").InnerTextAsync(), StringComparison.Ordinal);

        // Health: the downstream feed reports itself.
        await page.WaitForSelectorAsync(".badge.Healthy:has-text('downstream')");

        // SQL over the store answers from the browser.
        await page.FillAsync("#sql", "SELECT count(*) AS n, count(DISTINCT query_id) AS q FROM attributions");
        await page.ClickAsync("#sql-run");
        await page.WaitForSelectorAsync("#sql-result td");
        Assert.Equal(["60", "60"], await page.Locator("#sql-result td").AllInnerTextsAsync());

        var dir = Environment.GetEnvironmentVariable("CONSOLE_SCREENSHOT_DIR") ?? Path.GetTempPath();
        var shot = Path.Combine(dir, "console.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = shot });
        Assert.True(new FileInfo(shot).Length > 10_000);
    }

    private static async Task WaitAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for the feed");
            await Task.Delay(20);
        }
    }

    private const long FlaggedExample = 4; // example 4 belongs to source 4 (i % 5), the flagged one
}
