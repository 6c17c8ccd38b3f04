using Attribution.Transport;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Attribution.Downstream.Ledger;

/// <summary>
/// Publishes the ledger cells that changed to the compacted ledger topic every <see cref="DownstreamOptions.LedgerPublishInterval"/>:
/// one record per cell, key <see cref="LedgerKey.TopicKey"/>, value one Arrow IPC stream (<see cref="LedgerArrow"/>) with the
/// cell's current totals, so the topic's latest value per key is the ledger. Cells whose publication failed are retried.
/// </summary>
public sealed class LedgerPublisher(IEventLog log, IEventProducer producer, SourceLedger ledger, TrainingCatalog catalog,
    IOptions<DownstreamOptions> options, ILogger<LedgerPublisher> logger) : BackgroundService
{
    private readonly DownstreamOptions _options = options.Value;
    private readonly SemaphoreSlim _round = new(1, 1);
    private long _published;

    /// <summary>Ledger records published.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Like every service's topics: created, or used as they are when creation is refused and they fit.
        await new TopicProvisioner(log, logger).EnsureAsync(_options.RequiredTopics(), stoppingToken).ConfigureAwait(false);
        using var timer = new PeriodicTimer(_options.LedgerPublishInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                await PublishChangedAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Last round at shutdown, so the topic holds every total the ledger reached.
            using var last = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await PublishChangedAsync(last.Token).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Publishes the cells changed since the last round and waits for their acknowledgements. Rounds run one at a time:
    /// a call made while the timer's round is in flight waits for it, so when it returns every change made before the
    /// call is acknowledged on the topic (it used to return at once, finding nothing changed, while that round's records
    /// were still in flight).
    /// </summary>
    public async Task PublishChangedAsync(CancellationToken cancellationToken)
    {
        await _round.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await PublishRoundAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _round.Release();
        }
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _round.Dispose();
        base.Dispose();
    }

    private async Task PublishRoundAsync(CancellationToken cancellationToken)
    {
        var changed = ledger.TakeChanged();
        if (changed.Count == 0)
        {
            return;
        }

        try
        {
            await Task.WhenAll(changed.Select(e => producer.ProduceAsync(_options.LedgerTopic,
                EventMessage.Create(e.Key.TopicKey, LedgerArrow.Encode([e], catalog.SourceName), LedgerHeaders), cancellationToken))).ConfigureAwait(false);
            Interlocked.Add(ref _published, changed.Count);
        }
        catch (Exception e) when (e is EventLogException or OperationCanceledException)
        {
            ledger.MarkChanged(changed.Select(c => c.Key));
            DownstreamLog.LedgerPublishFailed(logger, changed.Count, e.Message);
        }
    }

    private static readonly IReadOnlyList<EventHeader> LedgerHeaders =
    [
        EventHeader.Utf8(Contracts.EventHeaders.ContentType, Contracts.EventHeaders.ArrowStreamContentType),
        EventHeader.Utf8(Contracts.EventHeaders.SchemaVersion, LedgerArrow.SchemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        EventHeader.Utf8(Contracts.EventHeaders.EventType, LedgerArrow.EventType),
    ];
}
