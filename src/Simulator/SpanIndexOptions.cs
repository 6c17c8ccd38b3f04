namespace Attribution.Simulator;

/// <summary>
/// The exact-span index the Simulator builds for a language model's checkpoint (configuration section
/// <c>Simulator:Spans</c>): over the token ids of the documents trained on up to the checkpoint's step.
/// </summary>
public sealed class SpanIndexOptions
{
    /// <summary>Build and publish the index for language-model checkpoints (default on).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Where index files are written (a folder every Scorer can read, like the checkpoint store); unset: a
    /// <c>span-index</c> folder beside the checkpoint file.
    /// </summary>
    public string? Directory { get; set; }

    /// <summary>
    /// Largest index file published, in bytes (about 8 bytes per training token, plus 16 per document; default 1 GiB).
    /// A larger training set is not indexed: the checkpoint is dead-lettered with that reason (probes are unaffected).
    /// </summary>
    public long MaxBytes { get; set; } = 1L << 30;

    /// <summary>What is invalid, or null.</summary>
    public string? Validate() =>
        MaxBytes < 1024 ? $"Simulator:Spans:MaxBytes must be at least 1024 bytes, got {MaxBytes}."
        : Directory is { Length: 0 } ? "Simulator:Spans:Directory must not be empty (leave it unset to write beside the checkpoint)."
        : null;
}
