namespace Attribution.Engine;

/// <summary>
/// A named, trainable float32 tensor: its values and the gradient accumulated into it. Shapes are row-major.
/// Optimisers, checkpoints (safetensors) and attribution methods all see a model as an ordered list of these.
/// </summary>
public sealed class Parameter
{
    /// <summary>Creates a zero-initialised parameter.</summary>
    public Parameter(string name, params int[] shape)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (var d in shape)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(d, nameof(shape));
            count *= d;
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Array.MaxLength, nameof(shape));
        Name = name;
        Shape = (int[])shape.Clone();
        Data = new float[count];
        Grad = new float[count];
    }

    /// <summary>Stable name, used as the safetensors key (PyTorch-style, e.g. <c>layers.0.weight</c>).</summary>
    public string Name { get; }

    /// <summary>Row-major shape.</summary>
    public IReadOnlyList<int> Shape { get; }

    /// <summary>Values, row-major.</summary>
    public float[] Data { get; }

    /// <summary>Accumulated gradient, same layout as <see cref="Data"/>.</summary>
    public float[] Grad { get; }

    /// <summary>Number of elements.</summary>
    public int Count => Data.Length;

    /// <summary>Zeroes the gradient.</summary>
    public void ZeroGrad() => Array.Clear(Grad);
}
