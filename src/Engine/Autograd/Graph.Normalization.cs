using System.Numerics.Tensors;
using Kernels = Attribution.Engine.Tensors.Kernels;
using Tensor = Attribution.Engine.Tensors.Tensor;

namespace Attribution.Engine.Autograd;

public sealed partial class Graph
{
    /// <summary>
    /// LayerNorm over the last dimension with affine weight and bias ([C] each), as PyTorch's <c>nn.LayerNorm</c>
    /// (biased variance, <paramref name="eps"/> inside the square root). Row statistics are accumulated in double.
    /// </summary>
    public Tensor LayerNorm(Tensor x, Tensor weight, Tensor bias, float eps = 1e-5f)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(bias);
        if (x.Rank < 1 || weight.Rank != 1 || weight.Length != x.Dim(-1))
        {
            ThrowShapes("LayerNorm", x, weight, "weight must be [C] for x [..., C]");
        }

        if (bias.Rank != 1 || bias.Length != weight.Length)
        {
            ThrowShapes("LayerNorm", x, bias, "bias must be [C] for x [..., C]");
        }

        int c = x.Dim(-1);
        int rows = CountRows(x);
        bool tangent = x.Tangent is not null || weight.Tangent is not null || bias.Tangent is not null;
        var y = NewTensor([.. x.ShapeArray], NeedsGrad(x, weight, bias), tangent);
        var xhat = Rent(x.Length, clear: false);
        var rstd = Rent(rows, clear: false);
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Data.AsSpan(r * c, c);
            var hr = xhat.AsSpan(r * c, c);
            double mean = SumDouble(xr) / c;
            TensorPrimitives.Subtract(xr, (float)mean, hr);
            double var = SumDouble(hr, squares: true);
            float rs = (float)(1.0 / Math.Sqrt((var / c) + eps));
            rstd[r] = rs;
            TensorPrimitives.Multiply(hr, rs, hr);
            var yr = y.Data.AsSpan(r * c, c);
            TensorPrimitives.FusedMultiplyAdd(hr, weight.Data, bias.Data, yr);
        }

        if (y.Tangent is not null)
        {
            var tmp = Rent(c, clear: false);
            for (int r = 0; r < rows; r++)
            {
                var yt = y.Tangent.AsSpan(r * c, c);
                var hr = xhat.AsSpan(r * c, c);
                yt.Clear();
                if (x.Tangent is not null)
                {
                    // xhat' = rstd (xc' - xhat mean(xhat xc')), xc' = x' - mean(x')
                    var xt = x.Tangent.AsSpan(r * c, c);
                    float mt = (float)(SumDouble(xt) / c);
                    TensorPrimitives.Subtract(xt, mt, tmp);
                    float proj = TensorPrimitives.Dot(hr, tmp) / c;
                    TensorPrimitives.MultiplyAdd(hr, -proj, tmp, tmp);
                    TensorPrimitives.Multiply(tmp, rstd[r], tmp);
                    TensorPrimitives.Multiply(tmp, weight.Data, yt);
                }

                if (weight.Tangent is not null)
                {
                    TensorPrimitives.MultiplyAdd(hr, weight.Tangent, yt, yt);
                }

                if (bias.Tangent is not null)
                {
                    TensorPrimitives.Add(yt, bias.Tangent, yt);
                }
            }
        }

        if (y.Grad is not null)
        {
            Record(() =>
            {
                var dxhat = x.Grad is null ? null : Rent(c, clear: false);
                for (int r = 0; r < rows; r++)
                {
                    var gy = y.Grad.AsSpan(r * c, c);
                    var hr = xhat.AsSpan(r * c, c);
                    if (weight.Grad is not null)
                    {
                        TensorPrimitives.MultiplyAdd(gy, hr, weight.Grad, weight.Grad);
                    }

                    if (bias.Grad is not null)
                    {
                        Kernels.AddTo(gy, bias.Grad);
                    }

                    if (dxhat is not null)
                    {
                        // dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
                        TensorPrimitives.Multiply(gy, weight.Data, dxhat);
                        float m1 = TensorPrimitives.Sum(dxhat) / c;
                        float m2 = TensorPrimitives.Dot(dxhat, hr) / c;
                        TensorPrimitives.MultiplyAdd(hr, -m2, dxhat, dxhat);
                        TensorPrimitives.Subtract(dxhat, m1, dxhat);
                        var gx = x.Grad!.AsSpan(r * c, c);
                        TensorPrimitives.MultiplyAdd(dxhat, rstd[r], gx, gx);
                    }
                }
            });
        }

        return y;
    }

    /// <summary>Log-softmax over the last dimension, subtracting the row maximum first.</summary>
    public Tensor LogSoftmax(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 1 || x.Dim(-1) == 0)
        {
            ThrowShape("LogSoftmax", x, "the last dimension must be non-empty");
        }

        int c = x.Dim(-1), rows = CountRows(x);
        var y = NewTensor([.. x.ShapeArray], NeedsGrad(x), x.Tangent is not null);
        var p = Rent(x.Length, clear: false);
        for (int r = 0; r < rows; r++)
        {
            float lse = LogSumExp(x.Data.AsSpan(r * c, c), p.AsSpan(r * c, c));
            TensorPrimitives.Subtract(x.Data.AsSpan(r * c, c), lse, y.Data.AsSpan(r * c, c));
        }

        if (x.Tangent is not null)
        {
            for (int r = 0; r < rows; r++)
            {
                // y' = x' - Σ p x'
                var xt = x.Tangent.AsSpan(r * c, c);
                float mean = TensorPrimitives.Dot(p.AsSpan(r * c, c), xt);
                TensorPrimitives.Subtract(xt, mean, y.Tangent.AsSpan(r * c, c));
            }
        }

        if (y.Grad is not null)
        {
            Record(() =>
            {
                for (int r = 0; r < rows; r++)
                {
                    // dx = dy - p Σ dy
                    var gy = y.Grad.AsSpan(r * c, c);
                    var gx = x.Grad!.AsSpan(r * c, c);
                    float s = TensorPrimitives.Sum(gy);
                    TensorPrimitives.Add(gx, gy, gx);
                    TensorPrimitives.MultiplyAdd(p.AsSpan(r * c, c), -s, gx, gx);
                }
            });
        }

        return y;
    }

    /// <summary>
    /// Mean cross-entropy of <paramref name="logits"/> [..., V] against integer <paramref name="targets"/> (one per row);
    /// rows whose target equals <paramref name="ignoreIndex"/> are skipped and do not count in the mean. All rows ignored
    /// gives loss 0 and zero gradient. The loss is accumulated in double.
    /// </summary>
    public Tensor CrossEntropy(Tensor logits, ReadOnlySpan<int> targets, int ignoreIndex = -1)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.Rank < 1 || logits.Dim(-1) == 0)
        {
            ThrowShape("CrossEntropy", logits, "the last dimension (classes) must be non-empty");
        }

        int v = logits.Dim(-1), rows = CountRows(logits);
        if (targets.Length != rows)
        {
            throw new ArgumentException($"CrossEntropy: logits {Tensor.ShapeString(logits.Shape)} have {rows} rows but {targets.Length} targets were given.");
        }

        int count = 0;
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] == ignoreIndex)
            {
                continue;
            }

            if ((uint)targets[r] >= (uint)v)
            {
                throw new ArgumentOutOfRangeException(nameof(targets), $"CrossEntropy: target {targets[r]} at row {r} is outside [0, {v}) and is not the ignore index {ignoreIndex}.");
            }

            count++;
        }

        var y = NewTensor([], NeedsGrad(logits), logits.Tangent is not null);
        var p = Rent(logits.Length, clear: false);
        double total = 0, totalTangent = 0;
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] == ignoreIndex)
            {
                continue;
            }

            var xr = logits.Data.AsSpan(r * v, v);
            float lse = LogSumExp(xr, p.AsSpan(r * v, v));
            total += lse - xr[targets[r]];
            if (logits.Tangent is not null)
            {
                var xt = logits.Tangent.AsSpan(r * v, v);
                totalTangent += TensorPrimitives.Dot(p.AsSpan(r * v, v), xt) - xt[targets[r]];
            }
        }

        float inv = count == 0 ? 0f : 1f / count;
        y.Data[0] = (float)(total * inv);
        if (y.Tangent is not null)
        {
            y.Tangent[0] = (float)(totalTangent * inv);
        }

        if (y.Grad is not null)
        {
            int[] saved = RentCopy(targets);
            Record(() =>
            {
                float scale = y.Grad[0] * inv;
                for (int r = 0; r < rows; r++)
                {
                    if (saved[r] == ignoreIndex)
                    {
                        continue;
                    }

                    // d/dx = (softmax - onehot) / count
                    var gx = logits.Grad!.AsSpan(r * v, v);
                    TensorPrimitives.MultiplyAdd(p.AsSpan(r * v, v), scale, gx, gx);
                    gx[saved[r]] -= scale;
                }
            });
        }

        return y;
    }

    /// <summary>Writes softmax(x) into <paramref name="probs"/> and returns log Σ exp x, subtracting the max first.</summary>
    private static float LogSumExp(ReadOnlySpan<float> x, Span<float> probs)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, probs);
        TensorPrimitives.Exp(probs, probs);
        float sum = TensorPrimitives.Sum(probs);
        TensorPrimitives.Multiply(probs, 1f / sum, probs);
        return max + MathF.Log(sum);
    }
}
