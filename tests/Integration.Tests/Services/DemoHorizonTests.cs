using Attribution.Cli.Demo;

namespace Attribution.Integration.Tests.Services;

/// <summary>
/// <c>./pipeline demo</c>'s horizon (issue 15): unset it is the Simulator's default (4 epochs for the MLP's spectral
/// propagation); steps or epochs may be given, both are refused with a line naming the two options.
/// </summary>
public sealed class DemoHorizonTests
{
    [Fact]
    public void The_horizon_is_given_in_steps_or_in_epochs_and_both_are_refused()
    {
        Assert.Null(new DemoSettings().Validate());
        Assert.Null(new DemoSettings { Horizon = 20 }.Validate());
        Assert.Null(new DemoSettings { HorizonEpochs = 2.5 }.Validate());
        Assert.Equal("--horizon (steps) and --horizon-epochs both set the horizon: give one of them.", new DemoSettings { Horizon = 40, HorizonEpochs = 4 }.Validate());
        Assert.Contains("--horizon-epochs must be a positive number of epochs (got -1)", new DemoSettings { HorizonEpochs = -1 }.Validate(), StringComparison.Ordinal);
        Assert.Contains("--horizon", new DemoSettings { Horizon = 0 }.Validate(), StringComparison.Ordinal);
    }
}
