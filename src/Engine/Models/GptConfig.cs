namespace Attribution.Engine.Models;

/// <summary>Shape of a <see cref="Gpt"/>.</summary>
/// <param name="VocabSize">Token vocabulary (256 for byte-level).</param>
/// <param name="Context">Maximum sequence length (positions).</param>
/// <param name="DModel">Residual width C.</param>
/// <param name="Heads">Attention heads; must divide <paramref name="DModel"/>.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="TiedHead">Output head shares the token embedding (no <c>lm_head.weight</c>).</param>
/// <param name="MlpRatio">MLP hidden width as a multiple of C.</param>
public sealed record GptConfig(int VocabSize = 256, int Context = 64, int DModel = 128, int Heads = 4, int Layers = 4,
    bool TiedHead = true, int MlpRatio = 4)
{
    /// <summary>Throws when the configuration cannot describe a model.</summary>
    public void Validate()
    {
        if (VocabSize <= 0 || Context <= 0 || DModel <= 0 || Heads <= 0 || Layers < 0 || MlpRatio <= 0)
        {
            throw new ArgumentException($"GptConfig: sizes must be positive: {this}.");
        }

        if (DModel % Heads != 0)
        {
            throw new ArgumentException($"GptConfig: {Heads} heads do not divide d_model {DModel}.");
        }
    }
}
