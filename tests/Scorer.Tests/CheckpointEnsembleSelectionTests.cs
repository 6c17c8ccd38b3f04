using Attribution.Attribution.Methods;

namespace Attribution.Scorer.Tests;

public sealed class CheckpointEnsembleSelectionTests
{
    [Theory]
    // Fewer sets than asked for: all of them (what is there is served).
    [InlineData(3, 1, new[] { 0 })]
    [InlineData(3, 2, new[] { 0, 1 })]
    [InlineData(3, 3, new[] { 0, 1, 2 })]
    // More: spread evenly over the run, ending at the newest, as eval's forward-only:checkpoints=J picks.
    [InlineData(3, 4, new[] { 1, 2, 3 })]
    [InlineData(3, 6, new[] { 1, 3, 5 })]
    [InlineData(2, 5, new[] { 2, 4 })]
    [InlineData(5, 10, new[] { 1, 3, 5, 7, 9 })]
    [InlineData(1, 7, new[] { 6 })]
    public void Select_TakesAllWhileFewer_ThenSpreadsEndingAtTheNewest(int wanted, int saved, int[] expected)
    {
        var chosen = CheckpointEnsembleScorer.Select(wanted, saved);
        Assert.Equal(expected, chosen);
        // The same indices EnsembleMethod precomputes its members at in eval (where saved >= wanted).
        if (saved >= wanted)
        {
            Assert.Equal(Enumerable.Range(0, wanted).Select(m => EnsembleMethod.SpreadCheckpoint(m, wanted, saved)), chosen);
        }
    }

    [Fact]
    public void Select_RefusesNothingToChooseFrom()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CheckpointEnsembleScorer.Select(0, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => CheckpointEnsembleScorer.Select(3, 0));
    }

    [Fact]
    public void Mean_IsTheElementwiseAverage_AndRefusesMembersOfDifferentLengths()
    {
        Assert.Equal([2f, 3f], EnsembleMethod.Mean([[1f, 2f], [3f, 4f]]));
        Assert.Throws<ArgumentException>(() => EnsembleMethod.Mean([[1f, 2f], [3f]]));
        Assert.Throws<ArgumentException>(() => EnsembleMethod.Mean([]));
    }
}
