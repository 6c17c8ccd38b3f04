using Apache.Arrow.Flight;
using Apache.Arrow.Flight.Server;
using Attribution.Contracts;
using Attribution.Transport;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Attribution.Downstream.Flight;

/// <summary>
/// Arrow Flight for subscribers without a Kafka client: DoGet streams attributions live as Arrow record batches
/// (<see cref="FlightBatches.Schema"/>), filtered by the ticket (<see cref="AttributionFlightTicket"/>). Each call reads
/// the <c>attributions</c> topic with its own standalone reader, so a subscriber gets every event once, in offset order per
/// partition, at its own pace (the log buffers; a slow subscriber never holds back the others). Events that do not decode
/// are skipped here (the downstream feed dead-letters them).
/// </summary>
public sealed class AttributionFlightServer(IEventLog log, FlightSubscriptions subscriptions, ILogger<AttributionFlightServer> logger) : FlightServer
{
    private const int MaxBatch = 256;

    /// <inheritdoc/>
    public override async Task DoGet(FlightTicket ticket, FlightServerRecordBatchStreamWriter responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);
        AttributionFlightTicket request;
        try
        {
            request = AttributionFlightTicket.Parse(ticket.Ticket.Span);
        }
        catch (FormatException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
        }

        if (await log.GetPartitionCountAsync(Topics.Attributions, context.CancellationToken).ConfigureAwait(false) is null)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"topic '{Topics.Attributions}' does not exist yet: start the Scorer (or the demo) first, then subscribe."));
        }

        DownstreamLog.FlightSubscribed(logger, context.Peer, request.Model ?? "any", request.Source?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "any", request.FromBeginning ? "beginning" : "latest");
        using var reader = log.CreateConsumer(new ConsumerSettings
        {
            Topics = [Topics.Attributions],
            Start = request.FromBeginning ? StartPosition.Beginning : StartPosition.Committed,
            NoCommitFallback = NoCommitFallback.Latest,
            ClientId = "flight-" + context.Peer,
        });
        var token = context.CancellationToken;
        var batch = new List<AttributionEnvelope>(MaxBatch);
        var counted = false;
        try
        {
            while (!token.IsCancellationRequested)
            {
                batch.Clear();
                // Consume blocks; a thread-pool hop keeps Kestrel's threads free while the subscriber waits for traffic.
                var record = await Task.Run(() => reader.Consume(TimeSpan.FromMilliseconds(200), token), token).ConfigureAwait(false);
                if (!counted)
                {
                    // The first Consume assigned the partitions: from here on nothing appended is missed.
                    counted = true;
                    subscriptions.Started();
                }

                while (record is not null)
                {
                    if (TryDecode(record) is { } e && request.Matches(e.Result))
                    {
                        batch.Add(e);
                    }

                    record = batch.Count < MaxBatch ? reader.Consume(TimeSpan.Zero, token) : null;
                }

                if (batch.Count > 0)
                {
                    await responseStream.WriteAsync(FlightBatches.Build(batch)).ConfigureAwait(false);
                    subscriptions.Sent(batch.Count);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The subscriber went away.
        }
        finally
        {
            if (counted)
            {
                subscriptions.Ended();
            }
        }
    }

    private static AttributionEnvelope? TryDecode(EventRecord record)
    {
        try
        {
            return new AttributionEnvelope(EventCodecs.Attributions.Decode(record.Value), record.Partition, record.Offset, record.Timestamp,
                record.GetHeaderString(Feed.AttributionFeed.TraceParentHeader));
        }
        catch (EventContractException)
        {
            return null;
        }
    }
}
