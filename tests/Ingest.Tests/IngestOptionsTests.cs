namespace Attribution.Ingest.Tests;

/// <summary>Ingest settings are checked at start-up with a line saying what to fix.</summary>
public sealed class IngestOptionsTests
{
    [Fact]
    public void A_missing_run_directory_is_refused_and_the_run_id_defaults_to_its_name()
    {
        Assert.Contains("RunDirectory is required", new IngestOptions().Validate(), StringComparison.Ordinal);
        Assert.Contains("does not exist", new IngestOptions { RunDirectory = "/nonexistent/run-x" }.Validate(), StringComparison.Ordinal);
        var dir = Directory.CreateTempSubdirectory("run-");
        try
        {
            var o = new IngestOptions { RunDirectory = dir.FullName };
            Assert.Null(o.Validate());
            Assert.Equal(dir.Name, o.EffectiveRunId);
            Assert.False(o.Follow);
            Assert.True(new IngestOptions { RunDirectory = dir.FullName, Mode = "FOLLOW" }.Follow);
        }
        finally
        {
            dir.Delete();
        }
    }

    [Theory]
    [InlineData("Mode", "Ingest:Mode must be 'once' or 'follow'")]
    [InlineData("PollSeconds", "Ingest:PollSeconds")]
    [InlineData("SourceCount", "Ingest:SourceCount")]
    [InlineData("BatchChunk", "Ingest:BatchChunk")]
    [InlineData("Partitions", "Ingest:Partitions")]
    [InlineData("RunId", "Ingest:RunId must not be empty")]
    public void Each_out_of_range_setting_is_named_in_the_error(string setting, string expected)
    {
        var o = new IngestOptions { RunDirectory = Path.GetTempPath() };
        switch (setting)
        {
            case "Mode": o.Mode = "sometimes"; break;
            case "PollSeconds": o.PollSeconds = 0; break;
            case "SourceCount": o.SourceCount = 0; break;
            case "BatchChunk": o.BatchChunk = 1001; break;
            case "Partitions": o.Partitions = 0; break;
            default: o.RunId = ""; break;
        }

        Assert.Contains(expected, o.Validate(), StringComparison.Ordinal);
    }
}
