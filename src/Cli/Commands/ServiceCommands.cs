using System.CommandLine;

namespace Attribution.Cli.Commands;

internal static class ServiceCommands
{
    public static Command CreateIngest() => NotYet("ingest");
    public static Command CreateSimulate() => NotYet("simulate");
    public static Command CreateScore() => NotYet("score");

    private static Command NotYet(string name)
    {
        var command = new Command(name, "Not built yet.");
        command.SetAction(_ =>
        {
            Console.Error.WriteLine($"'{name}' is not available in this build yet.");
            return 2;
        });
        return command;
    }
}
