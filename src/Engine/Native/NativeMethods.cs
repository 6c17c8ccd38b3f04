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

            if (NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out var threads))
            {
                s_setThreads = (delegate* unmanaged<int, void>)threads;
            }
        }
    }

    internal static bool HasSgemm => s_sgemm != null;

    internal static void Sgemm(int transA, int transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
        => s_sgemm(RowMajor, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    internal static void SetThreads(int threads)
    {
        if (s_setThreads != null)
        {
            s_setThreads(threads);
        }
    }
}
