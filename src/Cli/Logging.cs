using Microsoft.Extensions.Logging;
using Serilog;
using Serilog.Extensions.Logging;
using ILogger = Microsoft.Extensions.Logging.ILogger;

namespace Attribution.Cli;

/// <summary>The CLI's one Serilog setup: structured console logs on stderr, so stdout stays for results.</summary>
internal static class CliLogging
{
    public static ILoggerFactory CreateFactory(bool verbose = false) => new SerilogLoggerFactory(CreateSerilog(verbose), dispose: true);

    public static Serilog.Core.Logger CreateSerilog(bool verbose = false) =>
        new Serilog.LoggerConfiguration()
            .MinimumLevel.Is(verbose ? Serilog.Events.LogEventLevel.Debug : Serilog.Events.LogEventLevel.Information)
            .MinimumLevel.Override("MassTransit", Serilog.Events.LogEventLevel.Warning)
            .Enrich.FromLogContext()
            .WriteTo.Console(
                outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}",
                standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose)
            .CreateLogger();
}

/// <summary>Stable-id log messages of the train and bench commands.</summary>
internal static partial class TrainLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Loading {Dataset} from {Directory}")]
    public static partial void LoadingData(ILogger logger, string dataset, string directory);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Training {Model} {Architecture}: {TrainCount} train / {TestCount} test examples, {Epochs} epochs, batch {BatchSize}, seed {Seed}, {Steps} steps")]
    public static partial void TrainingStarted(ILogger logger, string model, string architecture, int trainCount, int testCount, int epochs, int batchSize, ulong seed, long steps);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Trained in {Seconds:F1} s: final train loss {TrainLoss:F4}, test loss {TestLoss:F4}, test accuracy {TestAccuracy:P2}")]
    public static partial void TrainingFinished(ILogger logger, double seconds, double trainLoss, double testLoss, double testAccuracy);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Information, Message = "Wrote run directory {Directory}")]
    public static partial void WroteRun(ILogger logger, string directory);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Error, Message = "Training failed: {Reason}")]
    public static partial void TrainingFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information, Message = "GPT {Config}: validation loss {ValLoss:F4} nats/token vs unigram {UnigramLoss:F4} ({Steps} steps, {Seconds:F1} s)")]
    public static partial void GptFinished(ILogger logger, string config, double valLoss, double unigramLoss, long steps, double seconds);
}
