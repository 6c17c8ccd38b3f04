using Attribution.Ingest;
using Attribution.Scorer;
using Attribution.Simulator;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Attribution.Cli.Services;

/// <summary>Logs the running services' counters every interval (and once more at shutdown), so an operator sees progress.</summary>
internal sealed class StatusReporter : IDisposable
{
    private readonly IServiceProvider _services;
    private readonly ILogger _logger;
    private readonly Timer _timer;
    private readonly Lock _gate = new();
    private string _last = "";

    public StatusReporter(IServiceProvider services, ILogger logger, TimeSpan interval)
    {
        _services = services;
        _logger = logger;
        _timer = new Timer(_ => Report(force: false), null, interval, interval);
    }

    /// <summary>Logs the counters; on the timer, only when something changed since the last report.</summary>
    public void Report() => Report(force: true);

    private void Report(bool force)
    {
        var ingestW = _services.GetService<IngestWorker>();
        var simulatorW = _services.GetService<SimulatorWorker>();
        var scorerW = _services.GetService<ScorerWorker>();
        var signature = $"{ingestW?.CheckpointsPublished}/{ingestW?.CheckpointsSkipped}/{simulatorW?.ProbesPublished}/{simulatorW?.ProbeSetsCompleted}/{simulatorW?.DeadLetteredCount}/" +
            $"{scorerW?.Index.Current?.Version}/{scorerW?.Metrics.QueriesScored}/{scorerW?.Metrics.QueriesRejected}/{scorerW?.Metrics.AlertsRaised}";
        lock (_gate)
        {
            if (!force && signature == _last)
            {
                return;
            }

            _last = signature;
        }

        if (_services.GetService<IngestWorker>() is { } ingest)
        {
            ServiceLog.IngestStatus(_logger, ingest.CheckpointsPublished, ingest.CheckpointsSkipped, ingest.BatchEventsPublished);
        }

        if (_services.GetService<SimulatorWorker>() is { } simulator)
        {
            ServiceLog.SimulatorStatus(_logger, simulator.ProbesPublished, simulator.ProbesSkipped, simulator.ProbeSetsCompleted, simulator.DeadLetteredCount);
        }

        if (_services.GetService<ScorerWorker>() is { } scorer)
        {
            var m = scorer.Metrics;
            var model = scorer.Index.Current;
            ServiceLog.ScorerStatus(_logger, model?.Version ?? "(no complete probe set yet)",
                m.QueriesScored, m.QueriesRejected, m.DuplicatesSkipped, m.AlertsRaised, m.LatencyP50Micros / 1000.0, m.LatencyP99Micros / 1000.0);
        }
    }

    public void Dispose() => _timer.Dispose();
}
