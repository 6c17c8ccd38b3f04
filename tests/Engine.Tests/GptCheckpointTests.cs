using Attribution.Engine.IO;
using Attribution.Engine.Models;

namespace Attribution.Engine.Tests;

/// <summary>The Hugging Face GPT-2 checkpoint layout: names, Conv1D orientation, config.json, and clear refusals.</summary>
public sealed class GptCheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gpt-ckpt-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static SafetensorsContent Content(IEnumerable<(string Name, int[] Shape, float[] Data)> tensors) =>
        Safetensors.Parse(Safetensors.Serialize(tensors.Select(t => (t.Name, (IReadOnlyList<int>)t.Shape, (ReadOnlyMemory<float>)t.Data)).ToArray()), "ckpt");

    [Fact]
    public void SavedFileHasExactlyTheNamesShapesAndOrderOfTheTransformersFile()
    {
        // The committed file was written from GPT2LMHeadModel's state dict (bench/peers/gpt2_torch.py); buffers aside,
        // ours must carry the same tensors in the same order with the same shapes.
        var reference = Safetensors.Read(ReferenceFiles.Path("gpt2_tiny.safetensors"));
        var expected = reference.Tensors.Where(t => t.IsFloat && !t.Name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)).ToArray();
        var model = GptCheckpoint.Load(ReferenceFiles.Path("gpt2_tiny.safetensors"), GptTests.TinyConfig());
        GptCheckpoint.Save(_dir, model);
        var ours = Safetensors.Read(Path.Combine(_dir, GptCheckpoint.WeightsFile));
        Assert.Equal(expected.Select(t => t.Name), ours.Tensors.Select(t => t.Name));
        Assert.Equal(expected.Select(t => string.Join('x', t.Shape)), ours.Tensors.Select(t => string.Join('x', t.Shape)));
        Assert.Equal("[8, 24]", $"[{string.Join(", ", ours.Find("transformer.h.0.attn.c_attn.weight")!.Shape)}]");
        Assert.Equal("pt", ours.Metadata["format"]);
        foreach (var t in expected)
        {
            Assert.Equal(t.Data, ours.Find(t.Name)!.Data);
        }

        // config.json round trip, and the directory form of Load gives the same bits.
        Assert.Equal(model.Config, GptCheckpoint.ReadConfig(Path.Combine(_dir, GptCheckpoint.ConfigFile)));
        var again = GptCheckpoint.Load(_dir);
        Assert.Equal(model.Parameters.SelectMany(p => p.Data), again.Parameters.SelectMany(p => p.Data));
    }

    [Fact]
    public void ConvWeightsAreTransposedNotReinterpreted()
    {
        var model = new Gpt(new GptConfig(VocabSize: 5, Context: 3, DModel: 4, Heads: 2, Layers: 1), seed: 2);
        var w = model.Parameters.Single(p => p.Name == "transformer.h.0.mlp.c_fc.weight"); // [16, 4] in memory
        var exported = GptCheckpoint.Export(model).Single(t => t.Name == w.Name);
        Assert.Equal([4, 16], exported.Shape);
        for (int o = 0; o < 16; o++)
        {
            for (int i = 0; i < 4; i++)
            {
                Assert.Equal(w.Data[(o * 4) + i], exported.Data[(i * 16) + o]);
            }
        }
    }

    [Fact]
    public void UntiedHeadIsWrittenAndRequired()
    {
        var config = new GptConfig(VocabSize: 7, Context: 4, DModel: 4, Heads: 1, Layers: 1, TiedHead: false);
        var model = new Gpt(config, seed: 3);
        GptCheckpoint.Save(_dir, model);
        Assert.NotNull(Safetensors.Read(Path.Combine(_dir, GptCheckpoint.WeightsFile)).Find("lm_head.weight"));
        Assert.Contains("\"tie_word_embeddings\": false", File.ReadAllText(Path.Combine(_dir, GptCheckpoint.ConfigFile)), StringComparison.Ordinal);
        var back = GptCheckpoint.Load(_dir);
        Assert.Equal(model.Parameters[^1].Data, back.Parameters[^1].Data);
        var withoutHead = Content(GptCheckpoint.Export(model).Where(t => t.Name != "lm_head.weight"));
        var e = Assert.Throws<SafetensorsException>(() => GptCheckpoint.LoadInto(new Gpt(config, seed: 0), withoutHead, "ckpt"));
        Assert.Equal("lm_head.weight", e.Tensor);
        Assert.Contains("missing", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MismatchedCheckpointsNameTheTensorTheExpectedAndTheFoundShape_AndLeaveTheModelUntouched()
    {
        var small = new Gpt(new GptConfig(VocabSize: 7, Context: 4, DModel: 4, Heads: 2, Layers: 1), seed: 1);
        var target = new Gpt(new GptConfig(VocabSize: 7, Context: 4, DModel: 8, Heads: 2, Layers: 1), seed: 1);
        var before = target.Parameters.SelectMany(p => p.Data).ToArray();
        var e = Assert.Throws<SafetensorsException>(() => GptCheckpoint.LoadInto(target, Content(GptCheckpoint.Export(small)), "ckpt"));
        Assert.Equal("transformer.wte.weight", e.Tensor);
        Assert.Contains("expected shape [7, 8]", e.Message, StringComparison.Ordinal);
        Assert.Contains("found [7, 4]", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, target.Parameters.SelectMany(p => p.Data));

        // A Conv1D weight saved in nn.Linear orientation (a common conversion slip) is caught by its shape.
        var slipped = GptCheckpoint.Export(small).Select(t => t.Name == "transformer.h.0.mlp.c_fc.weight" ? (t.Name, new[] { 16, 4 }, t.Data) : t);
        e = Assert.Throws<SafetensorsException>(() => GptCheckpoint.LoadInto(small, Content(slipped), "ckpt"));
        Assert.Equal("transformer.h.0.mlp.c_fc.weight", e.Tensor);
        Assert.Contains("expected shape [4, 16] (Conv1D [in, out])", e.Message, StringComparison.Ordinal);
        Assert.Contains("found [16, 4]", e.Message, StringComparison.Ordinal);

        // A deeper checkpoint has tensors the model does not: named, not silently dropped.
        var deep = new Gpt(new GptConfig(VocabSize: 7, Context: 4, DModel: 4, Heads: 2, Layers: 2), seed: 1);
        e = Assert.Throws<SafetensorsException>(() => GptCheckpoint.LoadInto(small, Content(GptCheckpoint.Export(deep)), "ckpt"));
        Assert.StartsWith("transformer.h.1.", e.Tensor, StringComparison.Ordinal);
        Assert.Contains("not part of a GPT-2 model", e.Message, StringComparison.Ordinal);

        // The same tensor with and without the prefix is ambiguous.
        var twice = GptCheckpoint.Export(small).Append(("wpe.weight", [4, 4], new float[16]));
        e = Assert.Throws<SafetensorsException>(() => GptCheckpoint.LoadInto(small, Content(twice), "ckpt"));
        Assert.Contains("appears twice", e.Message, StringComparison.Ordinal);

        // A tied model refuses an lm_head that is not the embedding.
        var head = GptCheckpoint.Export(small).Append(("lm_head.weight", [7, 4], Enumerable.Repeat(0.5f, 28).ToArray()));
        e = Assert.Throws<SafetensorsException>(() => GptCheckpoint.LoadInto(small, Content(head), "ckpt"));
        Assert.Equal("lm_head.weight", e.Tensor);
        Assert.Contains("tie_word_embeddings", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"vocab_size\":5,\"n_positions\":4,\"n_embd\":8,\"n_layer\":1}", "'n_head' must be an integer")]
    [InlineData("{\"vocab_size\":5,\"n_positions\":4,\"n_embd\":8,\"n_layer\":1,\"n_head\":2,\"activation_function\":\"gelu\"}", "activation_function 'gelu'")]
    [InlineData("{\"model_type\":\"llama\",\"vocab_size\":5,\"n_positions\":4,\"n_embd\":8,\"n_layer\":1,\"n_head\":2}", "model_type is 'llama'")]
    [InlineData("{\"vocab_size\":5,\"n_positions\":4,\"n_embd\":8,\"n_layer\":1,\"n_head\":3}", "3 heads do not divide")]
    [InlineData("{\"vocab_size\":5,\"n_positions\":4,\"n_embd\":8,\"n_layer\":1,\"n_head\":2,\"n_inner\":20}", "n_inner 20")]
    [InlineData("{\"vocab_size\":5,\"n_positions\":4,\"n_embd\":8,\"n_layer\":1,\"n_head\":2,\"scale_attn_by_inverse_layer_idx\":true}", "scale_attn")]
    public void UnsupportedConfigsAreRefusedNamingTheField(string json, string fragment)
    {
        var e = Assert.Throws<FormatException>(() => GptCheckpoint.ParseConfig(json, "config.json"));
        Assert.Contains(fragment, e.Message, StringComparison.Ordinal);
        Assert.Contains("config.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gpt2ConfigWithOlderFieldNamesParses()
    {
        var c = GptCheckpoint.ParseConfig("{\"vocab_size\":50257,\"n_ctx\":1024,\"n_embd\":768,\"n_layer\":12,\"n_head\":12,\"n_inner\":null,\"layer_norm_epsilon\":1e-05}", "gpt2");
        Assert.Equal(GptConfig.Gpt2Small, c);
    }

    [Fact]
    public void MissingConfigJsonIsAClearError()
    {
        File.Copy(ReferenceFiles.Path("gpt2_tiny.safetensors"), Path.Combine(_dir, GptCheckpoint.WeightsFile));
        var e = Assert.Throws<FileNotFoundException>(() => GptCheckpoint.Load(_dir));
        Assert.Contains("config.json", e.Message, StringComparison.Ordinal);
        Assert.Contains("n_head", e.Message, StringComparison.Ordinal);
    }
}
