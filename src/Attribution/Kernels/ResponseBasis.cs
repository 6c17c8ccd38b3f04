using Attribution.Engine;

namespace Attribution.Attribution.Kernels;

/// <summary>
/// A fitted low-rank basis of a set of row vectors (PCA without centring): the top right singular vectors of the rows
/// matrix R [n, m], from the eigen-decomposition of its Gram matrix R Rᵀ [n, n] (LAPACK through
/// <see cref="Linalg.SymmetricEigen"/>), then re-orthonormalised once (Cholesky QR) against float rounding. A vector v is
/// compressed to its <see cref="Rank"/> coefficients B v, so <c>⟨B a, B b⟩ = ⟨a, BᵀB b⟩</c>: exact for every b in the
/// span of the basis (every fitted row when the rank asked for is at least rank(R)), and in general off by at most
/// ‖a‖·‖b − BᵀB b‖ (Cauchy–Schwarz), where ‖b − BᵀB b‖² = ‖b‖² − ‖B b‖². Pure compute: no files, no clocks.
/// </summary>
public sealed class ResponseBasis
{
    /// <summary>Eigenvalues below this fraction of the largest are rounding of the float Gram matrix, not directions.</summary>
    public const double RelativeFloor = 1e-6;

    private readonly float[] _basis;

    private ResponseBasis(float[] basis, int rank, int columns, double[] spectrum)
    {
        _basis = basis;
        Rank = rank;
        Columns = columns;
        Spectrum = spectrum;
    }

    /// <summary>Kept directions k (at most the dimension asked for, the row count and the numerical rank).</summary>
    public int Rank { get; }

    /// <summary>Length m of the vectors the basis compresses.</summary>
    public int Columns { get; }

    /// <summary>Every eigenvalue of R Rᵀ (squared singular values of the fitted rows), largest first, clamped at 0.</summary>
    public IReadOnlyList<double> Spectrum { get; }

    /// <summary>Bytes of the basis [Rank, Columns].</summary>
    public long Bytes => _basis.LongLength * sizeof(float);

    /// <summary>Share of the fitted rows' energy Σ‖r‖² that the first <paramref name="k"/> directions keep (the spectrum's partial sum).</summary>
    public double EnergyKeptAt(int k)
    {
        double total = 0, kept = 0;
        for (int i = 0; i < Spectrum.Count; i++)
        {
            total += Spectrum[i];
            if (i < k)
            {
                kept += Spectrum[i];
            }
        }

        return total > 0 ? kept / total : 1;
    }

    /// <summary>Share of the fitted rows' energy the basis keeps.</summary>
    public double EnergyKept => EnergyKeptAt(Rank);

    /// <summary>
    /// Fits the top-<paramref name="dimension"/> basis of <paramref name="count"/> rows of <paramref name="columns"/>
    /// floats (row-major in <paramref name="rows"/>). Costs count²·columns for the Gram matrix, count³ for its
    /// eigen-decomposition and 2·k·count·columns + k²·columns for the basis.
    /// </summary>
    public static ResponseBasis Fit(ReadOnlySpan<float> rows, int count, int columns, int dimension)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        if (rows.Length < (long)count * columns)
        {
            throw new ArgumentException($"rows holds {rows.Length} floats; {count} rows of {columns} need {(long)count * columns}.", nameof(rows));
        }

        var gram = new float[(long)count * count];
        Blas.Gemm(false, true, count, count, columns, 1f, rows, rows, 0f, gram);
        var symmetric = new double[(long)count * count];
        for (int i = 0; i < count; i++)
        {
            for (int j = 0; j < count; j++)
            {
                symmetric[(i * count) + j] = 0.5 * ((double)gram[(i * count) + j] + gram[(j * count) + i]);
            }
        }

        var (values, vectors) = Linalg.SymmetricEigen(symmetric, count);
        var order = Enumerable.Range(0, count).OrderByDescending(i => values[i]).ToArray();
        var spectrum = order.Select(i => Math.Max(0, values[i])).ToArray();
        double floor = RelativeFloor * spectrum[0];
        int rank = 0;
        while (rank < Math.Min(dimension, count) && spectrum[rank] > floor && spectrum[rank] > 0)
        {
            rank++;
        }

        var basis = new float[(long)rank * columns];
        if (rank == 0)
        {
            return new ResponseBasis(basis, 0, columns, spectrum);
        }

        // B = Λ^(-1/2) Vᵀ R: row i is the i-th right singular vector of R.
        var weights = new float[(long)rank * count];
        for (int i = 0; i < rank; i++)
        {
            double scale = 1 / Math.Sqrt(spectrum[i]);
            for (int j = 0; j < count; j++)
            {
                weights[((long)i * count) + j] = (float)(vectors[((long)j * count) + order[i]] * scale);
            }
        }

        Blas.Gemm(false, false, rank, columns, count, 1f, weights, rows, 0f, basis);
        Orthonormalise(basis, rank, columns);
        return new ResponseBasis(basis, rank, columns, spectrum);
    }

    /// <summary>The coefficients B v [count, Rank] of <paramref name="count"/> vectors of <see cref="Columns"/> floats.</summary>
    public void Project(ReadOnlySpan<float> vectors, int count, Span<float> coefficients)
    {
        if (vectors.Length < (long)count * Columns || coefficients.Length < (long)count * Rank)
        {
            throw new ArgumentException($"{count} vectors need {(long)count * Columns} floats in and {(long)count * Rank} out; got {vectors.Length} and {coefficients.Length}.");
        }

        if (count == 0 || Rank == 0)
        {
            return;
        }

        Blas.Gemm(false, true, count, Rank, Columns, 1f, vectors, _basis, 0f, coefficients);
    }

    // Cholesky QR: with M = B Bᵀ = L Lᵀ, the rows of L⁻¹ B are orthonormal and span the same space.
    private static void Orthonormalise(float[] basis, int rank, int columns)
    {
        var m = new float[(long)rank * rank];
        Blas.Gemm(false, true, rank, rank, columns, 1f, basis, basis, 0f, m);
        var md = new double[(long)rank * rank];
        for (int i = 0; i < rank; i++)
        {
            for (int j = 0; j < rank; j++)
            {
                md[(i * rank) + j] = 0.5 * ((double)m[(i * rank) + j] + m[(j * rank) + i]);
            }
        }

        Linalg.Cholesky(md, rank);
        var inverse = Linalg.LowerTriangularInverse(md, rank);
        var l = new float[(long)rank * rank];
        for (int i = 0; i < rank; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                l[(i * rank) + j] = (float)inverse[(i * rank) + j];
            }
        }

        var copy = (float[])basis.Clone();
        Blas.Gemm(false, false, rank, columns, rank, 1f, l, copy, 0f, basis);
    }
}
