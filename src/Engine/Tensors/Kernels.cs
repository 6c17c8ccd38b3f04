using System.Diagnostics.CodeAnalysis;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Attribution.Engine.Tensors;

/// <summary>
/// Element-wise kernels that <see cref="TensorPrimitives"/> lacks: GELU (tanh approximation, as PyTorch's
/// <c>gelu(approximate='tanh')</c>) and the fused backward/forward-mode steps of ReLU and GELU. Every kernel has the shape
/// <c>(ReadOnlySpan&lt;float&gt; inputs..., Span&lt;float&gt; destination)</c>, validates lengths first, and runs a
/// <see cref="Vector256"/> body with a scalar tail.
/// </summary>
public static class Kernels
{
    /// <summary>sqrt(2/pi), the GELU tanh-approximation constant.</summary>
    public const float GeluC = 0.7978845608028654f;

    /// <summary>Cubic coefficient of the GELU tanh approximation.</summary>
    public const float GeluA = 0.044715f;

    /// <summary>
    /// <c>destination[i] = x[i] &gt; 0 ? dy[i] : 0</c> (ReLU's backward and forward-mode step; with
    /// <paramref name="accumulate"/> the result is added to destination).
    /// </summary>
    public static void ReluMask(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> destination, bool accumulate)
    {
        CheckSameLength(nameof(ReluMask), x.Length, dy.Length, destination.Length);
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float pg = ref MemoryMarshal.GetReference(dy);
        ref float pd = ref MemoryMarshal.GetReference(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var vx = Vector256.LoadUnsafe(ref px, (nuint)i);
                var vg = Vector256.LoadUnsafe(ref pg, (nuint)i);
                var r = Vector256.ConditionalSelect(Vector256.GreaterThan(vx, Vector256<float>.Zero), vg, Vector256<float>.Zero);
                if (accumulate)
                {
                    r += Vector256.LoadUnsafe(ref pd, (nuint)i);
                }

                r.StoreUnsafe(ref pd, (nuint)i);
            }
        }

        for (; i < x.Length; i++)
        {
            float r = x[i] > 0f ? dy[i] : 0f;
            destination[i] = accumulate ? destination[i] + r : r;
        }
    }

    /// <summary>
    /// <c>destination[i] += source[i]</c>: <see cref="TensorPrimitives.Add(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float})"/>'s
    /// bits without its per-call dispatch, which dominates on the short rows (a head's 16 values, a 64-wide bias) that the
    /// backward passes add one at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AddTo(ReadOnlySpan<float> source, Span<float> destination)
    {
        CheckSameLength(nameof(AddTo), source.Length, destination.Length, destination.Length);
        ref float ps = ref MemoryMarshal.GetReference(source);
        ref float pd = ref MemoryMarshal.GetReference(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= source.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                (Vector256.LoadUnsafe(ref pd, (nuint)i) + Vector256.LoadUnsafe(ref ps, (nuint)i)).StoreUnsafe(ref pd, (nuint)i);
            }
        }

        for (; i < source.Length; i++)
        {
            Unsafe.Add(ref pd, i) += Unsafe.Add(ref ps, i);
        }
    }

    /// <summary>
    /// Column sums: <c>destination[j] += Σ_r rows[r·n + j]</c> for the <paramref name="count"/> rows of
    /// <paramref name="rows"/> (n = destination's length), added row by row in order (a bias gradient: the same bits as one
    /// <see cref="TensorPrimitives"/> add per row).
    /// </summary>
    public static void AddRows(ReadOnlySpan<float> rows, int count, Span<float> destination)
    {
        int n = destination.Length;
        if (count < 0 || rows.Length < (long)count * n)
        {
            throw new ArgumentException($"AddRows: {count} rows of {n} need {(long)count * n} values, got {rows.Length}.");
        }

        for (int r = 0; r < count; r++)
        {
            AddTo(rows.Slice(r * n, n), destination);
        }
    }

    /// <summary>
    /// GELU forward with the tanh approximation. <paramref name="tanhOut"/> receives
    /// <c>tanh(sqrt(2/pi) (x + 0.044715 x^3))</c>, which the backward and forward-mode steps reuse.
    /// </summary>
    public static void Gelu(ReadOnlySpan<float> x, Span<float> tanhOut, Span<float> destination)
    {
        CheckSameLength(nameof(Gelu), x.Length, tanhOut.Length, destination.Length);
        if (Overlaps(x, tanhOut))
        {
            ThrowOverlap(nameof(Gelu));
        }

        // One pass: 0.5 x (1 + tanh u) = x s with s = sigmoid(2u) = 1 / (1 + exp(-2u)), and tanh u = 2 s - 1; exp by
        // ExpVector. (TensorPrimitives.Tanh plus six array passes cost several times more.)
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float pt = ref MemoryMarshal.GetReference(tanhOut);
        ref float pd = ref MemoryMarshal.GetReference(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var one = Vector256<float>.One;
            var a = Vector256.Create(GeluA);
            var m2c = Vector256.Create(-2f * GeluC);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.LoadUnsafe(ref px, (nuint)i);
                var e = ExpVector(m2c * v * (one + (a * v * v)));
                var sig = one / (one + e);
                (sig + sig - one).StoreUnsafe(ref pt, (nuint)i);
                (v * sig).StoreUnsafe(ref pd, (nuint)i);
            }
        }

        for (; i < x.Length; i++)
        {
            float v = x[i];
            float sig = 1f / (1f + MathF.Exp(-2f * GeluC * v * (1f + (GeluA * v * v))));
            tanhOut[i] = sig + sig - 1f;
            destination[i] = v * sig;
        }
    }

    /// <summary>
    /// exp(x) per lane: x = n ln2 + r with |r| ≤ ln2/2 (ln2 split in two for exactness), exp(r) by its degree-6 Taylor
    /// polynomial (relative error below 2e-7 on that interval), times 2^n built in the exponent bits. Inputs are clamped
    /// to [-87.3, 88.3], so the result is finite (below 2.4e38) and at least 1.2e-38 (never a denormal, never NaN for finite input).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> ExpVector(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-87.3f)), Vector256.Create(88.3f));
        var n = Vector256.Floor((x * Vector256.Create(1.44269504088896341f)) + Vector256.Create(0.5f));
        var r = x - (n * Vector256.Create(0.693359375f)) - (n * Vector256.Create(-2.12194440e-4f));
        var p = Vector256.Create(1f / 720f);
        p = (p * r) + Vector256.Create(1f / 120f);
        p = (p * r) + Vector256.Create(1f / 24f);
        p = (p * r) + Vector256.Create(1f / 6f);
        p = (p * r) + Vector256.Create(0.5f);
        p = (p * r) + Vector256<float>.One;
        p = (p * r) + Vector256<float>.One;
        var scale = Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23).AsSingle();
        return p * scale;
    }

    /// <summary>
    /// Fused GELU derivative times an incoming vector: <c>destination[i] (+)= gelu'(x[i]) * dy[i]</c>, given the
    /// <paramref name="tanhU"/> saved by <see cref="Gelu"/>. Serves backward (dy = output gradient) and forward mode
    /// (dy = input tangent).
    /// </summary>
    public static void GeluDerivativeMultiply(ReadOnlySpan<float> x, ReadOnlySpan<float> tanhU, ReadOnlySpan<float> dy,
        Span<float> destination, bool accumulate)
    {
        CheckSameLength(nameof(GeluDerivativeMultiply), x.Length, tanhU.Length, dy.Length);
        CheckSameLength(nameof(GeluDerivativeMultiply), x.Length, destination.Length, destination.Length);
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float pt = ref MemoryMarshal.GetReference(tanhU);
        ref float pg = ref MemoryMarshal.GetReference(dy);
        ref float pd = ref MemoryMarshal.GetReference(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var half = Vector256.Create(0.5f);
            var one = Vector256.Create(1f);
            var c = Vector256.Create(GeluC);
            var a3 = Vector256.Create(3f * GeluA);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var vx = Vector256.LoadUnsafe(ref px, (nuint)i);
                var vt = Vector256.LoadUnsafe(ref pt, (nuint)i);
                var vg = Vector256.LoadUnsafe(ref pg, (nuint)i);
                // d/dx 0.5 x (1 + t) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)
                var du = c * (one + (a3 * vx * vx));
                var d = (half * (one + vt)) + (half * vx * (one - (vt * vt)) * du);
                var r = d * vg;
                if (accumulate)
                {
                    r += Vector256.LoadUnsafe(ref pd, (nuint)i);
                }

                r.StoreUnsafe(ref pd, (nuint)i);
            }
        }

        for (; i < x.Length; i++)
        {
            float r = GeluDerivativeScalar(x[i], tanhU[i]) * dy[i];
            destination[i] = accumulate ? destination[i] + r : r;
        }
    }

    /// <summary>Scalar GELU derivative given x and the saved tanh term.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float GeluDerivativeScalar(float x, float t)
    {
        float du = GeluC * (1f + (3f * GeluA * x * x));
        return (0.5f * (1f + t)) + (0.5f * x * (1f - (t * t)) * du);
    }

    private static bool Overlaps(ReadOnlySpan<float> a, Span<float> b) => a.Overlaps(b);

    private static void CheckSameLength(string op, int a, int b, int c)
    {
        if (a != b || a != c)
        {
            ThrowLength(op, a, b, c);
        }
    }

    [DoesNotReturn]
    private static void ThrowLength(string op, int a, int b, int c) =>
        throw new ArgumentException($"{op}: span lengths differ ({a}, {b}, {c}).");

    [DoesNotReturn]
    private static void ThrowOverlap(string op) =>
        throw new ArgumentException($"{op}: input and scratch spans overlap.");
}
