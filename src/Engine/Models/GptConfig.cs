namespace Attribution.Engine.Models;

/// <summary>Shape of a <see cref="Gpt"/> (the fields of a Hugging Face <c>GPT2Config</c> that change the maths).</summary>
/// <param name="VocabSize">Token vocabulary (<c>vocab_size</c>; 259 for the byte tokenizer, 50257 for GPT-2's BPE).</param>
/// <param name="Context">Maximum sequence length (<c>n_positions</c>).</param>
/// <param name="DModel">Residual width C (<c>n_embd</c>).</param>
/// <param name="Heads">Attention heads (<c>n_head</c>); must divide <paramref name="DModel"/>.</param>
/// <param name="Layers">Transformer blocks (<c>n_layer</c>).</param>
/// <param name="TiedHead">Output head shares the token embedding (<c>tie_word_embeddings</c>; no <c>lm_head.weight</c>).</param>
/// <param name="MlpRatio">MLP hidden width as a multiple of C (<c>n_inner</c> / <c>n_embd</c>; GPT-2 uses 4).</param>
/// <param name="LayerNormEpsilon">LayerNorm epsilon (<c>layer_norm_epsilon</c>; GPT-2 uses 1e-5).</param>
public sealed record GptConfig(int VocabSize = 256, int Context = 64, int DModel = 128, int Heads = 4, int Layers = 4,
    bool TiedHead = true, int MlpRatio = 4, float LayerNormEpsilon = 1e-5f)
{
    /// <summary>GPT-2 small's shape (124M parameters): vocabulary 50257, 1024 positions, width 768, 12 heads, 12 layers.</summary>
    public static GptConfig Gpt2Small { get; } = new(VocabSize: 50257, Context: 1024, DModel: 768, Heads: 12, Layers: 12);

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

        if (!(LayerNormEpsilon > 0))
        {
            throw new ArgumentException($"GptConfig: the LayerNorm epsilon must be positive, got {LayerNormEpsilon}.");
        }
    }
}
