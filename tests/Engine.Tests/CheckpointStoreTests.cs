using System.Security.Cryptography;
using Attribution.Engine.IO;
using Attribution.Engine.Models;

namespace Attribution.Engine.Tests;

/// <summary>The one checkpoint loader: architecture string, file URI, checksum and safetensors.</summary>
public class CheckpointStoreTests
{
    private static (string Uri, string Checksum, float[] Theta) Write(string dir, Mlp mlp)
    {
        var path = Path.Combine(dir, "model.safetensors");
        Safetensors.Write(path, mlp.Parameters);
        var checksum = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
        return (new Uri(path).AbsoluteUri, checksum, mlp.ToFlat());
    }

    [Fact]
    public void A_verified_checkpoint_loads_into_a_model_of_its_architecture()
    {
        var dir = Directory.CreateTempSubdirectory("store").FullName;
        try
        {
            var mlp = new Mlp([5, 4, 3], seed: 2);
            var (uri, checksum, theta) = Write(dir, mlp);
            var model = CheckpointStore.Load(uri, checksum, mlp.Architecture);
            Assert.Equal("mlp:5-4-3", model.Architecture);
            Assert.Equal(theta, CheckpointStore.LoadFlat(uri, checksum, "mlp:5-4-3"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_changed_file_a_wrong_architecture_a_non_file_uri_and_an_unknown_architecture_fail_with_what_to_fix()
    {
        var dir = Directory.CreateTempSubdirectory("store").FullName;
        try
        {
            var (uri, checksum, _) = Write(dir, new Mlp([5, 4, 3], seed: 2));
            var e = Assert.Throws<CheckpointException>(() => CheckpointStore.Load(uri, "sha256:00", "mlp:5-4-3"));
            Assert.Contains("changed after it was published", e.Message, StringComparison.Ordinal);
            e = Assert.Throws<CheckpointException>(() => CheckpointStore.Load(uri, checksum, "mlp:5-6-3"));
            Assert.Contains("mlp:5-6-3", e.Message, StringComparison.Ordinal);
            e = Assert.Throws<CheckpointException>(() => CheckpointStore.Load("http://host/x.safetensors", checksum, "mlp:5-4-3"));
            Assert.Contains("file://", e.Message, StringComparison.Ordinal);
            e = Assert.Throws<CheckpointException>(() => CheckpointStore.Create("cnn:3"));
            Assert.Contains("mlp:<widths", e.Message, StringComparison.Ordinal);
            Assert.Throws<CheckpointException>(() => CheckpointStore.Create("mlp:5-x-3"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
