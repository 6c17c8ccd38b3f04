using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Attribution.Engine.Tensors;
using Tensor = Attribution.Engine.Tensors.Tensor;

namespace Attribution.Engine.Autograd;

public sealed partial class Graph
{
    /// <summary>
    /// <c>a + b</c>. Shapes must be equal, or <paramref name="b"/>'s shape a suffix of <paramref name="a"/>'s (bias-style
    /// broadcast: b repeats over a's leading dimensions; its gradient sums over them).
    /// </summary>
    public Tensor Add(Tensor a, Tensor b) => Binary("Add", a, b, multiply: false);

    /// <summary><c>a * b</c> element-wise, with the same broadcasting as <see cref="Add"/>.</summary>
    public Tensor Mul(Tensor a, Tensor b) => Binary("Mul", a, b, multiply: true);

    /// <summary><c>a * s</c> for a constant scalar.</summary>
    public Tensor Scale(Tensor a, float s)
    {
        ArgumentNullException.ThrowIfNull(a);
        var y = NewTensor([.. a.ShapeArray], NeedsGrad(a), a.Tangent is not null);
        TensorPrimitives.Multiply(a.Data, s, y.Data);
        if (a.Tangent is not null)
        {
            TensorPrimitives.Multiply(a.Tangent, s, y.Tangent!);
        }

        if (y.Grad is not null)
        {
            Record(() => TensorPrimitives.MultiplyAdd(y.Grad, s, a.Grad!, a.Grad!));
        }

        return y;
    }

    /// <summary>Sum of all elements, as a scalar (accumulated in double).</summary>
    public Tensor Sum(Tensor a)
    {
        ArgumentNullException.ThrowIfNull(a);
        var y = NewTensor([], NeedsGrad(a), a.Tangent is not null);
        y.Data[0] = (float)SumDouble(a.Data);
        if (a.Tangent is not null)
        {
            y.Tangent![0] = (float)SumDouble(a.Tangent);
        }

        if (y.Grad is not null)
        {
            Record(() => TensorPrimitives.Add(a.Grad!, y.Grad[0], a.Grad!));
        }

        return y;
    }

    /// <summary>ReLU.</summary>
    public Tensor Relu(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = NewTensor([.. x.ShapeArray], NeedsGrad(x), x.Tangent is not null);
        TensorPrimitives.Max(x.Data, 0f, y.Data);
        if (x.Tangent is not null)
        {
            Kernels.ReluMask(x.Data, x.Tangent, y.Tangent!, accumulate: false);
        }

        if (y.Grad is not null)
        {
            Record(() => Kernels.ReluMask(x.Data, y.Grad, x.Grad!, accumulate: true));
        }

        return y;
    }

    /// <summary>GELU, tanh approximation (PyTorch <c>gelu(approximate='tanh')</c>).</summary>
    public Tensor Gelu(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = NewTensor([.. x.ShapeArray], NeedsGrad(x), x.Tangent is not null);
        var t = Rent(x.Length, clear: false);
        Kernels.Gelu(x.Data, t, y.Data);
        if (x.Tangent is not null)
        {
            Kernels.GeluDerivativeMultiply(x.Data, t, x.Tangent, y.Tangent!, accumulate: false);
        }

        if (y.Grad is not null)
        {
            Record(() => Kernels.GeluDerivativeMultiply(x.Data, t, y.Grad, x.Grad!, accumulate: true));
        }

        return y;
    }

    /// <summary>Hyperbolic tangent.</summary>
    public Tensor Tanh(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = NewTensor([.. x.ShapeArray], NeedsGrad(x), x.Tangent is not null);
        TensorPrimitives.Tanh(x.Data, y.Data);
        float[]? d = null;
        if (x.Tangent is not null || y.Grad is not null)
        {
            // d = 1 - y^2
            d = Rent(x.Length, clear: false);
            TensorPrimitives.Multiply(y.Data, y.Data, d);
            TensorPrimitives.Subtract(1f, d, d);
        }

        if (x.Tangent is not null)
        {
            TensorPrimitives.Multiply(d!, x.Tangent, y.Tangent!);
        }

        if (y.Grad is not null)
        {
            Record(() => TensorPrimitives.MultiplyAdd(d!, y.Grad, x.Grad!, x.Grad!));
        }

        return y;
    }

    private Tensor Binary(string op, Tensor a, Tensor b, bool multiply)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        int inner = BroadcastInner(op, a, b);
        int outer = inner == 0 ? 0 : a.Length / inner;
        var y = NewTensor([.. a.ShapeArray], NeedsGrad(a, b), a.Tangent is not null || b.Tangent is not null);
        for (int r = 0; r < outer; r++)
        {
            var ya = a.Data.AsSpan(r * inner, inner);
            var yo = y.Data.AsSpan(r * inner, inner);
            if (multiply)
            {
                TensorPrimitives.Multiply(ya, b.Data, yo);
            }
            else
            {
                TensorPrimitives.Add(ya, b.Data, yo);
            }
        }

        if (y.Tangent is not null)
        {
            var yt = y.Tangent;
            Array.Clear(yt);
            for (int r = 0; r < outer; r++)
            {
                var to = yt.AsSpan(r * inner, inner);
                if (multiply)
                {
                    // (ab)' = a' b + a b'
                    if (a.Tangent is not null)
                    {
                        TensorPrimitives.Multiply(a.Tangent.AsSpan(r * inner, inner), b.Data, to);
                    }

                    if (b.Tangent is not null)
                    {
                        TensorPrimitives.MultiplyAdd(a.Data.AsSpan(r * inner, inner), b.Tangent, to, to);
                    }
                }
                else
                {
                    if (a.Tangent is not null)
                    {
                        a.Tangent.AsSpan(r * inner, inner).CopyTo(to);
                    }

                    if (b.Tangent is not null)
                    {
                        TensorPrimitives.Add(to, b.Tangent, to);
                    }
                }
            }
        }

        if (y.Grad is not null)
        {
            Record(() =>
            {
                for (int r = 0; r < outer; r++)
                {
                    var g = y.Grad.AsSpan(r * inner, inner);
                    if (a.Grad is not null)
                    {
                        var ga = a.Grad.AsSpan(r * inner, inner);
                        if (multiply)
                        {
                            TensorPrimitives.MultiplyAdd(g, b.Data, ga, ga);
                        }
                        else
                        {
                            Kernels.AddTo(g, ga);
                        }
                    }

                    if (b.Grad is not null)
                    {
                        if (multiply)
                        {
                            TensorPrimitives.MultiplyAdd(g, a.Data.AsSpan(r * inner, inner), b.Grad, b.Grad);
                        }
                        else
                        {
                            Kernels.AddTo(g, b.Grad);
                        }
                    }
                }
            });
        }

        return y;
    }

    /// <summary>Length of b when b's shape equals a's or is a suffix of it; throws otherwise.</summary>
    private static int BroadcastInner(string op, Tensor a, Tensor b)
    {
        if (b.Rank > a.Rank || !a.ShapeArray.AsSpan(a.Rank - b.Rank).SequenceEqual(b.ShapeArray))
        {
            ThrowShapes(op, a, b, "the second shape must equal the first or be a suffix of it");
        }

        return b.Length;
    }

    /// <summary>Sum in double precision (eight float lanes widened into two double accumulators, fixed order).</summary>
    private static double SumDouble(ReadOnlySpan<float> x) => SumDouble(x, squares: false);

    /// <summary>Sum, or sum of squares, of <paramref name="x"/> accumulated in double in a fixed order.</summary>
    private static double SumDouble(ReadOnlySpan<float> x, bool squares)
    {
        int i = 0;
        double s = 0;
        if (Vector256.IsHardwareAccelerated && x.Length >= Vector256<float>.Count)
        {
            var lo = Vector256<double>.Zero;
            var hi = Vector256<double>.Zero;
            ref float p = ref MemoryMarshal.GetReference(x);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var (a, b) = Vector256.Widen(Vector256.LoadUnsafe(ref p, (nuint)i));
                lo += squares ? a * a : a;
                hi += squares ? b * b : b;
            }

            s = Vector256.Sum(lo + hi);
        }

        for (; i < x.Length; i++)
        {
            double v = x[i];
            s += squares ? v * v : v;
        }

        return s;
    }
}
