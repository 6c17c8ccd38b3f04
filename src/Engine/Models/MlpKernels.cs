using System.Diagnostics.CodeAnalysis;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Attribution.Engine.Models;

/// <summary>
/// The fused element-wise steps of the MLP that TensorPrimitives lacks (bias+ReLU, ReLU backward mask, row-wise
/// log-softmax). Row-major [rows, cols] matrices; each kernel validates lengths first, then works in place.
/// </summary>
public static class MlpKernels
{
    /// <summary><c>z[r, :] = max(z[r, :] + bias, 0)</c> (or without the max when <paramref name="relu"/> is false).</summary>
    public static void AddBiasActivate(Span<float> z, ReadOnlySpan<float> bias, int rows, bool relu)
    {
        int cols = bias.Length;
        if (z.Length < (long)rows * cols)
        {
            ThrowLength(nameof(z), z.Length, (long)rows * cols);
        }

        for (int r = 0; r < rows; r++)
        {
            var row = z.Slice(r * cols, cols);
            if (!relu)
            {
                TensorPrimitives.Add(row, bias, row);
                continue;
            }

            int j = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                for (; j <= cols - Vector256<float>.Count; j += Vector256<float>.Count)
                {
                    var v = Vector256.Create(row.Slice(j, Vector256<float>.Count)) + Vector256.Create(bias.Slice(j, Vector256<float>.Count));
                    Vector256.Max(v, Vector256<float>.Zero).CopyTo(row.Slice(j, Vector256<float>.Count));
                }
            }

            for (; j < cols; j++)
            {
                row[j] = MathF.Max(row[j] + bias[j], 0f);
            }
        }
    }

    /// <summary>ReLU backward through its output: <c>d[i] = h[i] &gt; 0 ? d[i] : 0</c>.</summary>
    public static void ReluBackward(Span<float> d, ReadOnlySpan<float> h)
    {
        if (h.Length < d.Length)
        {
            ThrowLength(nameof(h), h.Length, d.Length);
        }

        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= d.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var mask = Vector256.GreaterThan(Vector256.Create(h.Slice(i, Vector256<float>.Count)), Vector256<float>.Zero);
                (Vector256.Create(d.Slice(i, Vector256<float>.Count)) & mask).CopyTo(d.Slice(i, Vector256<float>.Count));
            }
        }

        for (; i < d.Length; i++)
        {
            if (!(h[i] > 0f))
            {
                d[i] = 0f;
            }
        }
    }

    /// <summary>
    /// Numerically stable log-sum-exp of a row, optionally skipping one column (<paramref name="skip"/> = -1 for none).
    /// Subtracts the maximum first, so large logits never overflow. Returns -∞ for an empty set.
    /// </summary>
    public static float LogSumExp(ReadOnlySpan<float> row, int skip = -1)
    {
        float max = float.NegativeInfinity;
        for (int j = 0; j < row.Length; j++)
        {
            if (j != skip && row[j] > max)
            {
                max = row[j];
            }
        }

        if (float.IsNegativeInfinity(max))
        {
            return max;
        }

        if (float.IsNaN(max) || float.IsPositiveInfinity(max))
        {
            return float.NaN;
        }

        double s = 0;
        for (int j = 0; j < row.Length; j++)
        {
            if (j != skip)
            {
                s += Math.Exp(row[j] - max);
            }
        }

        return (float)(max + Math.Log(s));
    }

    /// <summary>
    /// The value of <paramref name="output"/> for one row of logits <paramref name="z"/> with label <paramref name="y"/>;
    /// when <paramref name="gradient"/> is not empty, also writes <c>scale · ∂value/∂z</c> into it. The one definition of
    /// the classifier's output functions (log-sum-exp subtracts the maximum; exponentials in double).
    /// </summary>
    public static float Output(ModelOutput output, ReadOnlySpan<float> z, int y, float scale, Span<float> gradient)
    {
        bool margin = output == ModelOutput.Margin;
        float lse = LogSumExp(z, margin ? y : -1);
        float value = margin ? z[y] - lse : lse - z[y];
        if (!gradient.IsEmpty)
        {
            // Margin: ∂/∂z_j = −softmax_{j≠y}, ∂/∂z_y = 1. Loss: softmax − onehot. Log-likelihood: −(loss's).
            float sign = output == ModelOutput.LogLikelihood ? -scale : scale;
            for (int j = 0; j < z.Length; j++)
            {
                gradient[j] = (float)Math.Exp(z[j] - lse) * (margin ? -scale : sign);
            }

            gradient[y] = margin ? scale : gradient[y] - sign;
        }

        return output == ModelOutput.LogLikelihood ? -value : value;
    }

    /// <summary>The output's value and its tangent for logits <paramref name="z"/> moving along <paramref name="dz"/>.</summary>
    public static (float Value, float Tangent) OutputTangent(ModelOutput output, ReadOnlySpan<float> z, ReadOnlySpan<float> dz, int y)
    {
        bool margin = output == ModelOutput.Margin;
        float lse = LogSumExp(z, margin ? y : -1);
        double dot = 0;
        for (int j = 0; j < z.Length; j++)
        {
            if (!margin || j != y)
            {
                dot += Math.Exp(z[j] - lse) * dz[j];
            }
        }

        return output switch
        {
            ModelOutput.Margin => (z[y] - lse, (float)(dz[y] - dot)),
            ModelOutput.Loss => (lse - z[y], (float)(dot - dz[y])),
            _ => (z[y] - lse, (float)(dz[y] - dot)),
        };
    }

    [DoesNotReturn]
    private static void ThrowLength(string name, long actual, long needed) =>
        throw new ArgumentException($"'{name}' has {actual} elements but the shapes need {needed}.", name);
}
