namespace Attribution.Downstream.Flight;

/// <summary>Counts the Flight subscribers that are reading (their reader is assigned its partitions). Thread-safe.</summary>
public sealed class FlightSubscriptions
{
    private long _active;
    private long _delivered;

    /// <summary>Subscribers reading now.</summary>
    public long Active => Interlocked.Read(ref _active);

    /// <summary>Attributions delivered to subscribers so far.</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    internal void Started() => Interlocked.Increment(ref _active);

    internal void Ended() => Interlocked.Decrement(ref _active);

    internal void Sent(int count) => Interlocked.Add(ref _delivered, count);
}
