using System.Diagnostics;
using System.Text;

namespace Attribution.Transport.Tests;

internal static class TestUtil
{
    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    public static string Text(byte[] b) => Encoding.UTF8.GetString(b);

    public static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 60)];

    /// <summary>Consumes until <paramref name="count"/> records arrived or <paramref name="timeout"/> passed.</summary>
    public static List<EventRecord> ConsumeN(IEventConsumer consumer, int count, TimeSpan timeout, bool storeAndCommit = false)
    {
        var got = new List<EventRecord>();
        var sw = Stopwatch.StartNew();
        while (got.Count < count && sw.Elapsed < timeout)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { } r)
            {
                got.Add(r);
                if (storeAndCommit)
                {
                    consumer.StoreOffset(r);
                }
            }
        }

        if (storeAndCommit)
        {
            consumer.Commit();
        }

        return got;
    }

    /// <summary>Polls <paramref name="condition"/> until true or the timeout; returns whether it became true.</summary>
    public static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > timeout)
            {
                return false;
            }

            await Task.Delay(10);
        }

        return true;
    }
}
