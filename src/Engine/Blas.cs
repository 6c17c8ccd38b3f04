using System.Diagnostics.CodeAnalysis;
using System.Numerics.Tensors;
using Attribution.Engine.Native;

namespace Attribution.Engine;

/// <summary>
/// Row-major single-precision GEMM: <c>C = alpha * op(A) * op(B) + beta * C</c>, through the system OpenBLAS when present
/// and a managed, blocked fallback otherwise. Every matrix is a dense row-major span; the validation prologue checks
/// that each span holds the rows and columns the shapes promise before any native code touches it.
/// </summary>
public static class Blas
{
    /// <summary>True when the system OpenBLAS was found and is used.</summary>
    public static bool IsNative => NativeMethods.HasSgemm;

    /// <summary>Set the number of OpenBLAS threads (no-op for the managed fallback).</summary>
    public static void SetThreads(int threads) => NativeMethods.SetThreads(threads);

    /// <summary>
    /// Lower Cholesky factor of a row-major SPD matrix in place through the system LAPACK (dpotrf) when it is there.
    /// Returns null when LAPACK is absent (nothing touched), true on success (strict upper triangle zeroed), false
    /// when the matrix is not positive definite.
    /// </summary>
    public static bool? TryCholesky(double[] a, int n)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (!NativeMethods.HasCholesky || a.Length < (long)n * n)
        {
            return null;
        }

        if (NativeMethods.Dpotrf(a, n) != 0)
        {
            return false;
        }

        ZeroUpper(a, n);
        return true;
    }

    /// <summary>Inverse of a row-major lower-triangular matrix through LAPACK (dtrtri); null when LAPACK is absent.</summary>
    public static double[]? TryLowerTriangularInverse(double[] l, int n)
    {
        ArgumentNullException.ThrowIfNull(l);
        if (!NativeMethods.HasCholesky || l.Length < (long)n * n)
        {
            return null;
        }

        var x = l.AsSpan(0, n * n).ToArray();
        ZeroUpper(x, n);
        return NativeMethods.Dtrtri(x, n) == 0 ? x : null;
    }

    private static void ZeroUpper(double[] a, int n)
    {
        for (int i = 0; i < n; i++)
        {
            a.AsSpan(i * n + i + 1, n - i - 1).Clear();
        }
    }

    /// <summary>
    /// Symmetric eigen-decomposition through the system LAPACK (OpenBLAS's dsyevd) when it is there: returns false
    /// (and leaves the inputs alone) otherwise. On success <paramref name="a"/> [n, n] holds eigenvector j in row j and
    /// <paramref name="values"/> the eigenvalues, ascending.
    /// </summary>
    public static bool TrySymmetricEigen(double[] a, int n, double[] values)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(values);
        if (!NativeMethods.HasDsyevd || a.Length < (long)n * n || values.Length < n)
        {
            return false;
        }

        var copy = (double[])a.Clone();
        if (NativeMethods.Dsyevd(copy, n, values) != 0)
        {
            return false;
        }

        copy.AsSpan(0, n * n).CopyTo(a);
        return true;
    }

    /// <summary>
    /// <c>C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C</c>. With <paramref name="transA"/> false A is stored [m,k],
    /// otherwise [k,m]; likewise B is [k,n] or [n,k]. C is [m,n]. All row-major and contiguous.
    /// </summary>
    public static unsafe void Gemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, ReadOnlySpan<float> b, float beta, Span<float> c)
    {
        if (m < 0 || n < 0 || k < 0)
        {
            ThrowShape(m, n, k);
        }

        if (a.Length < (long)m * k || b.Length < (long)k * n || c.Length < (long)m * n)
        {
            ThrowLength(m, n, k, a.Length, b.Length, c.Length);
        }

        if (m == 0 || n == 0)
        {
            return;
        }

        if (k == 0)
        {
            Scale(c[..(m * n)], beta);
            return;
        }

        if (NativeMethods.HasSgemm)
        {
            fixed (float* pa = a)
            fixed (float* pb = b)
            fixed (float* pc = c)
            {
                NativeMethods.Sgemm(transA ? NativeMethods.Trans : NativeMethods.NoTrans, transB ? NativeMethods.Trans : NativeMethods.NoTrans,
                    m, n, k, alpha, pa, transA ? m : k, pb, transB ? k : n, beta, pc, n);
            }

            return;
        }

        ManagedGemm(transA, transB, m, n, k, alpha, a, b, beta, c);
    }

    /// <summary>Managed GEMM, public so tests can compare it against OpenBLAS.</summary>
    public static void ManagedGemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, ReadOnlySpan<float> b, float beta, Span<float> c)
    {
        if (a.Length < (long)m * k || b.Length < (long)k * n || c.Length < (long)m * n)
        {
            ThrowLength(m, n, k, a.Length, b.Length, c.Length);
        }

        Scale(c[..(m * n)], beta);
        // Make B row-contiguous along n (i.e. [k,n]) so the inner loop is an axpy over a row of C.
        float[]? bt = null;
        ReadOnlySpan<float> bkn = b;
        if (transB)
        {
            bt = new float[k * n];
            for (int j = 0; j < n; j++)
            {
                for (int p = 0; p < k; p++)
                {
                    bt[p * n + j] = b[j * k + p];
                }
            }

            bkn = bt;
        }

        for (int i = 0; i < m; i++)
        {
            var crow = c.Slice(i * n, n);
            for (int p = 0; p < k; p++)
            {
                float aip = transA ? a[p * m + i] : a[i * k + p];
                if (aip == 0f)
                {
                    continue;
                }

                TensorPrimitives.MultiplyAdd(bkn.Slice(p * n, n), alpha * aip, crow, crow);
            }
        }
    }

    private static void Scale(Span<float> c, float beta)
    {
        if (beta == 0f)
        {
            c.Clear();
        }
        else if (beta != 1f)
        {
            TensorPrimitives.Multiply(c, beta, c);
        }
    }

    [DoesNotReturn]
    private static void ThrowShape(int m, int n, int k) =>
        throw new ArgumentOutOfRangeException(nameof(m), $"GEMM dimensions must be non-negative (m={m}, n={n}, k={k}).");

    [DoesNotReturn]
    private static void ThrowLength(int m, int n, int k, int a, int b, int c) =>
        throw new ArgumentException($"GEMM operands too short for m={m}, n={n}, k={k}: A has {a} (needs {(long)m * k}), B has {b} (needs {(long)k * n}), C has {c} (needs {(long)m * n}).");
}
