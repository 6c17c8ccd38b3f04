using System.CommandLine;

namespace Attribution.Cli.Commands;

internal static class ArrowCommand
{
    public static Command Create()
    {
        var command = new Command("arrow", "Not built yet.");
        command.SetAction(_ =>
        {
            Console.Error.WriteLine("'arrow' is not available in this build yet.");
            return 2;
        });
        return command;
    }
}
