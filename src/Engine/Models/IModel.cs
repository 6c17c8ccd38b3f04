namespace Attribution.Engine.Models;

/// <summary>Which scalar per example a value, gradient or tangent is taken of.</summary>
public enum ModelOutput
{
    /// <summary>
    /// The training loss of the example: cross-entropy <c>logsumexp(z) − z_y</c> for a classifier; for a language model
    /// the sequence's summed next-token negative log-likelihood (targets of -1 are ignored).
    /// </summary>
    Loss,

    /// <summary>Classifier margin <c>z_y − logsumexp(z_j, j ≠ y)</c> (TRAK's measurement; the product's query measurement).</summary>
    Margin,

    /// <summary>Log-likelihood of the example: <c>−Loss</c> (a language model's sequence log-likelihood).</summary>
    LogLikelihood,
}

/// <summary>
/// A batch of examples as a model takes it. A classifier reads <see cref="Inputs"/> ([Count, input width] floats) and
/// <see cref="Labels"/> ([Count] class indices); a language model reads <see cref="Tokens"/> ([Count, SequenceLength]
/// token ids) and <see cref="Labels"/> as next-token targets ([Count, SequenceLength], -1 ignored).
/// </summary>
public readonly record struct ModelBatch
{
    private ModelBatch(float[]? inputs, int[]? tokens, int[] labels, int count, int sequenceLength)
    {
        Inputs = inputs;
        Tokens = tokens;
        Labels = labels;
        Count = count;
        SequenceLength = sequenceLength;
    }

    /// <summary>Float inputs (classifiers), row-major [Count, width].</summary>
    public float[]? Inputs { get; }

    /// <summary>Token ids (language models), row-major [Count, SequenceLength].</summary>
    public int[]? Tokens { get; }

    /// <summary>Class labels [Count] or next-token targets [Count, SequenceLength].</summary>
    public int[] Labels { get; }

    /// <summary>Number of examples.</summary>
    public int Count { get; }

    /// <summary>Positions per example (1 for a classifier).</summary>
    public int SequenceLength { get; }

    /// <summary>
    /// The positions of sequence row <paramref name="row"/> up to and including its last one with a target (-1 targets
    /// are ignored): 0 for a row with no target; padding after the last target is left out.
    /// </summary>
    public int TargetExtent(int row)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)row, (uint)Count, nameof(row));
        var targets = Labels.AsSpan(row * SequenceLength, SequenceLength);
        for (int p = targets.Length - 1; p >= 0; p--)
        {
            if (targets[p] != -1)
            {
                return p + 1;
            }
        }

        return 0;
    }

    /// <summary>A classifier batch of <c>labels.Length</c> rows.</summary>
    public static ModelBatch Classification(float[] inputs, int[] labels)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        return new ModelBatch(inputs, null, labels, labels.Length, 1);
    }

    /// <summary>A language-model batch: <paramref name="tokens"/> and <paramref name="targets"/> are [count, sequenceLength].</summary>
    public static ModelBatch Sequences(int[] tokens, int[] targets, int count, int sequenceLength)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(targets);
        if (count < 0 || sequenceLength < 1 || tokens.Length != (long)count * sequenceLength || targets.Length != tokens.Length)
        {
            throw new ArgumentException($"a sequence batch of {count} x {sequenceLength} needs {(long)count * sequenceLength} tokens and targets; got {tokens.Length} and {targets.Length}.");
        }

        return new ModelBatch(null, tokens, targets, count, sequenceLength);
    }
}

/// <summary>
/// One model, one definition: the forward pass, the output functions, their reverse-mode gradients, forward-mode JVPs,
/// per-example gradient factors and the flat parameter layout. The trainer, the attribution methods and the services
/// ask a model for these and never re-derive them. Parameters travel as one flat vector θ in <see cref="Tensors"/>
/// order (the checkpoint contract); an instance holds one θ at a time and owns work buffers, so it is not thread-safe:
/// give each thread its own (<see cref="Clone"/>).
/// </summary>
public interface IModel
{
    /// <summary>Canonical architecture string, e.g. <c>mlp:784-128-64-10</c>; equal strings mean equal flat layouts.</summary>
    string Architecture { get; }

    /// <summary>Number of scalars p in θ.</summary>
    int ParameterCount { get; }

    /// <summary>The named tensors in flat order: name (PyTorch style), shape and offset in θ.</summary>
    IReadOnlyList<(string Name, int[] Shape, int Offset)> Tensors { get; }

    /// <summary>The live parameters (same order as <see cref="Tensors"/>), with their gradients.</summary>
    IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Sets θ from a flat vector.</summary>
    void LoadFrom(ReadOnlySpan<float> flat);

    /// <summary>Copies θ into a flat vector.</summary>
    void CopyTo(Span<float> flat);

    /// <summary>Copies the parameter gradients left by <see cref="LossAndBackward"/> into a flat vector.</summary>
    void CopyGradientTo(Span<float> flat);

    /// <summary>An independent model with the same θ.</summary>
    IModel Clone();

    /// <summary>Per-example values of <paramref name="output"/> ([batch.Count]), forward only.</summary>
    void Outputs(in ModelBatch batch, ModelOutput output, Span<float> values);

    /// <summary>
    /// The training step's loss and gradient: returns the mean training loss of the batch and <b>overwrites</b> every
    /// <see cref="Parameter.Grad"/> with its gradient.
    /// </summary>
    float LossAndBackward(in ModelBatch batch);

    /// <summary>
    /// Reverse mode: <c>gradient = Σ_i w_i ∇_θ f_i</c> (flat) for <paramref name="output"/> f, with w = 1 when
    /// <paramref name="weights"/> is empty; writes the per-example values into <paramref name="values"/> when not empty.
    /// </summary>
    void OutputGradient(in ModelBatch batch, ModelOutput output, ReadOnlySpan<float> weights, Span<float> gradient, Span<float> values);

    /// <summary>
    /// Forward mode: per-example values of <paramref name="output"/> and their directional derivatives
    /// <c>∇_θ f_i · v</c> along the flat direction <paramref name="direction"/>, without a backward pass.
    /// </summary>
    void OutputJvp(in ModelBatch batch, ModelOutput output, ReadOnlySpan<float> direction, Span<float> values, Span<float> tangents);

    /// <summary>
    /// Per-example gradients of <paramref name="output"/> in factored form (input activations and output gradients of
    /// every linear layer); see <see cref="GradientFactors"/> for which parameters the factors cover.
    /// </summary>
    GradientFactors PerExampleGradients(in ModelBatch batch, ModelOutput output);

    /// <summary>
    /// The same factors as <see cref="PerExampleGradients"/>, obtained in forward mode where the model has it (the MLP:
    /// no backward pass; what a query readout asks for); by default the reverse-mode ones.
    /// </summary>
    GradientFactors ForwardModeGradients(in ModelBatch batch, ModelOutput output) => PerExampleGradients(batch, output);
}
