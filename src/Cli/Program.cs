using System.CommandLine;
using Attribution.Cli.Commands;

var root = new RootCommand("Training-data attribution on live model traffic. Run './pipeline <command> --help' for a command's options.")
{
    DemoCommand.Create(),
    TrainCommand.Create(),
    AttributeCommand.Create(),
    EvalCommand.Create(),
    ArrowCommand.Create(),
    BenchCommand.Create(),
    ServiceCommands.CreateIngest(),
    ServiceCommands.CreateSimulate(),
    ServiceCommands.CreateScore(),
};
root.Subcommands.Add(HelpCommand.Create(root));
return await root.Parse(args).InvokeAsync();
