using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace Attribution.Transport.Kafka;

/// <summary>
/// Loads the system librdkafka into Confluent.Kafka once per process. The librdkafka.redist package here carries no
/// native assets, so Confluent.Kafka cannot find the library by itself.
/// </summary>
public static class KafkaLibrary
{
    private static readonly Lock Gate = new();

    /// <summary>Loads <paramref name="path"/> unless a librdkafka is already loaded. Idempotent and thread-safe.</summary>
    /// <exception cref="EventLogException">The library is missing or unusable.</exception>
    public static void EnsureLoaded(string path = "librdkafka.so.1")
    {
        lock (Gate)
        {
            if (Library.IsLoaded)
            {
                return;
            }

            try
            {
                MapNativeNames(path);
                Library.Load(path);
            }
            catch (Exception e) when (e is DllNotFoundException or InvalidOperationException or EntryPointNotFoundException or BadImageFormatException)
            {
                throw new EventLogException(
                    $"Could not load the system librdkafka from '{path}' ({e.Message}). Install the Debian package librdkafka1 (./pipeline does it), or set Transport:Kafka:LibraryPath.",
                    isTransient: false,
                    inner: e);
            }
        }
    }

    /// <summary>
    /// Confluent.Kafka 1.9 P/Invokes <c>dlopen</c> from "libdl" and librdkafka as "librdkafka"; Debian 12 ships only the
    /// versioned sonames (<c>libdl.so.2</c>, <c>librdkafka.so.1</c>; the bare names come with the -dev packages).
    /// Resolve both names to the versioned libraries.
    /// </summary>
    private static void MapNativeNames(string librdkafkaPath)
    {
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Library).Assembly, (name, _, _) => name switch
            {
                "libdl" when NativeLibrary.TryLoad("libdl.so.2", out var dl) || NativeLibrary.TryLoad("libc.so.6", out dl) => dl,
                _ when name.StartsWith("librdkafka", StringComparison.Ordinal) && NativeLibrary.TryLoad(librdkafkaPath, out var rd) => rd,
                _ => IntPtr.Zero,
            });
        }
        catch (InvalidOperationException)
        {
            // The host already installed a resolver for Confluent.Kafka; trust it.
        }
    }

    /// <summary>The loaded librdkafka version, e.g. "2.0.2".</summary>
    public static string Version
    {
        get
        {
            EnsureLoaded();
            return Library.VersionString;
        }
    }

    /// <summary>Whether an error is worth retrying (broker down, leader moving, timeout, full local queue).</summary>
    internal static bool IsTransient(Error error) => !error.IsFatal && error.Code is
        ErrorCode.Local_MsgTimedOut or ErrorCode.Local_TimedOut or ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown
        or ErrorCode.Local_QueueFull or ErrorCode.RequestTimedOut or ErrorCode.NotLeaderForPartition or ErrorCode.LeaderNotAvailable
        or ErrorCode.NotEnoughReplicas or ErrorCode.NotEnoughReplicasAfterAppend or ErrorCode.NetworkException
        or ErrorCode.NotCoordinatorForGroup or ErrorCode.GroupLoadInProgress or ErrorCode.GroupCoordinatorNotAvailable
        or ErrorCode.BrokerNotAvailable or ErrorCode.Local_WaitCoord or ErrorCode.RebalanceInProgress or ErrorCode.Local_Retry;

    internal static void Apply(KafkaOptions options, ClientConfig config)
    {
        foreach (var (key, value) in options.Properties)
        {
            config.Set(key, value);
        }
    }
}
