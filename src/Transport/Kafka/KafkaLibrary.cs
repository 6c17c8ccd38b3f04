using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace Attribution.Transport.Kafka;

/// <summary>
/// Chooses and loads the librdkafka that Confluent.Kafka (and the mock-cluster launcher) use, once per process.
/// The choice is explicit: an operator's <c>Transport:Kafka:LibraryPath</c> if set; otherwise the builds that
/// librdkafka.redist puts in the build output, in order (on glibc x64: the default build, which needs the system's
/// libsasl2.so.3 for GSSAPI/Kerberos, then the self-contained centos8 build, which has no GSSAPI). What was loaded, and
/// why the builds before it were passed over, is in <see cref="Loaded"/>.
/// </summary>
public static class KafkaLibrary
{
    /// <summary>The configuration key of the operator override.</summary>
    public const string OverrideKey = "Transport:Kafka:LibraryPath";

    private static readonly Lock Gate = new();
    private static LibrdkafkaInfo? _loaded;

    /// <summary>What is loaded, or null before the first <see cref="EnsureLoaded"/>.</summary>
    public static LibrdkafkaInfo? Loaded
    {
        get
        {
            lock (Gate)
            {
                return _loaded;
            }
        }
    }

    /// <summary>
    /// Loads librdkafka unless it is loaded: from <paramref name="overridePath"/> when given (the operator's choice,
    /// nothing else is tried), otherwise the first bundled build that loads. Idempotent and thread-safe.
    /// </summary>
    /// <exception cref="EventLogException">No library could be loaded, or another one than
    /// <paramref name="overridePath"/> is already loaded in this process.</exception>
    public static LibrdkafkaInfo EnsureLoaded(string? overridePath = null)
    {
        lock (Gate)
        {
            if (_loaded is not null)
            {
                if (!string.IsNullOrWhiteSpace(overridePath) && !SameFile(overridePath, _loaded.Path))
                {
                    throw new EventLogException(
                        $"{OverrideKey} is '{overridePath}', but this process already loaded librdkafka from '{_loaded.Path}' (one librdkafka per process).");
                }

                return _loaded;
            }

            if (Library.IsLoaded)
            {
                throw new InvalidOperationException("Confluent.Kafka loaded a librdkafka by itself; call KafkaLibrary.EnsureLoaded before creating any Kafka client.");
            }

            var candidates = string.IsNullOrWhiteSpace(overridePath)
                ? BundledCandidates(AppContext.BaseDirectory, RuntimeInformation.ProcessArchitecture, IsMusl(), OperatingSystem.IsLinux(), OperatingSystem.IsMacOS())
                : [new LibrdkafkaCandidate(overridePath, $"operator override ({OverrideKey})")];
            var choice = Choose(candidates, File.Exists, TryOpen);
            if (choice.Chosen is null)
            {
                var tried = string.Join("; ", choice.Rejected.Select(r => $"{r.Candidate.Path}: {r.Reason}"));
                var fix = string.IsNullOrWhiteSpace(overridePath)
                    ? $"rebuild so that librdkafka.redist's runtimes/ folder is in the output, or set {OverrideKey} to a librdkafka 2.x shared library"
                    : $"point {OverrideKey} at a librdkafka 2.x shared library, or remove it to use the bundled build";
                throw new EventLogException($"Could not load librdkafka ({(tried.Length > 0 ? tried : "no bundled build for this platform")}); {fix}.");
            }

            try
            {
                MapNativeNames(choice.Chosen.Path);
                Library.Load(choice.Chosen.Path);
            }
            catch (Exception e) when (e is DllNotFoundException or InvalidOperationException or EntryPointNotFoundException or BadImageFormatException)
            {
                throw new EventLogException(
                    $"Confluent.Kafka refused librdkafka '{choice.Chosen.Path}' ({e.Message}); point {OverrideKey} at a librdkafka 2.x shared library.",
                    isTransient: false,
                    inner: e);
            }

            NativeMethods.Use(choice.Chosen.Path);
            _loaded = new LibrdkafkaInfo(choice.Chosen.Path, choice.Chosen.Source, Library.VersionString, NativeMethods.BuiltinFeatures(), choice.Rejected);
            return _loaded;
        }
    }

    /// <summary>The loaded librdkafka version, e.g. "2.16.0".</summary>
    public static string Version => EnsureLoaded().Version;

    /// <summary>
    /// The builds librdkafka.redist ships for this platform, in the order they are tried. Each is looked for under
    /// <c>runtimes/RID/native/</c> of the output (a portable build) and then beside the application (a RID-specific
    /// publish flattens them).
    /// </summary>
    internal static IReadOnlyList<LibrdkafkaCandidate> BundledCandidates(string baseDirectory, Architecture arch, bool musl, bool linux, bool macOs)
    {
        string rid;
        (string File, string Source)[] files;
        if (linux && arch is Architecture.X64 or Architecture.Arm64)
        {
            rid = arch == Architecture.X64 ? "linux-x64" : "linux-arm64";
            files = musl ? [("alpine-librdkafka.so", "librdkafka.redist musl build")]
                : arch == Architecture.X64 ? [("librdkafka.so", "librdkafka.redist default build"), ("centos8-librdkafka.so", "librdkafka.redist centos8 build")]
                : [("librdkafka.so", "librdkafka.redist default build")];
        }
        else if (macOs && arch is Architecture.X64 or Architecture.Arm64)
        {
            rid = arch == Architecture.X64 ? "osx-x64" : "osx-arm64";
            files = [("librdkafka.dylib", "librdkafka.redist build")];
        }
        else if (OperatingSystem.IsWindows() && arch is Architecture.X64 or Architecture.X86)
        {
            rid = arch == Architecture.X64 ? "win-x64" : "win-x86";
            files = [("librdkafka.dll", "librdkafka.redist build")];
        }
        else
        {
            return [];
        }

        return [.. files.SelectMany(f => new[]
        {
            new LibrdkafkaCandidate(Path.Combine(baseDirectory, "runtimes", rid, "native", f.File), f.Source),
            new LibrdkafkaCandidate(Path.Combine(baseDirectory, f.File), f.Source),
        })];
    }

    /// <summary>
    /// The first candidate that exists and opens, and the others before it with why they were passed over. A bare soname
    /// (no directory) is not checked for existence: the system's search path finds it.
    /// </summary>
    internal static LibrdkafkaChoice Choose(IReadOnlyList<LibrdkafkaCandidate> candidates, Func<string, bool> fileExists, Func<string, string?> tryOpen)
    {
        var rejected = new List<LibrdkafkaRejection>();
        foreach (var candidate in candidates)
        {
            var isPath = candidate.Path.Contains('/', StringComparison.Ordinal) || candidate.Path.Contains('\\', StringComparison.Ordinal);
            if (isPath && !fileExists(candidate.Path))
            {
                rejected.Add(new LibrdkafkaRejection(candidate, "no such file", Missing: true));
                continue;
            }

            if (tryOpen(candidate.Path) is { } error)
            {
                rejected.Add(new LibrdkafkaRejection(candidate, error, Missing: false));
                continue;
            }

            return new LibrdkafkaChoice(candidate, rejected);
        }

        return new LibrdkafkaChoice(null, rejected);
    }

    /// <summary>Opens the library the way the loader will (with its dependencies); null when it loads, else why not.</summary>
    private static string? TryOpen(string path)
    {
        try
        {
            // dlopen reference-counts: the handle stays valid for Confluent.Kafka's own load of the same file.
            NativeLibrary.Load(path);
            return null;
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            return LoaderReason(e.Message);
        }
    }

    /// <summary>The runtime's load error is a paragraph of advice around the loader's one line; keep that line.</summary>
    internal static string LoaderReason(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return lines.FirstOrDefault(l => l.Contains("cannot open shared object", StringComparison.Ordinal) || l.Contains("undefined symbol", StringComparison.Ordinal))
            ?? lines.LastOrDefault() ?? message;
    }

    /// <summary>
    /// Confluent.Kafka loads a library given by path through <c>dlopen</c> P/Invoked from "libdl", which Debian 12 ships
    /// only as <c>libdl.so.2</c> (the bare name comes with libc6-dev), and binds anything it P/Invokes as "librdkafka".
    /// Resolve both for its assembly: libdl to the versioned soname, librdkafka to the chosen file (never the system's).
    /// </summary>
    private static void MapNativeNames(string librdkafkaPath)
    {
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Library).Assembly, (name, _, _) => name switch
            {
                "libdl" when NativeLibrary.TryLoad("libdl.so.2", out var dl) || NativeLibrary.TryLoad("libc.so.6", out dl) => dl,
                "librdkafka" => NativeLibrary.Load(librdkafkaPath),
                _ => IntPtr.Zero,
            });
        }
        catch (InvalidOperationException)
        {
            // The host already installed a resolver for Confluent.Kafka; trust it.
        }
    }

    private static bool IsMusl() =>
        OperatingSystem.IsLinux() && Directory.Exists("/lib") && Directory.EnumerateFiles("/lib", "ld-musl-*").Any();

    private static bool SameFile(string a, string b) =>
        string.Equals(Path.GetFullPath(a), Path.GetFullPath(b), StringComparison.Ordinal);

    /// <summary>Whether an error is worth retrying (broker down, leader moving, timeout, full local queue).</summary>
    internal static bool IsTransient(Error error) => !error.IsFatal && error.Code is
        ErrorCode.Local_MsgTimedOut or ErrorCode.Local_TimedOut or ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown
        or ErrorCode.Local_QueueFull or ErrorCode.RequestTimedOut or ErrorCode.NotLeaderForPartition or ErrorCode.LeaderNotAvailable
        or ErrorCode.NotEnoughReplicas or ErrorCode.NotEnoughReplicasAfterAppend or ErrorCode.NetworkException
        or ErrorCode.NotCoordinatorForGroup or ErrorCode.GroupLoadInProgress or ErrorCode.GroupCoordinatorNotAvailable
        or ErrorCode.BrokerNotAvailable or ErrorCode.Local_WaitCoord or ErrorCode.RebalanceInProgress or ErrorCode.Local_Retry;

    internal static void Apply(KafkaOptions options, ClientConfig config)
    {
        config.SocketNagleDisable = options.NoDelay;
        foreach (var (key, value) in options.Properties)
        {
            config.Set(key, value);
        }
    }
}

/// <summary>A librdkafka file to try, and where it comes from (for the log).</summary>
/// <param name="Path">File path (or a soname for the system's search path).</param>
/// <param name="Source">E.g. "librdkafka.redist centos8 build", "operator override (Transport:Kafka:LibraryPath)".</param>
public sealed record LibrdkafkaCandidate(string Path, string Source);

/// <summary>A candidate passed over, and why (the loader's message, e.g. "libsasl2.so.3: cannot open shared object file").</summary>
/// <param name="Candidate">What was tried.</param>
/// <param name="Reason">Why it was passed over.</param>
/// <param name="Missing">The file is not there (normal for one of a build's two possible locations).</param>
public sealed record LibrdkafkaRejection(LibrdkafkaCandidate Candidate, string Reason, bool Missing);

/// <summary>The result of <see cref="KafkaLibrary.Choose"/>: the chosen candidate (null when none loads) and those passed over.</summary>
internal sealed record LibrdkafkaChoice(LibrdkafkaCandidate? Chosen, IReadOnlyList<LibrdkafkaRejection> Rejected);

/// <summary>The librdkafka this process uses.</summary>
/// <param name="Path">The file loaded.</param>
/// <param name="Source">Why this one (bundled build or operator override).</param>
/// <param name="Version">librdkafka's version string, e.g. "2.16.0".</param>
/// <param name="BuiltinFeatures">librdkafka's <c>builtin.features</c>, e.g. "gzip, snappy, ssl, sasl, ..."; an
/// operator checks here whether e.g. <c>sasl_gssapi</c> (Kerberos) is available.</param>
/// <param name="PassedOver">Candidates tried before it, and why they did not load.</param>
public sealed record LibrdkafkaInfo(string Path, string Source, string Version, string BuiltinFeatures, IReadOnlyList<LibrdkafkaRejection> PassedOver)
{
    /// <summary>Whether <see cref="BuiltinFeatures"/> lists <paramref name="feature"/> (e.g. "sasl_gssapi", "zstd").</summary>
    public bool Has(string feature) =>
        BuiltinFeatures.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Contains(feature, StringComparer.Ordinal);

    /// <summary>One line for logs and health reports.</summary>
    public override string ToString() =>
        $"librdkafka {Version} from {Path} ({Source}{(PassedOver.Any(r => !r.Missing) ? "; passed over: " + string.Join("; ", PassedOver.Where(r => !r.Missing).Select(r => $"{System.IO.Path.GetFileName(r.Candidate.Path)}: {r.Reason}")) : "")}); features: {BuiltinFeatures}";
}
