using System.Runtime.InteropServices;
using Attribution.Transport.Kafka;

namespace Attribution.Transport.Tests;

/// <summary>Which librdkafka the process uses: the bundled librdkafka.redist build, chosen explicitly, never the system's.</summary>
public sealed class KafkaLibraryTests
{
    private static readonly string Native = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");

    [Fact]
    public void The_loaded_librdkafka_is_the_bundled_2_16_build_from_the_build_output_and_no_system_librdkafka_is_mapped()
    {
        var info = KafkaLibrary.EnsureLoaded();

        Assert.Equal("2.16.0", info.Version);
        Assert.StartsWith(Native + Path.DirectorySeparatorChar, info.Path, StringComparison.Ordinal);
        // The process maps exactly one librdkafka, the chosen file: Debian's librdkafka.so.1 (if installed) is not used.
        var mapped = File.ReadLines("/proc/self/maps").Where(l => l.Contains("librdkafka", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf('/', StringComparison.Ordinal))..]).Distinct().ToList();
        Assert.Equal([info.Path], mapped);
    }

    [Fact]
    public void The_default_build_is_preferred_and_the_centos8_build_is_taken_exactly_when_the_default_cannot_load()
    {
        var info = KafkaLibrary.EnsureLoaded();
        var defaultBuild = Path.Combine(Native, "librdkafka.so");
        // dlopen of the default build fails on a machine without libsasl2.so.3 (Debian 12 without libsasl2-2).
        var defaultLoads = NativeLibrary.TryLoad(defaultBuild, out _);

        if (defaultLoads)
        {
            Assert.Equal(defaultBuild, info.Path);
            Assert.True(info.Has("sasl_gssapi"), info.BuiltinFeatures);
        }
        else
        {
            Assert.Equal(Path.Combine(Native, "centos8-librdkafka.so"), info.Path);
            Assert.Equal("librdkafka.redist centos8 build", info.Source);
            var passed = Assert.Single(info.PassedOver, r => !r.Missing);
            Assert.Equal(defaultBuild, passed.Candidate.Path);
            Assert.Contains("cannot open shared object file", passed.Reason, StringComparison.Ordinal);
            // What the centos8 build lacks: GSSAPI (Kerberos). What it has: TLS, SCRAM, OAUTHBEARER and every codec.
            Assert.False(info.Has("sasl_gssapi"), info.BuiltinFeatures);
        }

        foreach (var feature in new[] { "ssl", "sasl_plain", "sasl_scram", "sasl_oauthbearer", "gzip", "snappy", "lz4", "zstd" })
        {
            Assert.True(info.Has(feature), $"{feature} missing from {info.BuiltinFeatures}");
        }

        Assert.Contains(info.Path, info.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Clients_disable_nagle_by_default_and_the_option_or_an_explicit_property_turns_it_back_on()
    {
        // TCP_NODELAY is a measured latency/throughput setting (pipeline.md); it must reach every client's config.
        var config = new Confluent.Kafka.ClientConfig();
        KafkaLibrary.Apply(new KafkaOptions(), config);
        Assert.Equal("true", config.Get("socket.nagle.disable"), ignoreCase: true);
        var off = new Confluent.Kafka.ClientConfig();
        KafkaLibrary.Apply(new KafkaOptions { NoDelay = false }, off);
        Assert.Equal("false", off.Get("socket.nagle.disable"), ignoreCase: true);
        var property = new Confluent.Kafka.ClientConfig();
        KafkaLibrary.Apply(new KafkaOptions { Properties = { ["socket.nagle.disable"] = "false" } }, property);
        Assert.Equal("false", property.Get("socket.nagle.disable"), ignoreCase: true);
    }

    [Fact]
    public void An_override_other_than_the_loaded_library_is_refused_with_the_setting_named()
    {
        var info = KafkaLibrary.EnsureLoaded();

        Assert.Same(info, KafkaLibrary.EnsureLoaded(info.Path));
        var e = Assert.Throws<EventLogException>(() => KafkaLibrary.EnsureLoaded("/opt/other/librdkafka.so.1"));
        Assert.Contains(KafkaLibrary.OverrideKey, e.Message, StringComparison.Ordinal);
        Assert.Contains(info.Path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Glibc_x64_tries_the_default_build_then_centos8_each_under_runtimes_then_beside_the_app()
    {
        var c = KafkaLibrary.BundledCandidates("/app", Architecture.X64, musl: false, linux: true, macOs: false);

        Assert.Equal(
            ["/app/runtimes/linux-x64/native/librdkafka.so", "/app/librdkafka.so", "/app/runtimes/linux-x64/native/centos8-librdkafka.so", "/app/centos8-librdkafka.so"],
            c.Select(x => x.Path));
        Assert.Equal("librdkafka.redist default build", c[0].Source);
        Assert.Equal("librdkafka.redist centos8 build", c[2].Source);
    }

    [Fact]
    public void Musl_takes_the_alpine_build_and_arm64_has_no_centos8_fallback()
    {
        Assert.Equal(["/a/runtimes/linux-x64/native/alpine-librdkafka.so", "/a/alpine-librdkafka.so"],
            KafkaLibrary.BundledCandidates("/a", Architecture.X64, musl: true, linux: true, macOs: false).Select(x => x.Path));
        Assert.Equal(["/a/runtimes/linux-arm64/native/librdkafka.so", "/a/librdkafka.so"],
            KafkaLibrary.BundledCandidates("/a", Architecture.Arm64, musl: false, linux: true, macOs: false).Select(x => x.Path));
        Assert.Empty(KafkaLibrary.BundledCandidates("/a", Architecture.S390x, musl: false, linux: true, macOs: false));
    }

    [Fact]
    public void Choose_passes_over_missing_files_and_unloadable_builds_and_records_why()
    {
        var candidates = KafkaLibrary.BundledCandidates("/app", Architecture.X64, musl: false, linux: true, macOs: false);
        var present = new HashSet<string> { "/app/runtimes/linux-x64/native/librdkafka.so", "/app/runtimes/linux-x64/native/centos8-librdkafka.so" };

        var choice = KafkaLibrary.Choose(candidates, present.Contains,
            p => p.EndsWith("/librdkafka.so", StringComparison.Ordinal) ? "libsasl2.so.3: cannot open shared object file: No such file or directory" : null);

        Assert.Equal("/app/runtimes/linux-x64/native/centos8-librdkafka.so", choice.Chosen?.Path);
        Assert.Equal([("/app/runtimes/linux-x64/native/librdkafka.so", false), ("/app/librdkafka.so", true)],
            choice.Rejected.Select(r => (r.Candidate.Path, r.Missing)));
        Assert.StartsWith("libsasl2.so.3", choice.Rejected[0].Reason, StringComparison.Ordinal);

        var whenDefaultLoads = KafkaLibrary.Choose(candidates, present.Contains, _ => null);
        Assert.Equal("/app/runtimes/linux-x64/native/librdkafka.so", whenDefaultLoads.Chosen?.Path);
        Assert.Empty(whenDefaultLoads.Rejected);
    }

    [Fact]
    public void An_override_path_is_the_only_candidate_and_a_bare_soname_is_left_to_the_system_search_path()
    {
        var missing = KafkaLibrary.Choose([new LibrdkafkaCandidate("/nowhere/librdkafka.so.1", "operator override")], _ => false, _ => null);
        Assert.Null(missing.Chosen);
        Assert.Equal("no such file", Assert.Single(missing.Rejected).Reason);

        var soname = KafkaLibrary.Choose([new LibrdkafkaCandidate("librdkafka.so.1", "operator override")], _ => false, _ => null);
        Assert.Equal("librdkafka.so.1", soname.Chosen?.Path);
    }

    [Fact]
    public void The_loader_reason_is_the_one_line_that_names_the_missing_dependency()
    {
        var message = "Unable to load shared library '/x/librdkafka.so' or one of its dependencies. In order to help diagnose loading problems, consider using a tool like strace. If you're using glibc, consider setting the LD_DEBUG environment variable: \n" +
            "libsasl2.so.3: cannot open shared object file: No such file or directory\n";

        Assert.Equal("libsasl2.so.3: cannot open shared object file: No such file or directory", KafkaLibrary.LoaderReason(message));
        Assert.Equal("plain", KafkaLibrary.LoaderReason("plain"));
    }
}
