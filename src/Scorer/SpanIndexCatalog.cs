using System.Collections.Concurrent;
using System.Security.Cryptography;
using Attribution.Attribution.Contamination;
using Attribution.Attribution.Spans;
using Attribution.Contracts;
using Attribution.Engine.Data;

namespace Attribution.Scorer;

/// <summary>A published span index that the Scorer cannot use (missing, changed, oversized, malformed); dead-lettered with this message.</summary>
public sealed class SpanIndexLoadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A loaded exact-span index, as the contamination policy's stage one (<see cref="CorpusMatcher"/>: the exact spans and
/// the normalised-text index derived from the same documents), with the model version it belongs to.
/// </summary>
/// <param name="Version">"run@step" of the checkpoint whose training set it indexes.</param>
/// <param name="Matcher">The index and its normalised-text index.</param>
public sealed record LoadedSpanIndex(string Version, CorpusMatcher Matcher)
{
    /// <summary>The exact-span index.</summary>
    public SpanIndex Index => Matcher.Index;

    /// <summary>Tokenizer name: a query is matched only when its model reads the same one.</summary>
    public string Tokenizer => Matcher.Tokenizer.Name;
}

/// <summary>
/// The span indexes the Scorer has loaded, by model version (the live model's version picks its index). Loading reads
/// the referenced file (size checked against the limit before reading), verifies its sha256 and the index's own
/// invariants (<see cref="SpanIndexFormat.Read"/>).
/// </summary>
public sealed class SpanIndexCatalog
{
    private readonly ConcurrentDictionary<string, LoadedSpanIndex> _byVersion = new(StringComparer.Ordinal);

    /// <summary>Indexes loaded so far.</summary>
    public int Count => _byVersion.Count;

    /// <summary>The index of model <paramref name="version"/>, or null.</summary>
    public LoadedSpanIndex? For(string version) => _byVersion.GetValueOrDefault(version);

    /// <summary>Adds (or replaces) the index of its version.</summary>
    public void Add(LoadedSpanIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        _byVersion[index.Version] = index;
    }

    /// <summary>Loads the index <paramref name="reference"/> points at.</summary>
    /// <exception cref="SpanIndexLoadException">What is wrong with it and how to fix it.</exception>
    public static LoadedSpanIndex Load(SpanIndexPublished reference, long maxBytes)
    {
        ArgumentNullException.ThrowIfNull(reference);
        var where = $"span index of {reference.RunId}@{reference.Step}";
        if (!Uri.TryCreate(reference.Uri, UriKind.Absolute, out var uri) || !uri.IsFile)
        {
            throw new SpanIndexLoadException($"{where}: '{reference.Uri}' is not a file:// uri; the Scorer reads span indexes from a file system shared with the Simulator.");
        }

        var path = uri.LocalPath;
        long size;
        try
        {
            size = new FileInfo(path).Length;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException)
        {
            throw new SpanIndexLoadException($"{where}: cannot read {path} ({e.GetType().Name}); the Scorer must see the Simulator's span-index folder at the same path (Simulator:Spans:Directory).", e);
        }

        if (Math.Max(size, reference.Bytes) > maxBytes)
        {
            throw new SpanIndexLoadException($"{where}: {Math.Max(size, reference.Bytes):N0} bytes, over Scorer:Contamination:MaxSpanIndexBytes ({maxBytes:N0}); raise the limit where the Scorer has the memory, or index less (Simulator:Spans:MaxBytes).");
        }

        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException)
        {
            throw new SpanIndexLoadException($"{where}: cannot read {path} ({e.GetType().Name}).", e);
        }

        var actual = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (!string.Equals(actual, reference.Checksum, StringComparison.OrdinalIgnoreCase))
        {
            throw new SpanIndexLoadException($"{where}: {path} has checksum {actual} but its reference says {reference.Checksum}; the file changed after it was published. Re-publish the checkpoint (the Simulator rebuilds the index).");
        }

        try
        {
            var index = SpanIndexFormat.Read(bytes);
            if (index.DocumentCount != reference.Documents || index.TokenCount != reference.Tokens)
            {
                throw new SpanIndexLoadException($"{where}: the file holds {index.DocumentCount} documents and {index.TokenCount} tokens; its reference says {reference.Documents} and {reference.Tokens}.");
            }

            return new LoadedSpanIndex($"{reference.RunId}@{reference.Step}", new CorpusMatcher(index, Tokenizers.Create(reference.Tokenizer)));
        }
        catch (SpanIndexFormatException e)
        {
            throw new SpanIndexLoadException($"{where}: {path} is not a valid span index: {e.Message}", e);
        }
        catch (ArgumentException e)
        {
            throw new SpanIndexLoadException($"{where}: its documents cannot be read as text of the tokenizer '{reference.Tokenizer}' ({e.Message}); re-publish the checkpoint with the tokenizer its recipe names.", e);
        }
    }
}
