using System.Numerics.Tensors;
using Kernels = Attribution.Engine.Tensors.Kernels;
using Tensor = Attribution.Engine.Tensors.Tensor;

namespace Attribution.Engine.Autograd;

public sealed partial class Graph
{
    /// <summary>
    /// Causal multi-head self-attention on a fused projection <paramref name="qkv"/> [B, T, 3C] (queries, keys, values
    /// side by side along the last dimension, as GPT-2's <c>c_attn</c>), with <paramref name="heads"/> heads of size C/heads.
    /// Returns [B, T, C] with heads concatenated. Scores are scaled by 1/sqrt(head size), masked so position t sees only
    /// positions ≤ t, and soft-maxed after subtracting the row maximum. Per (batch, head): two GEMMs forward, four backward.
    /// </summary>
    public Tensor CausalSelfAttention(Tensor qkv, int heads)
    {
        ArgumentNullException.ThrowIfNull(qkv);
        if (qkv.Rank != 3 || qkv.Dim(2) % 3 != 0)
        {
            ThrowShape("CausalSelfAttention", qkv, "qkv must be [B, T, 3C]");
        }

        int b = qkv.Dim(0), t = qkv.Dim(1), c = qkv.Dim(2) / 3;
        if (heads <= 0 || c % heads != 0)
        {
            ThrowShape("CausalSelfAttention", qkv, $"{heads} heads do not divide C = {c}");
        }

        int hd = c / heads, bh = b * heads, tt = t * t, th = t * hd;
        float scale = 1f / MathF.Sqrt(hd);
        var y = NewTensor([b, t, c], NeedsGrad(qkv), qkv.Tangent is not null);

        // Head-major copies [B, H, T, hd] so each GEMM sees contiguous rows.
        var q = Rent(bh * th, clear: false);
        var k = Rent(bh * th, clear: false);
        var v = Rent(bh * th, clear: false);
        SplitHeads(qkv.Data, b, t, c, heads, q, k, v);
        var p = Rent(bh * tt, clear: false);
        var yh = Rent(bh * th, clear: false);
        for (int i = 0; i < bh; i++)
        {
            var pi = p.AsSpan(i * tt, tt);
            Blas.Gemm(false, true, t, t, hd, scale, q.AsSpan(i * th, th), k.AsSpan(i * th, th), 0f, pi);
            for (int r = 0; r < t; r++)
            {
                var row = pi.Slice(r * t, t);
                var live = row[..(r + 1)];
                float max = TensorPrimitives.Max(live);
                TensorPrimitives.Subtract(live, max, live);
                TensorPrimitives.Exp(live, live);
                TensorPrimitives.Multiply(live, 1f / TensorPrimitives.Sum(live), live);
                row[(r + 1)..].Clear();
            }

            Blas.Gemm(false, false, t, hd, t, 1f, pi, v.AsSpan(i * th, th), 0f, yh.AsSpan(i * th, th));
        }

        MergeHeads(yh, b, t, c, heads, y.Data, accumulate: false);

        if (y.Tangent is not null)
        {
            var qt = Rent(bh * th, clear: false);
            var kt = Rent(bh * th, clear: false);
            var vt = Rent(bh * th, clear: false);
            SplitHeads(qkv.Tangent!, b, t, c, heads, qt, kt, vt);
            var st = Rent(tt, clear: false);
            for (int i = 0; i < bh; i++)
            {
                var pi = p.AsSpan(i * tt, tt);
                // S' = scale (Q' Kᵀ + Q K'ᵀ); P' = P ⊙ (S' - rowsum(P ⊙ S')); Y' = P' V + P V'
                Blas.Gemm(false, true, t, t, hd, scale, qt.AsSpan(i * th, th), k.AsSpan(i * th, th), 0f, st);
                Blas.Gemm(false, true, t, t, hd, scale, q.AsSpan(i * th, th), kt.AsSpan(i * th, th), 1f, st);
                SoftmaxJacobianRows(pi, st, t);
                var yti = yh.AsSpan(i * th, th);
                Blas.Gemm(false, false, t, hd, t, 1f, st, v.AsSpan(i * th, th), 0f, yti);
                Blas.Gemm(false, false, t, hd, t, 1f, pi, vt.AsSpan(i * th, th), 1f, yti);
            }

            MergeHeads(yh, b, t, c, heads, y.Tangent, accumulate: false);
        }

        if (y.Grad is not null)
        {
            Record(() =>
            {
                var dy = Rent(bh * th, clear: false);
                var dq = Rent(bh * th, clear: false);
                var dk = Rent(bh * th, clear: false);
                var dv = Rent(bh * th, clear: false);
                var ds = Rent(tt, clear: false);
                SplitHeadsOne(y.Grad, b, t, c, heads, dy);
                for (int i = 0; i < bh; i++)
                {
                    var pi = p.AsSpan(i * tt, tt);
                    var dyi = dy.AsSpan(i * th, th);
                    // dP = dY Vᵀ; dV = Pᵀ dY; dS = P ⊙ (dP - rowsum(P ⊙ dP)); dQ = scale dS K; dK = scale dSᵀ Q
                    Blas.Gemm(false, true, t, t, hd, 1f, dyi, v.AsSpan(i * th, th), 0f, ds);
                    Blas.Gemm(true, false, t, hd, t, 1f, pi, dyi, 0f, dv.AsSpan(i * th, th));
                    SoftmaxJacobianRows(pi, ds, t);
                    Blas.Gemm(false, false, t, hd, t, scale, ds, k.AsSpan(i * th, th), 0f, dq.AsSpan(i * th, th));
                    Blas.Gemm(true, false, t, hd, t, scale, ds, q.AsSpan(i * th, th), 0f, dk.AsSpan(i * th, th));
                }

                MergeQkv(dq, dk, dv, b, t, c, heads, qkv.Grad!);
            });
        }

        return y;
    }

    /// <summary>In place: <c>g = P ⊙ (g - rowsum(P ⊙ g))</c> over the causal part of each row; zero above the diagonal.</summary>
    private static void SoftmaxJacobianRows(ReadOnlySpan<float> p, Span<float> g, int t)
    {
        for (int r = 0; r < t; r++)
        {
            var pr = p.Slice(r * t, r + 1);
            var gr = g.Slice(r * t, t);
            var live = gr[..(r + 1)];
            float dot = TensorPrimitives.Dot(pr, live);
            TensorPrimitives.Subtract(live, dot, live);
            TensorPrimitives.Multiply(live, pr, live);
            gr[(r + 1)..].Clear();
        }
    }

    private static void SplitHeads(float[] qkv, int b, int t, int c, int heads, float[] q, float[] k, float[] v)
    {
        int hd = c / heads;
        for (int bi = 0; bi < b; bi++)
        {
            for (int ti = 0; ti < t; ti++)
            {
                int src = ((bi * t) + ti) * 3 * c;
                for (int h = 0; h < heads; h++)
                {
                    int dst = (((bi * heads) + h) * t + ti) * hd;
                    qkv.AsSpan(src + (h * hd), hd).CopyTo(q.AsSpan(dst, hd));
                    qkv.AsSpan(src + c + (h * hd), hd).CopyTo(k.AsSpan(dst, hd));
                    qkv.AsSpan(src + (2 * c) + (h * hd), hd).CopyTo(v.AsSpan(dst, hd));
                }
            }
        }
    }

    private static void SplitHeadsOne(float[] x, int b, int t, int c, int heads, float[] dst)
    {
        int hd = c / heads;
        for (int bi = 0; bi < b; bi++)
        {
            for (int ti = 0; ti < t; ti++)
            {
                int src = ((bi * t) + ti) * c;
                for (int h = 0; h < heads; h++)
                {
                    x.AsSpan(src + (h * hd), hd).CopyTo(dst.AsSpan((((bi * heads) + h) * t + ti) * hd, hd));
                }
            }
        }
    }

    private static void MergeHeads(float[] src, int b, int t, int c, int heads, float[] y, bool accumulate)
    {
        int hd = c / heads;
        for (int bi = 0; bi < b; bi++)
        {
            for (int ti = 0; ti < t; ti++)
            {
                int dst = ((bi * t) + ti) * c;
                for (int h = 0; h < heads; h++)
                {
                    var s = src.AsSpan((((bi * heads) + h) * t + ti) * hd, hd);
                    var d = y.AsSpan(dst + (h * hd), hd);
                    if (accumulate)
                    {
                        Kernels.AddTo(s, d);
                    }
                    else
                    {
                        s.CopyTo(d);
                    }
                }
            }
        }
    }

    private static void MergeQkv(float[] dq, float[] dk, float[] dv, int b, int t, int c, int heads, float[] grad)
    {
        int hd = c / heads;
        for (int bi = 0; bi < b; bi++)
        {
            for (int ti = 0; ti < t; ti++)
            {
                int dst = ((bi * t) + ti) * 3 * c;
                for (int h = 0; h < heads; h++)
                {
                    int src = (((bi * heads) + h) * t + ti) * hd;
                    for (int part = 0; part < 3; part++)
                    {
                        var from = (part == 0 ? dq : part == 1 ? dk : dv).AsSpan(src, hd);
                        var to = grad.AsSpan(dst + (part * c) + (h * hd), hd);
                        Kernels.AddTo(from, to);
                    }
                }
            }
        }
    }
}
