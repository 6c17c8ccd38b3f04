namespace Attribution.Engine.Tensors;

/// <summary>
/// A dense, row-major float32 tensor living in a <see cref="Autograd.Graph"/>: its values, and optionally the gradient
/// accumulated by a backward pass (<see cref="Grad"/>) and the forward-mode tangent (<see cref="Tangent"/>, the dual part
/// of a dual number). Tensors made by a graph borrow pooled buffers that are recycled when the graph is
/// <see cref="Autograd.Graph.Reset"/>; copy out what must outlive that.
/// </summary>
/// <remarks>
/// Storage is always contiguous; <see cref="Autograd.Graph.Reshape"/> is a zero-copy view that shares values, gradient
/// and tangent with its source, while transpose and slice copy (with autograd) because every kernel here wants
/// contiguous rows for BLAS and <c>TensorPrimitives</c>.
/// </remarks>
public sealed class Tensor
{
    private readonly int[] _shape;

    internal Tensor(int[] shape, float[] data, float[]? grad, float[]? tangent)
    {
        _shape = shape;
        Length = CheckedLength(shape);
        if (data.Length != Length)
        {
            throw new ArgumentException($"Tensor: data holds {data.Length} values but shape {ShapeString(shape)} needs {Length}.");
        }

        Data = data;
        Grad = grad;
        Tangent = tangent;
    }

    /// <summary>Row-major shape; rank 0 is a scalar.</summary>
    public IReadOnlyList<int> Shape => _shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>Number of elements.</summary>
    public int Length { get; }

    /// <summary>Values, row-major, exactly <see cref="Length"/> long.</summary>
    public float[] Data { get; }

    /// <summary>Gradient of the backward pass's seed with respect to this tensor; null when it does not require grad.</summary>
    public float[]? Grad { get; }

    /// <summary>Forward-mode tangent (directional derivative along the graph's input tangents); null when none flows here.</summary>
    public float[]? Tangent { get; }

    /// <summary>True when a backward pass will write a gradient for this tensor.</summary>
    public bool RequiresGrad => Grad is not null;

    /// <summary>Row-major strides, in elements.</summary>
    public int[] Strides()
    {
        var strides = new int[_shape.Length];
        int s = 1;
        for (int i = _shape.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= _shape[i];
        }

        return strides;
    }

    /// <summary>Size of dimension <paramref name="dim"/>; negative values count from the end.</summary>
    public int Dim(int dim) => _shape[NormalizeDim(dim, _shape.Length, "Dim")];

    /// <summary>The value of a scalar (or single-element) tensor.</summary>
    public float Item() => Length == 1 ? Data[0] : throw new InvalidOperationException($"Item: tensor of shape {ShapeString(_shape)} is not a single value.");

    /// <inheritdoc/>
    public override string ToString() => $"Tensor{ShapeString(_shape)}";

    internal int[] ShapeArray => _shape;

    /// <summary>Formats a shape as <c>[2, 3]</c>.</summary>
    public static string ShapeString(IReadOnlyList<int> shape) => "[" + string.Join(", ", shape) + "]";

    internal static int NormalizeDim(int dim, int rank, string op)
    {
        int d = dim < 0 ? dim + rank : dim;
        if ((uint)d >= (uint)rank)
        {
            throw new ArgumentOutOfRangeException(nameof(dim), $"{op}: dimension {dim} is out of range for rank {rank}.");
        }

        return d;
    }

    internal static int CheckedLength(IReadOnlyList<int> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentException($"Tensor: negative dimension in shape {ShapeString(shape)}.");
            }

            n *= d;
            if (n > Array.MaxLength)
            {
                throw new ArgumentException($"Tensor: shape {ShapeString(shape)} has more than {Array.MaxLength} elements.");
            }
        }

        return (int)n;
    }
}
