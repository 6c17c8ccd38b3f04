using System.Diagnostics.Metrics;

namespace Attribution.Simulator;

/// <summary>
/// The Simulator's counters as System.Diagnostics.Metrics instruments of the meter <see cref="MeterName"/>:
/// <c>pipeline.simulator.probes</c> (probes published), <c>.probe_sets</c>, <c>.dead_letters</c> (checkpoints).
/// </summary>
public sealed class SimulatorInstruments : IDisposable
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "Attribution.Simulator";

    private readonly Meter _meter = new(MeterName);

    /// <summary>Observes <paramref name="worker"/>'s counters.</summary>
    public SimulatorInstruments(SimulatorWorker worker)
    {
        ArgumentNullException.ThrowIfNull(worker);
        _meter.CreateObservableCounter("pipeline.simulator.probes", () => worker.ProbesPublished, "{probe}", "Influence probes simulated and published");
        _meter.CreateObservableCounter("pipeline.simulator.probe_sets", () => worker.ProbeSetsCompleted, "{set}", "Probe sets completed");
        _meter.CreateObservableCounter("pipeline.simulator.dead_letters", () => worker.DeadLetteredCount, "{checkpoint}", "Checkpoints dead-lettered");
    }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();
}
