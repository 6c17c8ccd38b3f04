using System.Buffers.Binary;
using System.Text.Json;

namespace Attribution.Engine.IO;

/// <summary>A safetensors file (or buffer) is malformed or does not fit what the caller expects.</summary>
public sealed class SafetensorsException : Exception
{
    /// <summary>Creates the exception; the message names the file and, where known, the tensor.</summary>
    public SafetensorsException(string source, string? tensor, string message, Exception? inner = null)
        : base(tensor is null ? $"{source}: {message}" : $"{source}: tensor '{tensor}': {message}", inner)
    {
        Source = source;
        Tensor = tensor;
    }

    /// <summary>The file (or buffer description) at fault.</summary>
    public new string Source { get; }

    /// <summary>The tensor at fault, when the problem is in one tensor.</summary>
    public string? Tensor { get; }
}

/// <summary>One tensor read from a safetensors file; floating-point tensors are converted to float32.</summary>
/// <param name="Name">The key.</param>
/// <param name="Dtype">The stored dtype (F32, F16, BF16, F64 are converted; integer and BOOL tensors, such as the
/// attention-mask buffers some checkpoints carry, are only sized and validated).</param>
/// <param name="Shape">Row-major shape.</param>
/// <param name="Data">Values converted to float32; empty when <see cref="IsFloat"/> is false.</param>
public sealed record SafeTensor(string Name, string Dtype, int[] Shape, float[] Data)
{
    /// <summary>True for the floating-point dtypes whose values are in <see cref="Data"/>.</summary>
    public bool IsFloat => Dtype is "F32" or "F16" or "BF16" or "F64";

    /// <summary>Number of elements (product of the shape).</summary>
    public long Count => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>The tensors (in data-offset order) and the <c>__metadata__</c> of a safetensors file.</summary>
/// <param name="Tensors">Tensors in data order.</param>
/// <param name="Metadata">The string-to-string metadata (empty when absent).</param>
public sealed record SafetensorsContent(IReadOnlyList<SafeTensor> Tensors, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>The tensor called <paramref name="name"/>, or null.</summary>
    public SafeTensor? Find(string name) => Tensors.FirstOrDefault(t => t.Name == name);
}

/// <summary>
/// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
/// header length N, N bytes of JSON <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}</c>,
/// then the data, offsets relative to its start. Writes F32; reads F32, F16, BF16 and F64 as float32 and sizes the integer
/// and BOOL dtypes without converting them (a model never loads those). Every length, offset and
/// shape is checked against the bytes present before use; writes are atomic (temp file + rename).
/// </summary>
public static class Safetensors
{
    /// <summary>Largest header accepted (the reference implementation's limit).</summary>
    public const int MaxHeaderBytes = 100_000_000;

    /// <summary>Writes parameters (name, shape, data) as F32, atomically.</summary>
    public static void Write(string path, IReadOnlyList<Parameter> parameters, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Write(path, parameters.Select(p => (p.Name, (IReadOnlyList<int>)p.Shape, (ReadOnlyMemory<float>)p.Data)).ToArray(), metadata);
    }

    /// <summary>Writes named float32 tensors in the given order, atomically.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, IReadOnlyList<int> Shape, ReadOnlyMemory<float> Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var bytes = Serialize(tensors, metadata);
        var full = Path.GetFullPath(path);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var f = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                f.Write(bytes);
                f.Flush(flushToDisk: true);
            }

            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp))
            {
                File.Delete(tmp);
            }
        }
    }

    /// <summary>The complete file contents for the given tensors.</summary>
    public static byte[] Serialize(IReadOnlyList<(string Name, IReadOnlyList<int> Shape, ReadOnlyMemory<float> Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var header = new MemoryStream();
        long offset = 0;
        using (var w = new Utf8JsonWriter(header))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    w.WriteString(k, v);
                }

                w.WriteEndObject();
            }

            foreach (var (name, shape, data) in tensors)
            {
                if (string.IsNullOrEmpty(name) || name == "__metadata__" || !names.Add(name))
                {
                    throw new ArgumentException($"Tensor name '{name}' is empty, reserved or duplicated.", nameof(tensors));
                }

                long count = 1;
                foreach (var d in shape)
                {
                    ArgumentOutOfRangeException.ThrowIfNegative(d, nameof(tensors));
                    count *= d;
                }

                if (count != data.Length)
                {
                    throw new ArgumentException($"Tensor '{name}' has shape [{string.Join(", ", shape)}] ({count} values) but {data.Length} values.", nameof(tensors));
                }

                w.WriteStartObject(name);
                w.WriteString("dtype", "F32");
                w.WriteStartArray("shape");
                foreach (var d in shape)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + 4 * count);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += 4 * count;
            }

            w.WriteEndObject();
        }

        // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
        int n = (int)header.Length;
        int padded = (n + 7) & ~7;
        var bytes = new byte[checked(8 + padded + offset)];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        header.GetBuffer().AsSpan(0, n).CopyTo(bytes.AsSpan(8));
        bytes.AsSpan(8 + n, padded - n).Fill((byte)' ');
        int pos = 8 + padded;
        foreach (var (_, _, data) in tensors)
        {
            var span = data.Span;
            for (int i = 0; i < span.Length; i++, pos += 4)
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(pos), span[i]);
            }
        }

        return bytes;
    }

    /// <summary>Reads and validates a file.</summary>
    public static SafetensorsContent Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Safetensors file '{path}' does not exist.", path);
        }

        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses and validates file contents; <paramref name="source"/> names them in errors.</summary>
    public static SafetensorsContent Parse(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.Length < 8)
        {
            throw Error(source, null, $"is {bytes.Length} bytes, shorter than the 8-byte header length (truncated file).");
        }

        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (n > MaxHeaderBytes)
        {
            throw Error(source, null, $"header length {n} exceeds the limit of {MaxHeaderBytes} bytes.");
        }

        if (n > (ulong)(bytes.Length - 8))
        {
            throw Error(source, null, $"header length {n} runs past the end of the {bytes.Length}-byte file (truncated file).");
        }

        var header = bytes.Slice(8, (int)n);
        var data = bytes[(8 + (int)n)..];
        var entries = new List<(string Name, string Dtype, int[] Shape, long Begin, long End)>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            var reader = new Utf8JsonReader(header, new JsonReaderOptions { MaxDepth = 8 });
            using var doc = JsonDocument.ParseValue(ref reader);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Error(source, null, "header is not a JSON object.");
            }

            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                    {
                        throw Error(source, null, "__metadata__ is not an object.");
                    }

                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                        {
                            throw Error(source, null, $"__metadata__ value '{m.Name}' is not a string.");
                        }

                        metadata[m.Name] = m.Value.GetString()!;
                    }

                    continue;
                }

                entries.Add(ParseEntry(source, prop));
            }
        }
        catch (JsonException e)
        {
            throw new SafetensorsException(source, null, $"header is not valid JSON ({e.Message}).", e);
        }
        catch (InvalidOperationException e)
        {
            throw new SafetensorsException(source, null, $"header has an unexpected JSON shape ({e.Message}).", e);
        }

        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expectedBegin = 0;
        var tensors = new SafeTensor[entries.Count];
        for (int i = 0; i < entries.Count; i++)
        {
            var (name, dtype, shape, begin, end) = entries[i];
            if (end > data.Length)
            {
                throw Error(source, name, $"data_offsets [{begin}, {end}] run past the {data.Length} data bytes present (truncated file or bad offsets).");
            }

            if (begin < expectedBegin)
            {
                throw Error(source, name, $"data_offsets [{begin}, {end}] overlap the previous tensor '{entries[i - 1].Name}', which ends at {expectedBegin}.");
            }

            if (begin > expectedBegin)
            {
                throw Error(source, name, $"data_offsets start at {begin}, leaving a gap after byte {expectedBegin} of the data.");
            }

            tensors[i] = new SafeTensor(name, dtype, shape, Convert(data.Slice((int)begin, (int)(end - begin)), dtype));
            expectedBegin = end;
        }

        if (expectedBegin != data.Length)
        {
            throw Error(source, null, $"{data.Length - expectedBegin} trailing data bytes after the last tensor (ends at {expectedBegin}).");
        }

        return new SafetensorsContent(tensors, metadata);
    }

    /// <summary>
    /// Copies the tensors into <paramref name="parameters"/> by name. Every parameter must be present with exactly its
    /// shape; extra tensors in the file are an error too, so a checkpoint never silently half-loads.
    /// </summary>
    public static void LoadInto(SafetensorsContent content, IReadOnlyList<Parameter> parameters, string source)
    {
        ArgumentNullException.ThrowIfNull(content);
        ArgumentNullException.ThrowIfNull(parameters);
        var byName = content.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        foreach (var p in parameters)
        {
            if (!byName.TryGetValue(p.Name, out var t))
            {
                throw Error(source, p.Name, "is missing from the checkpoint.");
            }

            if (!t.IsFloat)
            {
                throw Error(source, p.Name, $"has dtype {t.Dtype}; a parameter must be F32, F16, BF16 or F64.");
            }

            if (!t.Shape.SequenceEqual(p.Shape))
            {
                throw Error(source, p.Name, $"has shape [{string.Join(", ", t.Shape)}] but the model expects [{string.Join(", ", p.Shape)}]; the checkpoint was made for a different architecture.");
            }
        }

        var expected = parameters.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var t in content.Tensors)
        {
            if (!expected.Contains(t.Name))
            {
                throw Error(source, t.Name, "is in the checkpoint but not in the model.");
            }
        }

        foreach (var p in parameters)
        {
            byName[p.Name].Data.CopyTo(p.Data, 0);
        }
    }

    private static (string, string, int[], long, long) ParseEntry(string source, JsonProperty prop)
    {
        string name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object)
        {
            throw Error(source, name, "entry is not a JSON object.");
        }

        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
        {
            throw Error(source, name, "has no string 'dtype'.");
        }

        string dtype = dt.GetString()!;
        int size = DtypeSize(dtype);
        if (size == 0)
        {
            throw Error(source, name, $"dtype '{dtype}' is not supported (F32, F16, BF16, F64; BOOL, U8, I8, I16, U16, I32, U32, I64, U64 are sized but not read).");
        }

        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
        {
            throw Error(source, name, "has no 'shape' array.");
        }

        var shape = new int[sh.GetArrayLength()];
        long count = 1;
        int k = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int dim) || dim < 0)
            {
                throw Error(source, name, $"shape entry {k} is not a non-negative 32-bit integer.");
            }

            shape[k++] = dim;
            count *= dim;
            if (count > Array.MaxLength)
            {
                throw Error(source, name, "shape has more elements than an array can hold.");
            }
        }

        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
        {
            throw Error(source, name, "has no two-element 'data_offsets'.");
        }

        if (!off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
        {
            throw Error(source, name, "data_offsets are not two non-negative integers with begin <= end.");
        }

        if (end - begin != count * size)
        {
            throw Error(source, name, $"dtype {dtype} with shape [{string.Join(", ", shape)}] needs {count * size} bytes but data_offsets [{begin}, {end}] span {end - begin}.");
        }

        return (name, dtype, shape, begin, end);
    }

    private static int DtypeSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "BOOL" or "U8" or "I8" => 1,
        _ => 0,
    };

    private static float[] Convert(ReadOnlySpan<byte> bytes, string dtype)
    {
        switch (dtype)
        {
            case "F32":
            {
                var r = new float[bytes.Length / 4];
                for (int i = 0; i < r.Length; i++)
                {
                    r[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
                }

                return r;
            }

            case "F16":
            {
                var r = new float[bytes.Length / 2];
                for (int i = 0; i < r.Length; i++)
                {
                    r[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(2 * i)..]);
                }

                return r;
            }

            case "BF16":
            {
                var r = new float[bytes.Length / 2];
                for (int i = 0; i < r.Length; i++)
                {
                    r[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]) << 16);
                }

                return r;
            }

            case "F64":
            {
                var r = new float[bytes.Length / 8];
                for (int i = 0; i < r.Length; i++)
                {
                    r[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes[(8 * i)..]);
                }

                return r;
            }

            default:
                return [];
        }
    }

    private static SafetensorsException Error(string source, string? tensor, string message) => new(source, tensor, message);
}
