using System.Diagnostics.CodeAnalysis;
using Attribution.Engine.Tensors;

namespace Attribution.Engine.Autograd;

/// <summary>
/// A define-by-run computation graph with reverse mode (a tape replayed by <see cref="Backward(Tensor)"/>) and forward
/// mode (every tensor may carry a tangent; ops propagate tangents as they run, so a JVP needs no backward pass).
/// </summary>
/// <remarks>
/// <para>Buffers come from a pool owned by the graph: call <see cref="Reset"/> between steps and the next step reuses the
/// same arrays, so a training loop allocates almost nothing per step. Tensors from before a reset must not be used.</para>
/// <para>Everything is single-threaded with fixed loop orders (BLAS aside), so the same inputs give the same bits.</para>
/// <para>Not thread-safe; use one graph per thread.</para>
/// </remarks>
public sealed partial class Graph
{
    private readonly Dictionary<int, Stack<float[]>> _pool = [];
    private readonly List<float[]> _rented = [];
    private readonly Dictionary<int, Stack<int[]>> _intPool = [];
    private readonly List<int[]> _rentedInts = [];
    private readonly List<Action> _tape = [];
    private readonly Dictionary<Parameter, float[]> _parameterTangents = new(ReferenceEqualityComparer.Instance);

    /// <summary>Creates a graph.</summary>
    /// <param name="recordBackward">Record ops for <see cref="Backward(Tensor)"/>; false for inference and pure forward mode.</param>
    public Graph(bool recordBackward = true) => RecordBackward = recordBackward;

    /// <summary>Whether ops are recorded for a backward pass.</summary>
    public bool RecordBackward { get; set; }

    /// <summary>Number of ops recorded on the tape since the last reset.</summary>
    public int TapeLength => _tape.Count;

    /// <summary>
    /// Sets the forward-mode tangent (direction) of a parameter; tensors made by <see cref="Param"/> after this call carry
    /// it. Pass null to remove. The array is used by reference (not copied) and must match the parameter's length.
    /// </summary>
    public void SetTangent(Parameter parameter, float[]? tangent)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        if (tangent is null)
        {
            _parameterTangents.Remove(parameter);
            return;
        }

        if (tangent.Length != parameter.Count)
        {
            throw new ArgumentException($"SetTangent: tangent for '{parameter.Name}' has {tangent.Length} values, parameter has {parameter.Count}.");
        }

        _parameterTangents[parameter] = tangent;
    }

    /// <summary>Removes all parameter tangents.</summary>
    public void ClearTangents() => _parameterTangents.Clear();

    /// <summary>
    /// A tensor over a parameter's values (no copy). When recording, its gradient is the parameter's
    /// <see cref="Parameter.Grad"/>, so backward accumulates into it; its tangent is the one set by <see cref="SetTangent"/>.
    /// </summary>
    public Tensor Param(Parameter parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        _parameterTangents.TryGetValue(parameter, out var tangent);
        return new Tensor([.. parameter.Shape], parameter.Data, RecordBackward ? parameter.Grad : null, tangent);
    }

    /// <summary>A tensor over caller-owned arrays (no copy); it requires grad only when <paramref name="grad"/> is given.</summary>
    public static Tensor Wrap(float[] data, int[] shape, float[]? grad = null, float[]? tangent = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        int n = Tensor.CheckedLength(shape);
        if (data.Length != n || (grad is not null && grad.Length != n) || (tangent is not null && tangent.Length != n))
        {
            throw new ArgumentException($"Wrap: shape {Tensor.ShapeString(shape)} needs {n} values; data has {data.Length}, grad {grad?.Length}, tangent {tangent?.Length}.");
        }

        return new Tensor((int[])shape.Clone(), data, grad, tangent);
    }

    /// <summary>A constant tensor holding a copy of <paramref name="values"/> (no grad, no tangent).</summary>
    public Tensor Constant(ReadOnlySpan<float> values, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        int n = Tensor.CheckedLength(shape);
        if (values.Length != n)
        {
            throw new ArgumentException($"Constant: shape {Tensor.ShapeString(shape)} needs {n} values, got {values.Length}.");
        }

        var data = Rent(n, clear: false);
        values.CopyTo(data);
        return new Tensor((int[])shape.Clone(), data, null, null);
    }

    /// <summary>Runs the tape backwards from a scalar: its gradient is seeded with 1.</summary>
    public void Backward(Tensor output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.Length != 1)
        {
            throw new ArgumentException($"Backward: output of shape {output} is not a scalar; pass a seed gradient.");
        }

        Backward(output, [1f]);
    }

    /// <summary>Runs the tape backwards, seeding <paramref name="output"/>'s gradient with <paramref name="seed"/> (a vector-Jacobian product).</summary>
    public void Backward(Tensor output, ReadOnlySpan<float> seed)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (!RecordBackward || output.Grad is null)
        {
            throw new InvalidOperationException("Backward: the output does not require grad (was the graph recording, and does it depend on a parameter or a tensor with grad?).");
        }

        if (seed.Length != output.Length)
        {
            throw new ArgumentException($"Backward: seed has {seed.Length} values, output {output} has {output.Length}.");
        }

        System.Numerics.Tensors.TensorPrimitives.Add(output.Grad, seed, output.Grad);
        for (int i = _tape.Count - 1; i >= 0; i--)
        {
            _tape[i]();
        }

        _tape.Clear();
    }

    /// <summary>Forgets the tape and returns every pooled buffer for reuse by the next step.</summary>
    public void Reset()
    {
        _tape.Clear();
        // Push in reverse so the next step, renting in the same order, gets the same arrays back.
        for (int i = _rented.Count - 1; i >= 0; i--)
        {
            var buffer = _rented[i];
            if (!_pool.TryGetValue(buffer.Length, out var stack))
            {
                stack = new Stack<float[]>();
                _pool[buffer.Length] = stack;
            }

            stack.Push(buffer);
        }

        _rented.Clear();
        for (int i = _rentedInts.Count - 1; i >= 0; i--)
        {
            var buffer = _rentedInts[i];
            if (!_intPool.TryGetValue(buffer.Length, out var stack))
            {
                stack = new Stack<int[]>();
                _intPool[buffer.Length] = stack;
            }

            stack.Push(buffer);
        }

        _rentedInts.Clear();
    }

    /// <summary>A pooled copy of <paramref name="values"/> (token ids, targets) that a backward closure keeps until
    /// <see cref="Reset"/>.</summary>
    private int[] RentCopy(ReadOnlySpan<int> values)
    {
        var buffer = _intPool.TryGetValue(values.Length, out var stack) && stack.Count > 0 ? stack.Pop() : new int[values.Length];
        values.CopyTo(buffer);
        _rentedInts.Add(buffer);
        return buffer;
    }

    /// <summary>A pooled buffer of exactly <paramref name="length"/> floats, returned to the pool by <see cref="Reset"/>.</summary>
    public float[] Rent(int length, bool clear)
    {
        float[] buffer;
        if (_pool.TryGetValue(length, out var stack) && stack.Count > 0)
        {
            buffer = stack.Pop();
            if (clear)
            {
                Array.Clear(buffer);
            }
        }
        else
        {
            buffer = length == 0 ? [] : new float[length];
        }

        _rented.Add(buffer);
        return buffer;
    }

    private void Record(Action backward) => _tape.Add(backward);

    private bool NeedsGrad(Tensor a) => RecordBackward && a.RequiresGrad;

    private bool NeedsGrad(Tensor a, Tensor b) => RecordBackward && (a.RequiresGrad || b.RequiresGrad);

    private bool NeedsGrad(Tensor a, Tensor? b, Tensor? c) =>
        RecordBackward && (a.RequiresGrad || (b?.RequiresGrad ?? false) || (c?.RequiresGrad ?? false));

    /// <summary>A fresh output tensor: values uninitialised, gradient zeroed when needed, tangent uninitialised when needed.</summary>
    private Tensor NewTensor(int[] shape, bool grad, bool tangent)
    {
        int n = Tensor.CheckedLength(shape);
        return new Tensor(shape, Rent(n, clear: false), grad ? Rent(n, clear: true) : null, tangent ? Rent(n, clear: false) : null);
    }

    private static void CheckSameShape(string op, Tensor a, Tensor b)
    {
        if (!a.ShapeArray.AsSpan().SequenceEqual(b.ShapeArray))
        {
            ThrowShapes(op, a, b);
        }
    }

    [DoesNotReturn]
    private static void ThrowShapes(string op, Tensor a, Tensor b, string? detail = null) =>
        throw new ArgumentException($"{op}: incompatible shapes {Tensor.ShapeString(a.Shape)} and {Tensor.ShapeString(b.Shape)}{(detail is null ? "." : ": " + detail)}");

    [DoesNotReturn]
    private static void ThrowShape(string op, Tensor a, string detail) =>
        throw new ArgumentException($"{op}: bad shape {Tensor.ShapeString(a.Shape)}: {detail}");
}
