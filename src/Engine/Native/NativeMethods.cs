using System.Runtime.InteropServices;

namespace Attribution.Engine.Native;

/// <summary>P/Invoke into the system OpenBLAS (Debian <c>libopenblas0-pthread</c>). Loaded lazily; absent library means managed fallback.</summary>
internal static unsafe class NativeMethods
{
    private const string LibraryName = "libopenblas.so.0";

    internal const int RowMajor = 101;
    internal const int NoTrans = 111;
    internal const int Trans = 112;

    private static readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> s_sgemm;
    private static readonly delegate* unmanaged<int, void> s_setThreads;

    // LAPACK dsyevd (Fortran: every argument by reference, then the hidden lengths of the two character arguments).
    private static readonly delegate* unmanaged<byte*, byte*, int*, double*, int*, double*, double*, int*, int*, int*, int*, nuint, nuint, void> s_dsyevd;
    private static readonly delegate* unmanaged<byte*, int*, double*, int*, int*, nuint, void> s_dpotrf;
    private static readonly delegate* unmanaged<byte*, byte*, int*, double*, int*, int*, nuint, nuint, void> s_dtrtri;

    static NativeMethods()
    {
        if (Environment.GetEnvironmentVariable("PIPELINE_NO_BLAS") == "1")
        {
            return;
        }

        if (NativeLibrary.TryLoad(LibraryName, out var handle) || NativeLibrary.TryLoad("libopenblas.so", out handle))
        {
            if (NativeLibrary.TryGetExport(handle, "cblas_sgemm", out var sgemm))
            {
                s_sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
            }

            if (NativeLibrary.TryGetExport(handle, "dsyevd_", out var dsyevd))
            {
                s_dsyevd = (delegate* unmanaged<byte*, byte*, int*, double*, int*, double*, double*, int*, int*, int*, int*, nuint, nuint, void>)dsyevd;
            }

            if (NativeLibrary.TryGetExport(handle, "dpotrf_", out var dpotrf) && NativeLibrary.TryGetExport(handle, "dtrtri_", out var dtrtri))
            {
                s_dpotrf = (delegate* unmanaged<byte*, int*, double*, int*, int*, nuint, void>)dpotrf;
                s_dtrtri = (delegate* unmanaged<byte*, byte*, int*, double*, int*, int*, nuint, nuint, void>)dtrtri;
            }

            if (NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out var threads))
            {
                s_setThreads = (delegate* unmanaged<int, void>)threads;
            }
        }
    }

    internal static bool HasSgemm => s_sgemm != null;

    internal static void Sgemm(int transA, int transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
        => s_sgemm(RowMajor, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    internal static bool HasDsyevd => s_dsyevd != null;

    /// <summary>
    /// Eigen-decomposition of a symmetric n×n matrix in place (LAPACK dsyevd, divide and conquer): on return
    /// <paramref name="a"/> holds the eigenvectors, vector j in row j (column-major output read row-major), and
    /// <paramref name="w"/> the eigenvalues in ascending order. Returns LAPACK's info (0 = success).
    /// </summary>
    internal static int Dsyevd(double[] a, int n, double[] w)
    {
        byte jobz = (byte)'V', uplo = (byte)'U';
        int lda = n, info = 0, lwork = -1, liwork = -1;
        double workSize = 0;
        int iworkSize = 0;
        fixed (double* pa = a, pw = w)
        {
            s_dsyevd(&jobz, &uplo, &n, pa, &lda, pw, &workSize, &lwork, &iworkSize, &liwork, &info, 1, 1);
            if (info != 0)
            {
                return info;
            }

            lwork = (int)workSize;
            liwork = iworkSize;
            var work = new double[lwork];
            var iwork = new int[liwork];
            fixed (double* pwork = work)
            fixed (int* piwork = iwork)
            {
                s_dsyevd(&jobz, &uplo, &n, pa, &lda, pw, pwork, &lwork, piwork, &liwork, &info, 1, 1);
            }
        }

        return info;
    }

    internal static bool HasCholesky => s_dpotrf != null && s_dtrtri != null;

    /// <summary>
    /// LAPACK dpotrf on a row-major symmetric matrix: asks for the column-major upper factor U (A = UᵀU), which read
    /// row-major is the lower factor L. Only that triangle is written. Returns info (&gt; 0: not positive definite).
    /// </summary>
    internal static int Dpotrf(double[] a, int n)
    {
        byte uplo = (byte)'U';
        int lda = n, info = 0;
        fixed (double* pa = a)
        {
            s_dpotrf(&uplo, &n, pa, &lda, &info, 1);
        }

        return info;
    }

    /// <summary>LAPACK dtrtri on a row-major lower-triangular matrix (column-major upper), in place.</summary>
    internal static int Dtrtri(double[] a, int n)
    {
        byte uplo = (byte)'U', diag = (byte)'N';
        int lda = n, info = 0;
        fixed (double* pa = a)
        {
            s_dtrtri(&uplo, &diag, &n, pa, &lda, &info, 1, 1);
        }

        return info;
    }

    internal static void SetThreads(int threads)
    {
        if (s_setThreads != null)
        {
            s_setThreads(threads);
        }
    }
}
