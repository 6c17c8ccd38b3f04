using System.Numerics.Tensors;
using Kernels = Attribution.Engine.Tensors.Kernels;
using Tensor = Attribution.Engine.Tensors.Tensor;

namespace Attribution.Engine.Autograd;

public sealed partial class Graph
{
    /// <summary>
    /// Matrix product. <paramref name="a"/> is [..., M, K]. When <paramref name="b"/> is [K, N] the leading dimensions of a
    /// are folded into rows (one GEMM); when b is [..., K, N] with the same leading dimensions as a, it is a batched
    /// product (one GEMM per batch entry). The result is [..., M, N].
    /// </summary>
    public Tensor MatMul(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Rank < 2 || b.Rank < 2 || a.Dim(-1) != b.Dim(-2))
        {
            ThrowShapes("MatMul", a, b, "need a [..., M, K] and b [K, N] or [..., K, N]");
        }

        bool batched = b.Rank > 2;
        if (batched && (a.Rank != b.Rank || !a.ShapeArray.AsSpan(0, a.Rank - 2).SequenceEqual(b.ShapeArray.AsSpan(0, b.Rank - 2))))
        {
            ThrowShapes("MatMul", a, b, "batched operands need equal leading dimensions");
        }

        int k = a.Dim(-1), n = b.Dim(-1);
        int m = batched ? a.Dim(-2) : CountRows(a);
        int batches = 1;
        for (int i = 0; batched && i < a.Rank - 2; i++)
        {
            batches *= a.ShapeArray[i];
        }

        int[] shape = [.. a.ShapeArray];
        shape[^1] = n;
        var y = NewTensor(shape, NeedsGrad(a, b), a.Tangent is not null || b.Tangent is not null);
        int sa = m * k, sb = batched ? k * n : 0, sy = m * n;
        for (int i = 0; i < batches; i++)
        {
            Blas.Gemm(false, false, m, n, k, 1f, a.Data.AsSpan(i * sa, sa), b.Data.AsSpan(i * sb, k * n), 0f, y.Data.AsSpan(i * sy, sy));
        }

        if (y.Tangent is not null)
        {
            // (AB)' = A'B + AB'
            for (int i = 0; i < batches; i++)
            {
                var yt = y.Tangent.AsSpan(i * sy, sy);
                float beta = 0f;
                if (a.Tangent is not null)
                {
                    Blas.Gemm(false, false, m, n, k, 1f, a.Tangent.AsSpan(i * sa, sa), b.Data.AsSpan(i * sb, k * n), 0f, yt);
                    beta = 1f;
                }

                if (b.Tangent is not null)
                {
                    Blas.Gemm(false, false, m, n, k, 1f, a.Data.AsSpan(i * sa, sa), b.Tangent.AsSpan(i * sb, k * n), beta, yt);
                }
            }
        }

        if (y.Grad is not null)
        {
            Record(() =>
            {
                for (int i = 0; i < batches; i++)
                {
                    var gy = y.Grad.AsSpan(i * sy, sy);
                    if (a.Grad is not null)
                    {
                        Blas.Gemm(false, true, m, k, n, 1f, gy, b.Data.AsSpan(i * sb, k * n), 1f, a.Grad.AsSpan(i * sa, sa));
                    }

                    if (b.Grad is not null)
                    {
                        Blas.Gemm(true, false, k, n, m, 1f, a.Data.AsSpan(i * sa, sa), gy, 1f, b.Grad.AsSpan(i * sb, k * n));
                    }
                }
            });
        }

        return y;
    }

    /// <summary>
    /// Linear layer <c>y = x Wᵀ + b</c> with <paramref name="x"/> [..., in], <paramref name="weight"/> [out, in] and optional
    /// <paramref name="bias"/> [out]; y is [..., out]. With a <paramref name="capture"/>, the input rows are copied into it
    /// now and the output gradients during backward (per-example gradients in factored form).
    /// </summary>
    public Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null, LinearCapture? capture = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Rank != 2 || x.Rank < 1 || x.Dim(-1) != weight.Dim(1))
        {
            ThrowShapes("Linear", x, weight, "need x [..., in] and weight [out, in]");
        }

        int inF = weight.Dim(1), outF = weight.Dim(0);
        if (bias is not null && (bias.Rank != 1 || bias.Length != outF))
        {
            ThrowShapes("Linear", weight, bias, "bias must be [out]");
        }

        int rows = CountRows(x);
        int[] shape = [.. x.ShapeArray];
        shape[^1] = outF;
        bool tangent = x.Tangent is not null || weight.Tangent is not null || (bias?.Tangent is not null);
        var y = NewTensor(shape, NeedsGrad(x, weight, bias), tangent);
        if (bias is not null)
        {
            // The bias rows first, then the GEMM accumulates onto them (beta 1, as torch's addmm): one pass over y fewer
            // than adding the bias afterwards.
            for (int r = 0; r < rows; r++)
            {
                bias.Data.CopyTo(y.Data.AsSpan(r * outF, outF));
            }
        }

        Blas.Gemm(false, true, rows, outF, inF, 1f, x.Data, weight.Data, bias is null ? 0f : 1f, y.Data);

        if (y.Tangent is not null)
        {
            // y' = x' Wᵀ + x W'ᵀ + b'
            float beta = 0f;
            if (x.Tangent is not null)
            {
                Blas.Gemm(false, true, rows, outF, inF, 1f, x.Tangent, weight.Data, 0f, y.Tangent);
                beta = 1f;
            }

            if (weight.Tangent is not null)
            {
                Blas.Gemm(false, true, rows, outF, inF, 1f, x.Data, weight.Tangent, beta, y.Tangent);
                beta = 1f;
            }

            if (beta == 0f)
            {
                Array.Clear(y.Tangent);
            }

            if (bias?.Tangent is not null)
            {
                AddRowBias(y.Tangent, bias.Tangent, rows, outF);
            }
        }

        capture?.CaptureActivations(x.Data, rows);
        if (capture is not null && (capture.Out != outF || capture.In != inF))
        {
            throw new ArgumentException($"Linear: capture for '{capture.Weight.Name}' is [{capture.Out}, {capture.In}] but the layer is [{outF}, {inF}].");
        }

        if (y.Grad is not null)
        {
            Record(() =>
            {
                capture?.CaptureGrads(y.Grad);
                if (x.Grad is not null)
                {
                    Blas.Gemm(false, false, rows, inF, outF, 1f, y.Grad, weight.Data, 1f, x.Grad);
                }

                if (weight.Grad is not null)
                {
                    Blas.Gemm(true, false, outF, inF, rows, 1f, y.Grad, x.Data, 1f, weight.Grad);
                }

                if (bias?.Grad is not null)
                {
                    Kernels.AddRows(y.Grad, rows, bias.Grad);
                }
            });
        }

        return y;
    }

    private static void AddRowBias(Span<float> y, ReadOnlySpan<float> bias, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            var row = y.Slice(r * cols, cols);
            TensorPrimitives.Add(row, bias, row);
        }
    }

    /// <summary>Product of all but the last dimension.</summary>
    private static int CountRows(Tensor t)
    {
        int rows = 1;
        for (int i = 0; i < t.Rank - 1; i++)
        {
            rows *= t.ShapeArray[i];
        }

        return rows;
    }
}
