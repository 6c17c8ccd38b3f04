using System.Diagnostics;

namespace Attribution.Transport.Tests;

/// <summary>
/// Starts a private RabbitMQ node (infra/rabbitmq.sh: 127.0.0.1:5673, stale node from a crashed run stopped first) once
/// for the collection and stops it afterwards. Fails, never skips, when rabbitmq-server is missing.
/// </summary>
public sealed class RabbitMqFixture : IAsyncLifetime
{
    public const int Port = 5673;

    private string _script = "";

    public async Task InitializeAsync()
    {
        var root = AppContext.BaseDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "Pipeline.sln")))
        {
            root = Path.GetDirectoryName(root);
        }

        _script = root is null ? "" : Path.Combine(root, "infra", "rabbitmq.sh");
        Assert.True(File.Exists(_script), $"infra/rabbitmq.sh not found above {AppContext.BaseDirectory}; run the tests from the repository (./pipeline test).");
        Assert.True(
            File.Exists("/usr/lib/rabbitmq/bin/rabbitmq-server") || File.Exists("/usr/sbin/rabbitmq-server"),
            "rabbitmq-server is not installed: run ./pipeline test (it installs the Debian package rabbitmq-server), or apt-get install rabbitmq-server.");
        var (code, output) = await RunAsync("start");
        Assert.True(code == 0, $"infra/rabbitmq.sh start failed (exit {code}):\n{output}");
    }

    public async Task DisposeAsync()
    {
        if (_script.Length > 0)
        {
            await RunAsync("stop");
        }
    }

    private async Task<(int Code, string Output)> RunAsync(string verb)
    {
        var psi = new ProcessStartInfo("bash", [_script, verb]) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["RABBITMQ_TEST_PORT"] = Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}

[CollectionDefinition(Name)]
public sealed class RabbitMqCollection : ICollectionFixture<RabbitMqFixture>
{
    public const string Name = "rabbitmq";
}
