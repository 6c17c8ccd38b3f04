using System.Diagnostics.Metrics;
using Attribution.Downstream.Flight;
using Attribution.Downstream.Ledger;
using Attribution.Downstream.Store;
using Attribution.Downstream.Web;

namespace Attribution.Downstream.Feed;

/// <summary>
/// The downstream host's counters as instruments of the meter <see cref="MeterName"/>: <c>pipeline.downstream.events</c>,
/// <c>.lag</c> (per partition of <c>attributions</c>), <c>.dead_letters</c>, <c>.store_rows</c>, <c>.ledger_records</c>,
/// <c>.alerts</c>, <c>.flight_subscribers</c>, <c>.flight_delivered</c>.
/// </summary>
public sealed class DownstreamInstruments : IDisposable
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "Attribution.Downstream";

    private readonly Meter _meter = new(MeterName);

    /// <summary>Observes the feed and its sinks.</summary>
    public DownstreamInstruments(AttributionFeed feed, AttributionStore store, LedgerPublisher ledger, AlertFeed alerts, FlightSubscriptions? flight = null)
    {
        ArgumentNullException.ThrowIfNull(feed);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(ledger);
        ArgumentNullException.ThrowIfNull(alerts);
        _meter.CreateObservableCounter("pipeline.downstream.events", () => feed.Events, "{attribution}", "Attribution events read by the downstream feed");
        _meter.CreateObservableGauge("pipeline.downstream.lag", () => feed.Lag.Select(kv => new Measurement<long>(kv.Value, new KeyValuePair<string, object?>("partition", kv.Key))),
            "{event}", "Attribution events appended but not yet read, per partition");
        _meter.CreateObservableCounter("pipeline.downstream.dead_letters", () => feed.Rejected, "{event}", "Attribution events that did not decode");
        _meter.CreateObservableGauge("pipeline.downstream.store_rows", () => store.Rows, "{attribution}", "Attribution events held by the SQL store");
        _meter.CreateObservableCounter("pipeline.downstream.ledger_records", () => ledger.Published, "{record}", "Ledger records published");
        _meter.CreateObservableCounter("pipeline.downstream.alerts", () => alerts.Total, "{alert}", "Contamination alerts received");
        if (flight is not null)
        {
            _meter.CreateObservableGauge("pipeline.downstream.flight_subscribers", () => flight.Active, "{subscriber}", "Flight subscribers reading");
            _meter.CreateObservableCounter("pipeline.downstream.flight_delivered", () => flight.Delivered, "{attribution}", "Attributions sent to Flight subscribers");
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();
}
