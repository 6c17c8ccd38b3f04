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
    ServiceCommands.CreateServe(),
    ReplayCommand.Create(),
    ConsoleCommand.Create(),
    QueryCommand.Create(),
    LedgerCommand.Create(),
};
root.Subcommands.Add(HelpCommand.Create(root));
// Services drain in-flight work and commit on SIGINT/SIGTERM; give them the time the host's shutdown timeout allows.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(30) });
