using Attribution.Engine;

namespace Attribution.Attribution.Kernels;

/// <summary>Small dense double-precision linear algebra: Cholesky, triangular solves, inverse, symmetric eigen (Jacobi), CG.</summary>
public static class Linalg
{
    /// <summary>In-place Cholesky of a symmetric positive-definite [n, n] matrix (lower factor; upper part zeroed).</summary>
    /// <exception cref="InvalidOperationException">The matrix is not positive definite.</exception>
    public static void Cholesky(double[] a, int n)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Length < (long)n * n)
        {
            throw new ArgumentException($"Cholesky: {a.Length} values for a {n}x{n} matrix.", nameof(a));
        }

        if (n > 64 && Blas.TryCholesky(a, n) is { } done)
        {
            // LAPACK: blocked, BLAS-3 (an 8192² kernel in seconds instead of minutes).
            if (!done)
            {
                throw new InvalidOperationException($"Cholesky: matrix is not positive definite (LAPACK dpotrf, n = {n}); increase the damping.");
            }

            return;
        }

        for (int j = 0; j < n; j++)
        {
            var rj = a.AsSpan(j * n, j);
            double d = a[j * n + j] - System.Numerics.Tensors.TensorPrimitives.Dot<double>(rj, rj);
            if (!(d > 0))
            {
                throw new InvalidOperationException($"Cholesky: matrix is not positive definite (pivot {j} = {d:G4}); increase the damping.");
            }

            double ljj = Math.Sqrt(d);
            a[j * n + j] = ljj;
            for (int i = j + 1; i < n; i++)
            {
                double s = a[i * n + j] - System.Numerics.Tensors.TensorPrimitives.Dot<double>(a.AsSpan(i * n, j), rj);
                a[i * n + j] = s / ljj;
            }

            for (int i = j + 1; i < n; i++)
            {
                a[j * n + i] = 0;
            }
        }
    }

    /// <summary>Solves L Lᵀ x = b in place given the lower Cholesky factor.</summary>
    public static void CholeskySolve(double[] l, int n, Span<double> b)
    {
        ArgumentNullException.ThrowIfNull(l);
        for (int i = 0; i < n; i++)
        {
            double s = b[i] - System.Numerics.Tensors.TensorPrimitives.Dot<double>(l.AsSpan(i * n, i), b[..i]);
            b[i] = s / l[i * n + i];
        }

        for (int i = n - 1; i >= 0; i--)
        {
            double s = b[i];
            for (int k = i + 1; k < n; k++)
            {
                s -= l[k * n + i] * b[k];
            }

            b[i] = s / l[i * n + i];
        }
    }

    /// <summary>Inverse of a lower-triangular [n, n] matrix (row axpys, vectorised).</summary>
    public static double[] LowerTriangularInverse(double[] l, int n)
    {
        ArgumentNullException.ThrowIfNull(l);
        if (n > 64 && Blas.TryLowerTriangularInverse(l, n) is { } inverse)
        {
            return inverse;
        }

        var x = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            var row = x.AsSpan(i * n, i + 1);
            row[i] = 1;
            for (int k = 0; k < i; k++)
            {
                double lik = l[i * n + k];
                if (lik != 0)
                {
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd<double>(x.AsSpan(k * n, k + 1), -lik, row[..(k + 1)], row[..(k + 1)]);
                }
            }

            System.Numerics.Tensors.TensorPrimitives.Multiply<double>(row, 1.0 / l[i * n + i], row);
        }

        return x;
    }

    /// <summary>Inverse of an SPD matrix from its lower Cholesky factor, [n, n] row-major.</summary>
    public static double[] CholeskyInverse(double[] l, int n)
    {
        var linv = LowerTriangularInverse(l, n);
        var inv = new double[n * n];
        for (int k = 0; k < n; k++)
        {
            var rk = linv.AsSpan(k * n, k + 1);
            for (int i = 0; i <= k; i++)
            {
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd<double>(rk[..(i + 1)], rk[i], inv.AsSpan(i * n, i + 1), inv.AsSpan(i * n, i + 1));
            }
        }

        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < i; j++)
            {
                inv[j * n + i] = inv[i * n + j];
            }
        }

        return inv;
    }

    /// <summary>Eigen-decomposition of a symmetric [n, n] matrix by cyclic Jacobi. Vectors are columns of the returned matrix.</summary>
    public static (double[] Values, double[] Vectors) SymmetricEigen(double[] a, int n)
    {
        ArgumentNullException.ThrowIfNull(a);
        // LAPACK (dsyevd) when the system OpenBLAS provides it: O(n³) with a small constant, seconds → milliseconds at n = 784.
        var lapack = (double[])a.Clone();
        var lapackValues = new double[n];
        if (n > 32 && Blas.TrySymmetricEigen(lapack, n, lapackValues))
        {
            // dsyevd gives vector j as row j; this method's contract is columns.
            var columns = new double[n * n];
            for (int j = 0; j < n; j++)
            {
                for (int k = 0; k < n; k++)
                {
                    columns[k * n + j] = lapack[j * n + k];
                }
            }

            return (lapackValues, columns);
        }

        var m = (double[])a.Clone();
        var v = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            v[i * n + i] = 1;
        }

        for (int sweep = 0; sweep < 60; sweep++)
        {
            double off = 0, diag = 0;
            for (int i = 0; i < n; i++)
            {
                diag += m[i * n + i] * m[i * n + i];
                for (int j = i + 1; j < n; j++)
                {
                    off += m[i * n + j] * m[i * n + j];
                }
            }

            if (off <= 1e-30 * Math.Max(diag, 1e-300))
            {
                break;
            }

            for (int p = 0; p < n; p++)
            {
                for (int q = p + 1; q < n; q++)
                {
                    double apq = m[p * n + q];
                    if (apq == 0)
                    {
                        continue;
                    }

                    double theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0)
                    {
                        t = 1;
                    }

                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < n; k++)
                    {
                        double mkp = m[k * n + p], mkq = m[k * n + q];
                        m[k * n + p] = c * mkp - s * mkq;
                        m[k * n + q] = s * mkp + c * mkq;
                    }

                    for (int k = 0; k < n; k++)
                    {
                        double mpk = m[p * n + k], mqk = m[q * n + k];
                        m[p * n + k] = c * mpk - s * mqk;
                        m[q * n + k] = s * mpk + c * mqk;
                    }

                    for (int k = 0; k < n; k++)
                    {
                        double vkp = v[k * n + p], vkq = v[k * n + q];
                        v[k * n + p] = c * vkp - s * vkq;
                        v[k * n + q] = s * vkp + c * vkq;
                    }
                }
            }
        }

        var values = new double[n];
        for (int i = 0; i < n; i++)
        {
            values[i] = m[i * n + i];
        }

        return (values, v);
    }

    /// <summary>
    /// Conjugate gradient for <c>A x = b</c> with A given as a product; stops at relative residual
    /// <paramref name="tolerance"/> or after <paramref name="maxIterations"/>. Returns the iterations used.
    /// </summary>
    public static int ConjugateGradient(Action<double[], double[]> multiply, ReadOnlySpan<double> b, Span<double> x, int maxIterations, double tolerance)
    {
        ArgumentNullException.ThrowIfNull(multiply);
        int n = b.Length;
        x.Clear();
        var r = b.ToArray();
        var p = b.ToArray();
        var ap = new double[n];
        double rr = Dot(r, r), b2 = rr;
        if (b2 == 0)
        {
            return 0;
        }

        for (int it = 0; it < maxIterations; it++)
        {
            multiply(p, ap);
            double pap = Dot(p, ap);
            if (!(pap > 0))
            {
                return it;
            }

            double alpha = rr / pap;
            for (int i = 0; i < n; i++)
            {
                x[i] += alpha * p[i];
                r[i] -= alpha * ap[i];
            }

            double rrNew = Dot(r, r);
            if (rrNew <= tolerance * tolerance * b2)
            {
                return it + 1;
            }

            double beta = rrNew / rr;
            rr = rrNew;
            for (int i = 0; i < n; i++)
            {
                p[i] = r[i] + beta * p[i];
            }
        }

        return maxIterations;
    }

    private static double Dot(double[] a, double[] b) => System.Numerics.Tensors.TensorPrimitives.Dot<double>(a, b);
}
