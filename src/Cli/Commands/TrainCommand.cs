using System.CommandLine;

namespace Attribution.Cli.Commands;

internal static class TrainCommand
{
    public static Command Create()
    {
        var command = new Command("train", "Not built yet.");
        command.SetAction(_ =>
        {
            Console.Error.WriteLine("'train' is not available in this build yet.");
            return 2;
        });
        return command;
    }
}
