using System.CommandLine;

namespace Attribution.Cli.Commands;

internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Not built yet.");
        command.SetAction(_ =>
        {
            Console.Error.WriteLine("'bench' is not available in this build yet.");
            return 2;
        });
        return command;
    }
}
