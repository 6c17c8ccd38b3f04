using System.Buffers.Binary;
using System.Text;
using Attribution.Engine.IO;
using Attribution.Engine.Models;

namespace Attribution.Engine.Tests;

/// <summary>Safetensors round trips, a file written by Python, and hostile inputs.</summary>
public sealed class SafetensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("st-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] File(string header, int dataBytes)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        return bytes;
    }

    [Fact]
    public void MlpParametersRoundTripBitExactWithMetadataAndEightByteAlignedData()
    {
        var mlp = new Mlp([7, 5, 3], seed: 4);
        var path = Path.Combine(_dir, "model.safetensors");
        Safetensors.Write(path, mlp.Parameters, new Dictionary<string, string> { ["recipe"] = "x", ["format"] = "pt" });
        var bytes = System.IO.File.ReadAllBytes(path);
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes) % 8);
        var content = Safetensors.Read(path);
        Assert.Equal(mlp.Parameters.Select(p => p.Name), content.Tensors.Select(t => t.Name));
        Assert.Equal("x", content.Metadata["recipe"]);
        var copy = new Mlp(mlp.Layout);
        Safetensors.LoadInto(content, copy.Parameters, path);
        Assert.Equal(mlp.ToFlat(), copy.ToFlat());
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void FileWrittenByPythonFromTheFormatSpecReadsWithEveryDtype()
    {
        var content = Safetensors.Read(ReferenceFiles.Path("mlp_small.safetensors"));
        Assert.Equal("mlp_safetensors.py", content.Metadata["written_by"]);
        var w0 = content.Find("layers.0.weight")!;
        Assert.Equal([2, 3], w0.Shape);
        Assert.Equal([0.5f, -1.25f, 3f, 1e-3f, -0f, 65504f], w0.Data);
        Assert.Equal([(float)(Half)0.1f, (float)(Half)(-0.2f)], content.Find("layers.0.bias")!.Data);
        Assert.Equal([1f, -2.5f, 3.140625f], content.Find("extra.bf16")!.Data);
        Assert.Equal([1f / 3f, -2f], content.Find("layers.1.weight")!.Data);
        Assert.Equal("F64", content.Find("layers.1.weight")!.Dtype);
    }

    [Fact]
    public void TruncatedFilesAndHeaderLengthBeyondTheFileAreRejected()
    {
        var e = Assert.Throws<SafetensorsException>(() => Safetensors.Parse(new byte[5], "short.st"));
        Assert.Contains("short.st", e.Message, StringComparison.Ordinal);
        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
        var big = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(big, 9);
        Assert.Contains("runs past the end", Assert.Throws<SafetensorsException>(() => Safetensors.Parse(big, "f")).Message, StringComparison.Ordinal);
        BinaryPrimitives.WriteUInt64LittleEndian(big, ulong.MaxValue);
        Assert.Contains("exceeds the limit", Assert.Throws<SafetensorsException>(() => Safetensors.Parse(big, "f")).Message, StringComparison.Ordinal);
        var good = Safetensors.Serialize([("a", [2], new float[] { 1, 2 })]);
        var cut = Assert.Throws<SafetensorsException>(() => Safetensors.Parse(good.AsSpan(0, good.Length - 1), "cut.st"));
        Assert.Equal("a", cut.Tensor);
        Assert.Contains("cut.st", cut.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, "a", "needs 8 bytes")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "b", "overlap")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "a", "gap")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, null, "trailing")]
    [InlineData("{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "a", "not supported")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "a", "non-negative")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,400]}}", 4, "a", "needs 4 bytes")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", 4, "a", "run past")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "a", "data_offsets")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, null, "not valid JSON")]
    [InlineData("[1,2]", 0, null, "not a JSON object")]
    [InlineData("{\"__metadata__\":{\"k\":1}}", 0, null, "not a string")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[65536,65536],\"data_offsets\":[0,4]}}", 4, "a", "more elements")]
    public void MalformedHeadersRaiseOneExceptionNamingFileAndTensor(string header, int dataBytes, string? tensor, string fragment)
    {
        var e = Assert.Throws<SafetensorsException>(() => Safetensors.Parse(File(header, dataBytes), "bad.safetensors"));
        Assert.Equal(tensor, e.Tensor);
        Assert.Contains("bad.safetensors", e.Message, StringComparison.Ordinal);
        Assert.Contains(fragment, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadingACheckpointOfAnotherArchitectureNamesTheTensorAndBothShapes()
    {
        var small = new Mlp([4, 3, 2], seed: 1);
        var other = new Mlp([4, 5, 2], seed: 1);
        var content = Safetensors.Parse(Safetensors.Serialize(small.Parameters.Select(p => (p.Name, p.Shape, (ReadOnlyMemory<float>)p.Data)).ToArray()), "ckpt");
        var e = Assert.Throws<SafetensorsException>(() => Safetensors.LoadInto(content, other.Parameters, "ckpt"));
        Assert.Equal("layers.0.weight", e.Tensor);
        Assert.Contains("[3, 4]", e.Message, StringComparison.Ordinal);
        Assert.Contains("[5, 4]", e.Message, StringComparison.Ordinal);
        var deeper = new Mlp([4, 3, 2, 2], seed: 1);
        Assert.Equal("layers.2.weight", Assert.Throws<SafetensorsException>(() => Safetensors.LoadInto(content, deeper.Parameters, "ckpt")).Tensor);
        // Nothing was half-loaded into the rejected model.
        Assert.Equal(new Mlp([4, 5, 2], seed: 1).ToFlat(), other.ToFlat());
    }

    [Fact]
    public void RandomByteFlipsNeverCrashWithAnythingButSafetensorsException()
    {
        var good = Safetensors.Serialize([("w", [3, 2], new float[6]), ("b", [3], new float[3])], new Dictionary<string, string> { ["k"] = "v" });
        var rng = new Rng(17);
        for (int trial = 0; trial < 2000; trial++)
        {
            var bytes = (byte[])good.Clone();
            int flips = 1 + rng.NextInt(3);
            for (int f = 0; f < flips; f++)
            {
                bytes[rng.NextInt(Math.Min(bytes.Length, 8 + 140))] = (byte)rng.NextInt(256);
            }

            int len = rng.NextInt(4) == 0 ? rng.NextInt(bytes.Length) : bytes.Length;
            try
            {
                Safetensors.Parse(bytes.AsSpan(0, len), "fuzz");
            }
            catch (SafetensorsException)
            {
            }
        }
    }
}
