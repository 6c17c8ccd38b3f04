namespace Attribution.Engine.Data;

/// <summary>A data file exists but its contents are malformed; the message names the file and what is wrong.</summary>
public sealed class DataFormatException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public DataFormatException(string path, string message)
        : base($"{path}: {message}")
    {
        Path = path;
    }

    /// <summary>Creates the exception with a cause.</summary>
    public DataFormatException(string path, string message, Exception inner)
        : base($"{path}: {message}", inner)
    {
        Path = path;
    }

    /// <summary>The offending file.</summary>
    public string Path { get; }
}
