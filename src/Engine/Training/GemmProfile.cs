using System.Diagnostics;

namespace Attribution.Engine.Training;

/// <summary>Accumulates the time and floating-point work of GEMM calls (2·m·n·k flops each), for benchmarks.</summary>
public sealed class GemmProfile
{
    /// <summary>Number of GEMM calls recorded.</summary>
    public long Calls { get; private set; }

    /// <summary>Total flops (2·m·n·k per call).</summary>
    public double Flops { get; private set; }

    /// <summary>Total elapsed Stopwatch ticks inside the calls.</summary>
    public long Ticks { get; private set; }

    /// <summary>Total seconds inside the calls.</summary>
    public double Seconds => (double)Ticks / Stopwatch.Frequency;

    /// <summary>Achieved rate in GFLOP/s.</summary>
    public double GflopsPerSecond => Ticks == 0 ? 0 : Flops / Seconds / 1e9;

    /// <summary>Records one call.</summary>
    public void Record(int m, int n, int k, long ticks)
    {
        Calls++;
        Flops += 2.0 * m * n * k;
        Ticks += ticks;
    }

    /// <summary>Clears the counters.</summary>
    public void Reset()
    {
        Calls = 0;
        Flops = 0;
        Ticks = 0;
    }
}
