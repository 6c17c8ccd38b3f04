using System.CommandLine;

namespace Attribution.Cli.Commands;

internal static class DemoCommand
{
    public static Command Create()
    {
        var command = new Command("demo", "Not built yet.");
        command.SetAction(_ =>
        {
            Console.Error.WriteLine("'demo' is not available in this build yet.");
            return 2;
        });
        return command;
    }
}
