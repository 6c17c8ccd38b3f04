using Attribution.Engine.Models;

namespace Attribution.Attribution.Stride;

/// <summary>Where a steering operator acts (shared/docs/stride.md §3).</summary>
public enum SteeringForm
{
    /// <summary>Logit form: the logits are steered, <c>o + (B·h)ᵀ a_k</c>, a_k ∈ ℝ^{r×C} (the project page's equations).</summary>
    Logit,

    /// <summary>
    /// Residual form: the hidden layer's output is steered, <c>ẑ = z + (B·z)ᵀ a_k</c> with a_k ∈ ℝ^{r×H}, and the frozen layers
    /// after it and the head run on ẑ (the method figure; the spec's default for language models). Needs a model whose
    /// tail can run from that layer (<see cref="Engine.Models.IResidualStreamModel"/>: the GPT).
    /// </summary>
    Residual,
}

/// <summary>
/// How STRIDE's steering operators are shaped and trained (shared/docs/stride.md §3–4). The paper states rank 16 and a
/// middle layer; the loss weights, optimiser, steps and sketch size are not published, so the defaults here are our
/// reading ([R] in the spec) and were checked on FashionMNIST (docs/benchmarks/stride.md).
/// </summary>
public sealed record SteeringOptions
{
    /// <summary>Where the operators act: the logits (default) or the residual stream at <see cref="Layer"/>.</summary>
    public SteeringForm Form { get; init; } = SteeringForm.Logit;

    /// <summary>Rank r of the shared basis B (the paper: 16).</summary>
    public int Rank { get; init; } = 16;

    /// <summary>
    /// Hidden layer the basis reads, 0-based in forward order; -1 = the model's default (<see cref="IHiddenStateModel.DefaultHiddenLayer"/>:
    /// a classifier's last hidden layer, the spec's default for small classifiers; a transformer's block at 0.6 of its depth).
    /// </summary>
    public int Layer { get; init; } = -1;

    /// <summary>Full-batch Adam steps over all K subsets at once.</summary>
    public int Steps { get; init; } = 200;

    /// <summary>Adam learning rate.</summary>
    public float LearningRate { get; init; } = 0.01f;

    /// <summary>Weight β of the stability term (KL from the frozen model on a reference batch outside the subset).</summary>
    public float Stability { get; init; } = 1f;

    /// <summary>Weight κ of the linearity term (ridge residual of the sketched additive model over all K responses).</summary>
    public float Linearity { get; init; } = 0.1f;

    /// <summary>Sketch size q of the linearity term's JL projection of M (redrawn every step; must be below K to do anything).</summary>
    public int SketchSize { get; init; } = 64;

    /// <summary>Ridge γ of the linearity term, relative to the mean diagonal of M̃ᵀM̃.</summary>
    public float Ridge { get; init; } = 0.01f;

    /// <summary>Inputs per step on which all K responses are computed for the linearity term.</summary>
    public int LinearityInputs { get; init; } = 8;

    /// <summary>Reference examples per subset and step for the stability term; 0 = the subset's own size.</summary>
    public int ReferenceSize { get; init; }

    /// <summary>
    /// What a measurement is: <see cref="ModelOutput.Margin"/> (y = margin change, the product's classifier query
    /// measurement) or <see cref="ModelOutput.Loss"/> (y = loss decrease, the paper's §5 form; for a language model the
    /// change of the completion's log-likelihood). Positive means the operator helps. Null = the model's own: margin for
    /// a classifier, loss for a language model (which has no margin).
    /// </summary>
    public ModelOutput? Measure { get; init; }

    /// <summary>Seed of the basis initialisation, the reference draws, the linearity inputs and the sketches.</summary>
    public ulong Seed { get; init; } = 0x57E1;

    /// <summary>Throws with the offending option when a value is out of range.</summary>
    public void Validate()
    {
        Check(Rank >= 1, $"rank must be at least 1; got {Rank}.");
        Check(Layer >= -1, $"layer must be -1 (last hidden) or a hidden layer index ≥ 0; got {Layer}.");
        Check(Steps >= 0, $"steps must be ≥ 0; got {Steps}.");
        Check(float.IsFinite(LearningRate) && LearningRate > 0, $"lr must be a positive number; got {LearningRate}.");
        Check(float.IsFinite(Stability) && Stability >= 0, $"stability must be ≥ 0; got {Stability}.");
        Check(float.IsFinite(Linearity) && Linearity >= 0, $"linearity must be ≥ 0; got {Linearity}.");
        Check(SketchSize >= 1, $"sketch must be at least 1; got {SketchSize}.");
        Check(float.IsFinite(Ridge) && Ridge > 0, $"ridge must be positive; got {Ridge}.");
        Check(LinearityInputs >= 1, $"linearity-inputs must be at least 1; got {LinearityInputs}.");
        Check(ReferenceSize >= 0, $"reference must be ≥ 0; got {ReferenceSize}.");
        Check(Form == SteeringForm.Logit || Linearity == 0, $"form=residual trains with the fidelity and stability terms only; set linearity=0 (got {Linearity}).");
        Check(Measure is null or ModelOutput.Margin or ModelOutput.Loss, $"measure must be margin or loss; got {Measure}.");
    }

    private static void Check(bool ok, string message)
    {
        if (!ok)
        {
            throw new ArgumentException("SteeringOptions: " + message);
        }
    }
}
