namespace Attribution.Simulator.Tests;

/// <summary>Simulator settings: scale-out indices are checked at start-up and give each instance its own consumer group.</summary>
public sealed class SimulatorOptionsTests
{
    [Fact]
    public void The_defaults_are_valid_and_keep_the_plain_group_id()
    {
        var o = new SimulatorOptions();
        Assert.Null(o.Validate());
        Assert.Equal("simulator", o.EffectiveGroupId);
    }

    [Fact]
    public void Shared_sets_give_each_instance_its_own_group_so_every_instance_sees_every_checkpoint()
    {
        Assert.Equal("sim-0-of-2", new SimulatorOptions { GroupId = "sim", Instances = 2, Instance = 0 }.EffectiveGroupId);
        Assert.Equal("sim-1-of-2", new SimulatorOptions { GroupId = "sim", Instances = 2, Instance = 1 }.EffectiveGroupId);
    }

    [Theory]
    [InlineData(2, 2)]
    [InlineData(2, -1)]
    [InlineData(0, 0)]
    [InlineData(1025, 0)]
    public void An_instance_index_outside_the_count_is_refused_with_what_to_fix(int instances, int instance)
    {
        var error = new SimulatorOptions { Instances = instances, Instance = instance }.Validate();
        Assert.NotNull(error);
        Assert.Contains("Simulator:Instances", error, StringComparison.Ordinal);
        Assert.Contains($"got {instance}", error, StringComparison.Ordinal);
    }

    [Fact]
    public void The_horizon_in_epochs_reaches_the_forward_only_options_and_giving_it_with_steps_is_refused()
    {
        var byEpochs = new SimulatorOptions { HorizonEpochs = 2.5 };
        Assert.Null(byEpochs.Validate());
        Assert.Equal((0, 2.5), (byEpochs.ToForwardOnly().Horizon, byEpochs.ToForwardOnly().HorizonEpochs));
        var error = new SimulatorOptions { Horizon = 40, HorizonEpochs = 4 }.Validate();
        Assert.NotNull(error);
        Assert.StartsWith("Simulator:HorizonEpochs", error, StringComparison.Ordinal);
        Assert.Contains("give one of them", error, StringComparison.Ordinal);
        Assert.Contains("Simulator:HorizonEpochs", new SimulatorOptions { HorizonEpochs = 0 }.Validate(), StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_precision_is_refused()
    {
        Assert.Contains("'f8'", new SimulatorOptions { Precision = "f8" }.Validate(), StringComparison.Ordinal);
    }

    [Fact]
    public void Spectral_propagation_and_its_operator_rank_reach_the_forward_only_options_and_a_bad_combination_is_named()
    {
        var spectral = new SimulatorOptions { Propagation = Attribution.Methods.ForwardPropagation.Spectral, OperatorRank = 32 };
        Assert.Null(spectral.Validate());
        var fo = spectral.ToForwardOnly();
        Assert.Equal((Attribution.Methods.ForwardPropagation.Spectral, 32), (fo.Propagation, fo.OperatorRank));
        Assert.Null(new SimulatorOptions().ToForwardOnly().Propagation); // by checkpoint: spectral for an MLP, the trajectory for a transformer

        var error = new SimulatorOptions { Propagation = Attribution.Methods.ForwardPropagation.Spectral, TwoTrajectory = false }.Validate();
        Assert.NotNull(error);
        Assert.StartsWith("Simulator:Propagation", error, StringComparison.Ordinal);
        Assert.Contains("Simulator:OperatorRank", new SimulatorOptions { OperatorRank = 0 }.Validate(), StringComparison.Ordinal);
    }
}
