using System.CommandLine;
using Attribution.Contracts.Arrow;

namespace Attribution.Cli.Commands;

/// <summary><c>./pipeline arrow inspect FILE</c>: schema, metadata, dictionaries and first rows of any Arrow IPC stream or file.</summary>
internal static class ArrowCommand
{
    // A stream is read whole into memory; refuse files beyond this rather than exhausting memory.
    private const long MaxFileBytes = 1L << 30;

    public static Command Create()
    {
        var command = new Command("arrow", "Arrow IPC tools.");
        command.Subcommands.Add(CreateInspect());
        return command;
    }

    private static Command CreateInspect()
    {
        var file = new Argument<FileInfo>("file") { Description = "An Arrow IPC stream or file (ours or anyone's: pyarrow, apache-arrow, Feather v2; lz4/zstd bodies too); '-' reads standard input." };
        var rows = new Option<int>("--rows") { Description = "How many rows to print.", DefaultValueFactory = _ => 10 };
        var items = new Option<int>("--list-items") { Description = "How many items of each list to print.", DefaultValueFactory = _ => 8 };
        var command = new Command("inspect", "Print an Arrow IPC stream's or file's schema (with metadata), dictionaries and first rows.");
        command.Arguments.Add(file);
        command.Options.Add(rows);
        command.Options.Add(items);
        command.SetAction(parseResult =>
        {
            var path = parseResult.GetValue(file)!;
            var maxRows = parseResult.GetValue(rows);
            var maxItems = parseResult.GetValue(items);
            if (maxRows < 0 || maxItems < 0)
            {
                Console.Error.WriteLine("--rows and --list-items must be 0 or more.");
                return 2;
            }
            byte[] bytes;
            try
            {
                bytes = ReadInput(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"Cannot read '{path.FullName}': {e.Message}");
                return 2;
            }
            try
            {
                ArrowInspector.Describe(bytes, Console.Out, maxRows, maxItems);
                return 0;
            }
            catch (InvalidArrowException e)
            {
                Console.Error.WriteLine($"'{path.Name}' is not readable Arrow IPC (stream or file): {e.Message}");
                return 2;
            }
        });
        return command;
    }

    private static byte[] ReadInput(FileInfo path)
    {
        if (path.Name == "-" && !path.Exists)
        {
            using var stdin = Console.OpenStandardInput();
            using var buffer = new MemoryStream();
            stdin.CopyTo(buffer);
            return buffer.ToArray();
        }
        if (!path.Exists)
        {
            throw new FileNotFoundException("the file does not exist", path.FullName);
        }
        if (path.Length > MaxFileBytes)
        {
            throw new IOException($"the file is {path.Length} bytes; inspect reads at most {MaxFileBytes} bytes");
        }
        return File.ReadAllBytes(path.FullName);
    }
}
