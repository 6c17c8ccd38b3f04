using System.CommandLine;

namespace Attribution.Cli.Commands;

/// <summary><c>./pipeline help</c>: the same text as <c>--help</c>, for people who type the word.</summary>
internal static class HelpCommand
{
    public static Command Create(RootCommand root)
    {
        var command = new Command("help", "Show the commands and what they do.");
        command.SetAction(_ => root.Parse("--help").Invoke());
        return command;
    }
}
