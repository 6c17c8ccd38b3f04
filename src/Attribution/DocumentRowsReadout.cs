using System.Numerics.Tensors;
using Attribution.Engine;

namespace Attribution.Attribution;

/// <summary>
/// Dense document rows read by one GEMM per block: block b (one model of an ensemble) stores every document's row
/// x_{b,i} of width k_b and, optionally, a weight w_{b,i}; a query prepared as one vector v_{q,b} per block scores
/// <c>s(q, i) = (1/B) Σ_b w_{b,i} ⟨v_{q,b}, x_{b,i}⟩</c>. The per-document part of TRAK (rows Φ L⁻ᵀ, weights Q) and of
/// the fitted compressions (rows = a document's basis coefficients). Prepared payload: <c>float[][]</c>, one
/// [q, k_b] row-major array per block. Pure compute.
/// </summary>
public sealed class DocumentRowsReadout : IDocumentReadout
{
    private readonly Block[] _blocks;
    private readonly int[]? _sourceIds;
    private readonly int _sourceCount;

    /// <summary>Rows [documents, <paramref name="blocks"/>[b].Width] per block; <paramref name="sourceIds"/> null = no per-source sums.</summary>
    public DocumentRowsReadout(IReadOnlyList<Block> blocks, int documents, int[]? sourceIds, int sourceCount)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentOutOfRangeException.ThrowIfNegative(documents);
        foreach (var b in blocks)
        {
            if (b.Width < 0 || b.Rows.Length != (long)documents * b.Width || (b.Weights is { } w && w.Length != documents))
            {
                throw new ArgumentException($"a block of {b.Rows.Length} floats of width {b.Width} with {b.Weights?.Length} weights does not hold {documents} documents.", nameof(blocks));
            }
        }

        if (sourceIds is not null && sourceIds.Length != documents)
        {
            throw new ArgumentException($"{sourceIds.Length} source ids for {documents} documents.", nameof(sourceIds));
        }

        _blocks = [.. blocks];
        Documents = documents;
        _sourceIds = sourceIds;
        _sourceCount = sourceCount;
    }

    /// <summary>One model's rows, their width and optional per-document weights.</summary>
    public sealed record Block(float[] Rows, int Width, float[]? Weights);

    /// <inheritdoc />
    public int Documents { get; }

    /// <summary>The blocks (one per model).</summary>
    public IReadOnlyList<Block> Blocks => _blocks;

    /// <inheritdoc />
    public long Bytes => _blocks.Sum(b => (b.Rows.LongLength + (b.Weights?.LongLength ?? 0)) * sizeof(float));

    /// <inheritdoc />
    public ScoreMatrix Score(PreparedQueries queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        int q = queries.Count, n = Documents;
        if (q == 0 || n == 0 || _blocks.All(b => b.Width == 0))
        {
            // Nothing to read (no rows, or rank-0 bases): zero scores.
            return new ScoreMatrix(new float[(long)q * n], q, n, _sourceIds, _sourceCount);
        }

        var vectors = queries.As<float[][]>(nameof(DocumentRowsReadout));
        if (vectors.Length != _blocks.Length || vectors.Where((v, b) => v.Length < (long)q * _blocks[b].Width).Any())
        {
            throw new ArgumentException($"{vectors.Length} prepared query blocks for a readout of {_blocks.Length} blocks of widths {string.Join(", ", _blocks.Select(b => b.Width))} and {q} queries.", nameof(queries));
        }

        // The first GEMM writes every score (β = 0), so the array is not zeroed first; unweighted blocks accumulate in
        // place (β = 1); only a weighted block needs its own product before the weights. The mean over blocks is one
        // pass, skipped for one block.
        var scores = GC.AllocateUninitializedArray<float>(checked((int)((long)q * n)));
        float[]? part = null;
        for (int b = 0; b < _blocks.Length; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var block = _blocks[b];
            if (block.Width == 0)
            {
                // A rank-0 block reads zero for every document.
                if (b == 0)
                {
                    Array.Clear(scores);
                }

                continue;
            }

            if (block.Weights is not { } w)
            {
                Blas.Gemm(false, true, q, n, block.Width, 1f, vectors[b], block.Rows, b == 0 ? 0f : 1f, scores);
                continue;
            }

            var into = b == 0 ? scores : part ??= GC.AllocateUninitializedArray<float>(scores.Length);
            Blas.Gemm(false, true, q, n, block.Width, 1f, vectors[b], block.Rows, 0f, into);
            for (int r = 0; r < q; r++)
            {
                var row = into.AsSpan(r * n, n);
                TensorPrimitives.Multiply(row, w, row);
            }

            if (b > 0)
            {
                TensorPrimitives.Add(scores, into, scores);
            }
        }

        if (_blocks.Length > 1)
        {
            TensorPrimitives.Multiply(scores, 1f / _blocks.Length, scores);
        }

        return new ScoreMatrix(scores, q, n, _sourceIds, _sourceCount);
    }

    /// <summary>The same readout over the documents repeated <paramref name="factor"/> times (document j·n + i = document i, with its source).</summary>
    public DocumentRowsReadout Repeated(int factor)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(factor, 1);
        return new DocumentRowsReadout(
            [.. _blocks.Select(b => new Block(Repeat(b.Rows, factor), b.Width, b.Weights is { } w ? Repeat(w, factor) : null))],
            Documents * factor, _sourceIds is { } s ? Repeat(s, factor) : null, _sourceCount);
    }

    private static T[] Repeat<T>(T[] values, int factor)
    {
        var copy = new T[values.LongLength * factor];
        for (int j = 0; j < factor; j++)
        {
            values.CopyTo(copy, values.LongLength * j);
        }

        return copy;
    }
}
