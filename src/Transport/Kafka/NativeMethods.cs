using System.Runtime.InteropServices;
using System.Text;

namespace Attribution.Transport.Kafka;

/// <summary>
/// The few librdkafka calls Confluent.Kafka does not expose (reading <c>builtin.features</c>). "librdkafka" resolves
/// to the file <see cref="KafkaLibrary"/> chose, never to whatever the system's search path would find.
/// </summary>
internal static partial class NativeMethods
{
    private const string Library = "librdkafka";
    private const int ConfOk = 0;
    private static string? _path;

    static NativeMethods() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeMethods).Assembly, (name, _, _) =>
            name == Library && _path is { } path ? NativeLibrary.Load(path) : IntPtr.Zero);

    /// <summary>Binds the P/Invokes below to <paramref name="path"/> (called once, by KafkaLibrary, before any use).</summary>
    internal static void Use(string path) => _path = path;

    /// <summary>librdkafka's <c>builtin.features</c> (comma-separated), read from a fresh configuration object.</summary>
    internal static string BuiltinFeatures()
    {
        var conf = ConfNew();
        try
        {
            var size = (UIntPtr)1024;
            var buffer = new byte[(int)size];
            if (ConfGet(conf, "builtin.features", buffer, ref size) != ConfOk)
            {
                return "";
            }

            var end = Array.IndexOf(buffer, (byte)0);
            return Encoding.UTF8.GetString(buffer, 0, end < 0 ? buffer.Length : end);
        }
        finally
        {
            ConfDestroy(conf);
        }
    }

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_new")]
    private static partial IntPtr ConfNew();

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_destroy")]
    private static partial void ConfDestroy(IntPtr conf);

    [LibraryImport(Library, EntryPoint = "rd_kafka_conf_get", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int ConfGet(IntPtr conf, string name, [Out] byte[] dest, ref UIntPtr destSize);
}
