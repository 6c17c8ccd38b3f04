using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// A random projection of p-dimensional gradients (or responses) to k dimensions, drawn from a seed: TRAK's feature
/// map and the sketch of forward-only's sketched readout (<see cref="SketchedReadoutMethod"/>). Gaussian: a dense
/// N(0, 1/k) matrix [p, k] held in memory, one GEMM per block of rows. SJLT: each coordinate hashed to s buckets with
/// random signs, scale 1/√s (p·s ints and floats; O(nonzeros · s) per row).
/// </summary>
public sealed class RandomProjection
{
    private readonly float[]? _matrix;
    private readonly int[]? _buckets;
    private readonly float[]? _signs;

    /// <summary>Draws the projection of <paramref name="parameters"/> coordinates to <paramref name="dimension"/>.</summary>
    public RandomProjection(TrakProjector kind, int parameters, int dimension, int nonzeros, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parameters, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(nonzeros, 1);
        Kind = kind;
        Parameters = parameters;
        Dimension = dimension;
        Nonzeros = nonzeros;
        var rng = new Rng(seed);
        if (kind == TrakProjector.Gaussian)
        {
            _matrix = new float[(long)parameters * dimension];
            rng.FillNormal(_matrix, 0f, 1f / MathF.Sqrt(dimension));
            return;
        }

        _buckets = new int[parameters * nonzeros];
        _signs = new float[parameters * nonzeros];
        float scale = 1f / MathF.Sqrt(nonzeros);
        for (int i = 0; i < parameters * nonzeros; i++)
        {
            _buckets[i] = rng.NextInt(dimension);
            _signs[i] = (rng.NextUInt64() & 1) == 0 ? scale : -scale;
        }
    }

    /// <summary>Projector kind.</summary>
    public TrakProjector Kind { get; }

    /// <summary>Input dimension p.</summary>
    public int Parameters { get; }

    /// <summary>Output dimension k.</summary>
    public int Dimension { get; }

    /// <summary>Nonzeros per coordinate (SJLT).</summary>
    public int Nonzeros { get; }

    /// <summary>Bytes the projection holds.</summary>
    public long Bytes => ((_matrix?.LongLength ?? 0) + (_buckets?.LongLength ?? 0) + (_signs?.LongLength ?? 0)) * sizeof(float);

    /// <summary><paramref name="destination"/> [count, k] = <paramref name="rows"/> [count, p] projected.</summary>
    public void Project(ReadOnlySpan<float> rows, int count, Span<float> destination)
    {
        int p = Parameters, k = Dimension;
        if (rows.Length < (long)count * p || destination.Length < (long)count * k)
        {
            throw new ArgumentException($"Project: {count} rows of {p} into {count} × {k} need {(long)count * p} and {(long)count * k} values.");
        }

        if (_matrix is not null)
        {
            Blas.Gemm(false, false, count, k, p, 1f, rows[..(count * p)], _matrix, 0f, destination[..(count * k)]);
            return;
        }

        destination[..(count * k)].Clear();
        int s = Nonzeros;
        for (int i = 0; i < count; i++)
        {
            var row = rows.Slice(i * p, p);
            var dst = destination.Slice(i * k, k);
            for (int j = 0; j < p; j++)
            {
                float v = row[j];
                if (v == 0f)
                {
                    continue;
                }

                for (int t = 0; t < s; t++)
                {
                    dst[_buckets![j * s + t]] += _signs![j * s + t] * v;
                }
            }
        }
    }

    /// <summary>
    /// The rows of a factored gradient set projected, [rows, k], materialising dense gradients in chunks; coordinates
    /// where <paramref name="keep"/> is false are zeroed first (null keeps all).
    /// </summary>
    public float[] Project(GradientFactors gradients, CancellationToken cancellationToken, bool[]? keep = null)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        int p = gradients.ParameterCount, k = Dimension, rows = gradients.Rows;
        if (p != Parameters)
        {
            throw new ArgumentException($"the gradients have {p} parameters; this projection takes {Parameters}.", nameof(gradients));
        }

        var phi = new float[(long)rows * k];
        const int chunk = 128;
        var dense = new float[(long)Math.Min(chunk, Math.Max(rows, 1)) * p];
        for (int start = 0; start < rows; start += chunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(chunk, rows - start);
            gradients.Dense(start, count, dense);
            if (keep is not null)
            {
                for (int i = 0; i < count; i++)
                {
                    var row = dense.AsSpan(i * p, p);
                    for (int j = 0; j < p; j++)
                    {
                        if (!keep[j])
                        {
                            row[j] = 0f;
                        }
                    }
                }
            }

            Project(dense, count, phi.AsSpan(start * k, count * k));
        }

        return phi;
    }
}
