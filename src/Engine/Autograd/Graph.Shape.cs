using System.Numerics.Tensors;
using Kernels = Attribution.Engine.Tensors.Kernels;
using Tensor = Attribution.Engine.Tensors.Tensor;

namespace Attribution.Engine.Autograd;

public sealed partial class Graph
{
    /// <summary>
    /// Zero-copy view with a new shape (same element count). Values, gradient and tangent are shared with
    /// <paramref name="x"/>, so no backward step is needed. One dimension may be -1 (inferred).
    /// </summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(shape);
        var s = (int[])shape.Clone();
        int infer = Array.IndexOf(s, -1);
        if (infer >= 0)
        {
            int known = 1;
            for (int i = 0; i < s.Length; i++)
            {
                known *= i == infer ? 1 : s[i];
            }

            s[infer] = known == 0 ? 0 : x.Length / known;
        }

        long n = 1;
        foreach (var d in s)
        {
            n *= d;
        }

        if (n != x.Length || s.Any(d => d < 0))
        {
            throw new ArgumentException($"Reshape: cannot view {Tensor.ShapeString(x.Shape)} ({x.Length} elements) as {Tensor.ShapeString(shape)}.");
        }

        return new Tensor(s, x.Data, x.Grad, x.Tangent);
    }

    /// <summary>Swaps two dimensions (a contiguous copy).</summary>
    public Tensor Transpose(Tensor x, int dim0, int dim1)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d0 = Tensor.NormalizeDim(dim0, x.Rank, "Transpose");
        int d1 = Tensor.NormalizeDim(dim1, x.Rank, "Transpose");
        int[] shape = [.. x.ShapeArray];
        (shape[d0], shape[d1]) = (shape[d1], shape[d0]);
        var y = NewTensor(shape, NeedsGrad(x), x.Tangent is not null);
        Permute(x.ShapeArray, d0, d1, x.Data, y.Data, accumulate: false);
        if (x.Tangent is not null)
        {
            Permute(x.ShapeArray, d0, d1, x.Tangent, y.Tangent!, accumulate: false);
        }

        if (y.Grad is not null)
        {
            Record(() => Permute(shape, d0, d1, y.Grad, x.Grad!, accumulate: true));
        }

        return y;
    }

    /// <summary>Elements <c>[start, start + length)</c> along dimension <paramref name="dim"/> (a contiguous copy).</summary>
    public Tensor Slice(Tensor x, int dim, int start, int length)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = Tensor.NormalizeDim(dim, x.Rank, "Slice");
        int size = x.ShapeArray[d];
        if (start < 0 || length < 0 || start > size - length)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"Slice: [{start}, {start}+{length}) is outside dimension {d} of {Tensor.ShapeString(x.Shape)}.");
        }

        int outer = 1, inner = 1;
        for (int i = 0; i < d; i++)
        {
            outer *= x.ShapeArray[i];
        }

        for (int i = d + 1; i < x.Rank; i++)
        {
            inner *= x.ShapeArray[i];
        }

        int[] shape = [.. x.ShapeArray];
        shape[d] = length;
        var y = NewTensor(shape, NeedsGrad(x), x.Tangent is not null);
        int block = length * inner, srcBlock = size * inner, offset = start * inner;
        for (int o = 0; o < outer; o++)
        {
            x.Data.AsSpan((o * srcBlock) + offset, block).CopyTo(y.Data.AsSpan(o * block, block));
            x.Tangent?.AsSpan((o * srcBlock) + offset, block).CopyTo(y.Tangent!.AsSpan(o * block, block));
        }

        if (y.Grad is not null)
        {
            Record(() =>
            {
                for (int o = 0; o < outer; o++)
                {
                    var gx = x.Grad!.AsSpan((o * srcBlock) + offset, block);
                    TensorPrimitives.Add(gx, y.Grad.AsSpan(o * block, block), gx);
                }
            });
        }

        return y;
    }

    /// <summary>
    /// Embedding lookup: rows of <paramref name="table"/> [V, C] picked by <paramref name="ids"/>; result [ids.Length, C].
    /// The backward pass scatter-adds into the table's gradient in id order (deterministic).
    /// </summary>
    public Tensor Embedding(Tensor table, ReadOnlySpan<int> ids)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (table.Rank != 2)
        {
            ThrowShape("Embedding", table, "table must be [V, C]");
        }

        int v = table.Dim(0), c = table.Dim(1);
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)v)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), $"Embedding: id {ids[i]} at position {i} is outside the table's {v} rows.");
            }
        }

        var y = NewTensor([ids.Length, c], NeedsGrad(table), table.Tangent is not null);
        for (int i = 0; i < ids.Length; i++)
        {
            table.Data.AsSpan(ids[i] * c, c).CopyTo(y.Data.AsSpan(i * c, c));
            table.Tangent?.AsSpan(ids[i] * c, c).CopyTo(y.Tangent!.AsSpan(i * c, c));
        }

        if (y.Grad is not null)
        {
            int[] saved = RentCopy(ids);
            Record(() =>
            {
                for (int i = 0; i < saved.Length; i++)
                {
                    var row = table.Grad!.AsSpan(saved[i] * c, c);
                    Kernels.AddTo(y.Grad.AsSpan(i * c, c), row);
                }
            });
        }

        return y;
    }

    /// <summary>dst (+)= src with dimensions d0 and d1 of <paramref name="srcShape"/> swapped.</summary>
    private static void Permute(int[] srcShape, int d0, int d1, float[] src, float[] dst, bool accumulate)
    {
        int rank = srcShape.Length;
        if (src.Length == 0)
        {
            return;
        }

        var srcStrides = new int[rank];
        int s = 1;
        for (int i = rank - 1; i >= 0; i--)
        {
            srcStrides[i] = s;
            s *= srcShape[i];
        }

        // Walk the destination in order; its index i maps to the source through the swapped strides.
        int[] dstShape = (int[])srcShape.Clone();
        (dstShape[d0], dstShape[d1]) = (dstShape[d1], dstShape[d0]);
        int[] walkStrides = (int[])srcStrides.Clone();
        (walkStrides[d0], walkStrides[d1]) = (walkStrides[d1], walkStrides[d0]);
        var index = new int[rank];
        int srcOffset = 0;
        for (int o = 0; o < dst.Length; o++)
        {
            dst[o] = accumulate ? dst[o] + src[srcOffset] : src[srcOffset];
            for (int ax = rank - 1; ax >= 0; ax--)
            {
                index[ax]++;
                srcOffset += walkStrides[ax];
                if (index[ax] < dstShape[ax])
                {
                    break;
                }

                srcOffset -= walkStrides[ax] * dstShape[ax];
                index[ax] = 0;
            }
        }
    }
}
