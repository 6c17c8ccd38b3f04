using Attribution.Transport;
using Attribution.Transport.Messages;
using MassTransit;

namespace Attribution.Downstream.Web;

/// <summary>The most recent contamination alerts, numbered in arrival order, for the console. Thread-safe.</summary>
public sealed class AlertFeed
{
    private const int Capacity = 1000;
    private readonly Queue<(long Seq, ContaminationAlertMessage Alert, string? TraceId)> _recent = new();
    private readonly Lock _lock = new();
    private long _seq;
    private long _total;

    /// <summary>Alerts received so far.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>Adds an alert, with the trace id of the query that raised it when its headers carried one.</summary>
    public void Add(ContaminationAlertMessage alert, string? traceId = null)
    {
        ArgumentNullException.ThrowIfNull(alert);
        lock (_lock)
        {
            _recent.Enqueue((++_seq, alert, traceId));
            if (_recent.Count > Capacity)
            {
                _recent.Dequeue();
            }
        }

        Interlocked.Increment(ref _total);
    }

    /// <summary>Alerts after sequence number <paramref name="after"/>, oldest first (at most the last 1,000 kept).</summary>
    public IReadOnlyList<(long Seq, ContaminationAlertMessage Alert, string? TraceId)> After(long after)
    {
        lock (_lock)
        {
            return _recent.Where(r => r.Seq > after).ToList();
        }
    }
}

/// <summary>Subscribes the console to contamination alerts on the alert bus (MassTransit, in-memory or RabbitMQ).</summary>
public sealed class AlertFeedConsumer(AlertFeed feed) : IConsumer<ContaminationAlertMessage>
{
    /// <inheritdoc/>
    public Task Consume(ConsumeContext<ContaminationAlertMessage> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        feed.Add(context.Message, TraceContext.TraceId(context.Headers.Get<string>(TraceContext.Header)));
        return Task.CompletedTask;
    }
}
