using System.CommandLine;

namespace Attribution.Cli.Commands;

internal static class AttributeCommand
{
    public static Command Create()
    {
        var command = new Command("attribute", "Not built yet.");
        command.SetAction(_ =>
        {
            Console.Error.WriteLine("'attribute' is not available in this build yet.");
            return 2;
        });
        return command;
    }
}
