using System.Globalization;
using Serilog.Core;
using Serilog.Events;

namespace Attribution.Cli.Demo;

/// <summary>A minimal Serilog sink appending rendered events to a file (the Serilog file sink is not in our package set).</summary>
internal sealed class PlainFileSink : ILogEventSink, IDisposable
{
    private readonly StreamWriter _writer;
    private readonly Lock _lock = new();

    public PlainFileSink(string path)
    {
        _writer = new StreamWriter(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    public void Emit(LogEvent logEvent)
    {
        ArgumentNullException.ThrowIfNull(logEvent);
        var context = logEvent.Properties.TryGetValue("SourceContext", out var sc) ? sc.ToString().Trim('"') : "";
        var line = string.Create(CultureInfo.InvariantCulture, $"{logEvent.Timestamp:HH:mm:ss.fff} {logEvent.Level.ToString()[..3].ToUpperInvariant()} {context}: {logEvent.RenderMessage(CultureInfo.InvariantCulture)}");
        lock (_lock)
        {
            _writer.WriteLine(line);
            if (logEvent.Exception is not null)
            {
                _writer.WriteLine(logEvent.Exception.ToString());
            }
        }
    }

    public void Dispose() => _writer.Dispose();
}
