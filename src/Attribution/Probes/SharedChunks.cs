using Attribution.Contracts;

namespace Attribution.Attribution.Probes;

/// <summary>
/// A method's shared state (<see cref="ProbeSetState.Shared"/>, e.g. STRIDE's operator tensors) as probe-sized chunks
/// and back. A chunk is a list of tensor pieces; a piece is a run of whole rows of one full-rank shared tensor, named as
/// the tensor. Pieces are packed in tensor order, at most <c>maxFloats</c> values per chunk, so one record stays under a
/// broker's message limit (Kafka's default is 1 MB: 131,072 f32 values take 512 KiB). Joining concatenates consecutive
/// pieces of the same name row-wise, in chunk order. Pure compute.
/// </summary>
public static class SharedChunks
{
    /// <summary>Default values per chunk: 131,072 (512 KiB in f32, 256 KiB in f16).</summary>
    public const int DefaultMaxFloats = 1 << 17;

    /// <summary>
    /// Splits <paramref name="shared"/> into chunks of at most <paramref name="maxFloats"/> values (each chunk: its pieces'
    /// layouts and their values concatenated). A tensor is split between rows only; a low-rank tensor or a single row
    /// larger than a chunk is refused.
    /// </summary>
    public static IReadOnlyList<(IReadOnlyList<ProbeTensor> Tensors, float[] Values)> Split(IReadOnlyList<StateTensor> shared, int maxFloats = DefaultMaxFloats)
    {
        ArgumentNullException.ThrowIfNull(shared);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFloats, 1);
        var chunks = new List<(IReadOnlyList<ProbeTensor>, float[])>();
        var tensors = new List<ProbeTensor>();
        var values = new List<float>();
        foreach (var t in shared)
        {
            var layout = t.Layout;
            if (t.Values.Length != layout.FactorCount)
            {
                throw new ArgumentException($"shared tensor '{layout.Name}' has {t.Values.Length} values; {layout.Rows}x{layout.Cols} at rank {layout.Rank} needs {layout.FactorCount}.", nameof(shared));
            }

            if (layout.Rank != 0 && layout.FactorCount > maxFloats)
            {
                throw new ArgumentException($"shared tensor '{layout.Name}' is low rank ({layout.Rank}) with {layout.FactorCount} values, above the {maxFloats} a chunk holds; only full-rank tensors are split.", nameof(shared));
            }

            if (layout.Rank == 0 && layout.Cols > maxFloats)
            {
                throw new ArgumentException($"shared tensor '{layout.Name}' has rows of {layout.Cols} values, above the {maxFloats} a chunk holds; raise the chunk size.", nameof(shared));
            }

            int rowFloats = layout.Rank == 0 ? layout.Cols : (int)layout.FactorCount;
            int rows = layout.Rank == 0 ? layout.Rows : 1;
            int row = 0;
            while (row < rows)
            {
                int room = maxFloats - values.Count;
                if (room < rowFloats)
                {
                    Flush();
                    continue;
                }

                int take = Math.Min(rows - row, room / rowFloats);
                tensors.Add(layout.Rank == 0 ? layout with { Rows = take } : layout);
                values.AddRange(t.Values.AsSpan(row * rowFloats, take * rowFloats));
                row += take;
            }
        }

        Flush();
        return chunks;

        void Flush()
        {
            if (tensors.Count > 0)
            {
                chunks.Add(([.. tensors], [.. values]));
                tensors.Clear();
                values.Clear();
            }
        }
    }

    /// <summary>
    /// The shared tensors of <paramref name="chunks"/> (in chunk order): consecutive pieces with the same name and
    /// columns are one tensor. Throws <see cref="ArgumentException"/> when a chunk's values do not fit its pieces.
    /// </summary>
    public static IReadOnlyList<StateTensor> Join(IReadOnlyList<(IReadOnlyList<ProbeTensor> Tensors, float[] Values)> chunks)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        var result = new List<StateTensor>();
        ProbeTensor? current = null;
        var values = new List<float>();
        for (int c = 0; c < chunks.Count; c++)
        {
            var (tensors, chunkValues) = chunks[c];
            long offset = 0;
            foreach (var piece in tensors)
            {
                if (offset + piece.FactorCount > chunkValues.Length)
                {
                    throw new ArgumentException($"shared chunk {c} holds {chunkValues.Length} values; its pieces need more (piece '{piece.Name}' {piece.Rows}x{piece.Cols}).", nameof(chunks));
                }

                var span = chunkValues.AsSpan((int)offset, (int)piece.FactorCount);
                offset += piece.FactorCount;
                if (current is { } t && piece.Rank == 0 && t.Rank == 0 && t.Name == piece.Name && t.Cols == piece.Cols)
                {
                    current = t with { Rows = t.Rows + piece.Rows };
                    values.AddRange(span);
                    continue;
                }

                Close();
                current = piece;
                values.AddRange(span);
            }

            if (offset != chunkValues.Length)
            {
                throw new ArgumentException($"shared chunk {c} holds {chunkValues.Length} values; its pieces take {offset}.", nameof(chunks));
            }
        }

        Close();
        return result;

        void Close()
        {
            if (current is { } t)
            {
                result.Add(new StateTensor(t, [.. values]));
                values.Clear();
                current = null;
            }
        }
    }
}
