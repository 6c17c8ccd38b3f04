using System.Diagnostics;

namespace Attribution.Scorer.Tests;

/// <summary>
/// <see cref="ThreadCpu"/>, behind <see cref="ScorerMetrics.BatchCpuTime"/>: it counts the calling thread's time on a CPU,
/// not wall time, so the per-batch CPU the pipeline benchmark compares with the bare readout is not inflated by waiting.
/// </summary>
public sealed class ThreadCpuTests
{
    [Fact]
    public void Counts_the_threads_time_on_a_cpu_and_not_time_asleep()
    {
        // Linux (/proc/thread-self/schedstat), where the services run; elsewhere it reads 0 and this fails after 30 s.
        long start = ThreadCpu.Nanoseconds();
        var spin = Stopwatch.StartNew();
        // Busy until this thread alone has used 30 ms of CPU (however long a loaded machine makes that take).
        while (ThreadCpu.Nanoseconds() - start < 30_000_000 && spin.Elapsed < TimeSpan.FromSeconds(30))
        {
            Thread.SpinWait(1000);
        }

        Assert.InRange(ThreadCpu.Nanoseconds() - start, 30_000_000, 2_000_000_000);
        long asleep = ThreadCpu.Nanoseconds();
        Thread.Sleep(200);
        Assert.InRange(ThreadCpu.Nanoseconds() - asleep, 0, 20_000_000); // 200 ms asleep: (almost) no CPU
    }
}
