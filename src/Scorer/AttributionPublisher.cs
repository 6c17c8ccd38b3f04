using System.Diagnostics;
using Attribution.Contracts;
using Attribution.Transport;
using Attribution.Transport.Messages;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace Attribution.Scorer;

/// <summary>
/// Publishing: attributions to the attributions topic (one Arrow event per query, keyed by the query id, so on the
/// id's home partition) and contamination alerts to the alert bus (when one is registered).
/// </summary>
internal sealed class AttributionPublisher(IEventProducer producer, IBus? bus, ScorerMetrics metrics, ILogger logger)
{
    /// <summary>Encodes an attribution as its event (keyed by the query id, with the Arrow headers).</summary>
    public static EventMessage Encode(AttributionResult result) => ArrowEvents.Message(result.QueryId, result);

    /// <summary>Produces an encoded attribution; completes when the log acknowledged it.</summary>
    public Task<EventPosition> ProduceAsync(EventMessage attribution, CancellationToken cancellationToken) =>
        producer.ProduceAsync(Topics.Attributions, attribution, cancellationToken);

    /// <summary>
    /// Logs and publishes the alert for <paramref name="result"/>'s query. A bus failure is logged, not thrown: the
    /// attribution still goes out (alerts are at-least-once while the bus is up, not a gate on attributions).
    /// </summary>
    public async Task AlertAsync(AttributionResult result, ContaminationVerdict verdict, CancellationToken cancellationToken)
    {
        logger.Contamination(result.QueryId, verdict.Rule, verdict.Score, verdict.Threshold);
        if (bus is null)
        {
            metrics.Alert();
            return;
        }

        try
        {
            // The query's trace context rides in the alert's headers (ScorerTracing makes the query's span current here).
            var trace = Activity.Current?.Id;
            await bus.Publish(ToMessage(result, verdict, DateTimeOffset.UtcNow), context =>
            {
                if (trace is not null)
                {
                    context.Headers.Set(TraceContext.Header, trace);
                }
            }, cancellationToken).ConfigureAwait(false);
            metrics.Alert();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.AlertPublishFailed(e, result.QueryId);
        }
    }

    /// <summary>The alert message for a verdict on <paramref name="result"/>'s query.</summary>
    public static ContaminationAlertMessage ToMessage(AttributionResult result, ContaminationVerdict verdict, DateTimeOffset now) => new()
    {
        QueryId = result.QueryId,
        ModelVersion = result.ModelVersion,
        Rule = verdict.Rule,
        FlaggedSourceIds = verdict.FlaggedSourceIds,
        FlaggedExampleIds = verdict.FlaggedExampleIds,
        Score = verdict.Score,
        Threshold = verdict.Threshold,
        Timestamp = now,
        Evidence = verdict.Evidence,
    };
}
