using System.CommandLine;

namespace Attribution.Cli.Commands;

internal static class EvalCommand
{
    public static Command Create()
    {
        var command = new Command("eval", "Not built yet.");
        command.SetAction(_ =>
        {
            Console.Error.WriteLine("'eval' is not available in this build yet.");
            return 2;
        });
        return command;
    }
}
