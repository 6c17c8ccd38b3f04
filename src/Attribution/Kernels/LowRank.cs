using Attribution.Engine;

namespace Attribution.Attribution.Kernels;

/// <summary>
/// Truncated SVD of small dense matrices by a randomized range finder (one power iteration), with the small
/// eigenproblem solved by cyclic Jacobi in double. Used to store per-layer responses as <c>U·Vt</c>.
/// </summary>
public static class LowRank
{
    /// <summary>
    /// Factorises <paramref name="m"/> [rows, cols] ≈ U [rows, rank] · Vt [rank, cols], U with orthonormal columns.
    /// <paramref name="omega"/> is a Gaussian test matrix [cols, rank + oversample] shared across calls.
    /// </summary>
    public static void Factorize(ReadOnlySpan<float> m, int rows, int cols, int rank, ReadOnlySpan<float> omega, int sketch,
        Span<float> u, Span<float> vt)
    {
        if (rank < 1 || sketch < rank || m.Length < rows * cols || omega.Length < cols * sketch || u.Length < rows * rank || vt.Length < rank * cols)
        {
            throw new ArgumentException($"LowRank.Factorize: rank {rank}, sketch {sketch} for a {rows}x{cols} matrix; buffer sizes do not match.");
        }

        int l = Math.Min(sketch, rows);
        var y = new float[rows * sketch];
        Blas.Gemm(false, false, rows, sketch, cols, 1f, m, omega, 0f, y);
        // One power iteration: Y = M (Mᵀ Y) sharpens the spectrum.
        var t = new float[cols * sketch];
        Orthonormalize(y, rows, sketch);
        Blas.Gemm(true, false, cols, sketch, rows, 1f, m, y, 0f, t);
        Blas.Gemm(false, false, rows, sketch, cols, 1f, m, t, 0f, y);
        int q = Orthonormalize(y, rows, sketch);
        l = Math.Min(l, q);
        // B = Qᵀ M [sketch, cols]; eigen-decompose B Bᵀ.
        var b = new float[sketch * cols];
        Blas.Gemm(true, false, sketch, cols, rows, 1f, y, m, 0f, b);
        var g = new double[sketch * sketch];
        for (int i = 0; i < sketch; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double s = System.Numerics.Tensors.TensorPrimitives.Dot(b.AsSpan(i * cols, cols), b.AsSpan(j * cols, cols));
                g[i * sketch + j] = s;
                g[j * sketch + i] = s;
            }
        }

        var (values, vectors) = Linalg.SymmetricEigen(g, sketch);
        var order = Enumerable.Range(0, sketch).OrderByDescending(i => values[i]).ToArray();
        // U = Q W_r ; Vt = W_rᵀ B.
        var wr = new float[sketch * rank];
        for (int j = 0; j < rank; j++)
        {
            for (int i = 0; i < sketch; i++)
            {
                wr[i * rank + j] = j < l ? (float)vectors[i * sketch + order[j]] : 0f;
            }
        }

        Blas.Gemm(false, false, rows, rank, sketch, 1f, y, wr, 0f, u);
        Blas.Gemm(true, false, rank, cols, sketch, 1f, wr, b, 0f, vt);
    }

    /// <summary>Modified Gram–Schmidt on the columns of a [rows, cols] matrix in double; zeroes dependent columns. Returns the rank found.</summary>
    private static int Orthonormalize(Span<float> a, int rows, int cols)
    {
        var col = new double[rows];
        var basis = new List<double[]>();
        for (int c = 0; c < cols; c++)
        {
            for (int r = 0; r < rows; r++)
            {
                col[r] = a[r * cols + c];
            }

            double before = Math.Sqrt(col.Sum(v => v * v));
            for (int pass = 0; pass < 2; pass++)
            {
                foreach (var q in basis)
                {
                    double dot = 0;
                    for (int r = 0; r < rows; r++)
                    {
                        dot += q[r] * col[r];
                    }

                    for (int r = 0; r < rows; r++)
                    {
                        col[r] -= dot * q[r];
                    }
                }
            }

            double norm = Math.Sqrt(col.Sum(v => v * v));
            bool keep = norm > 1e-10 * Math.Max(before, 1e-30) && norm > 0 && basis.Count < rows;
            var qn = new double[rows];
            for (int r = 0; r < rows; r++)
            {
                qn[r] = keep ? col[r] / norm : 0;
                a[r * cols + c] = (float)qn[r];
            }

            if (keep)
            {
                basis.Add(qn);
            }
        }

        return basis.Count;
    }
}
