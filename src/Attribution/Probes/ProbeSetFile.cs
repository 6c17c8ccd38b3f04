using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Attribution.Contracts;

namespace Attribution.Attribution.Probes;

/// <summary>What a stored forward-only probe set was simulated from, so it is never read back against another run.</summary>
public sealed record ProbeSetIdentity
{
    /// <summary>The method and its options as given (e.g. <c>forward-only:horizon=50</c>), normalised.</summary>
    public required string Method { get; init; }

    /// <summary>SHA-256 of the trained parameters θ (float32 little-endian).</summary>
    public required string ThetaSha256 { get; init; }

    /// <summary>SHA-256 of the training inputs, labels and source ids the simulation used.</summary>
    public required string DataSha256 { get; init; }

    /// <summary>The model's architecture string (<c>IModel.Architecture</c>, e.g. <c>mlp:784-128-64-10</c>).</summary>
    public required string Architecture { get; init; }

    /// <summary>Computes the identity of <paramref name="problem"/> under <paramref name="method"/>.</summary>
    public static ProbeSetIdentity Of(AttributionProblem problem, string method)
    {
        ArgumentNullException.ThrowIfNull(problem);
        using var data = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        data.AppendData(MemoryMarshal.AsBytes(problem.TrainInputs.AsSpan()));
        data.AppendData(MemoryMarshal.AsBytes(problem.TrainLabels.AsSpan()));
        data.AppendData(MemoryMarshal.AsBytes(problem.SourceIds.AsSpan()));
        return new ProbeSetIdentity
        {
            Method = method,
            ThetaSha256 = Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(problem.Theta.AsSpan()))),
            DataSha256 = Convert.ToHexStringLower(data.GetHashAndReset()),
            Architecture = problem.Architecture,
        };
    }

    /// <summary>Null when <paramref name="other"/> is the same; else what differs, in words.</summary>
    public string? Difference(ProbeSetIdentity other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (Architecture != other.Architecture)
        {
            return $"the model is {other.Architecture}, the probes were simulated for {Architecture}";
        }

        if (ThetaSha256 != other.ThetaSha256)
        {
            return $"the model's parameters differ (sha256 {other.ThetaSha256[..12]}…, the probes were simulated at {ThetaSha256[..12]}…)";
        }

        if (DataSha256 != other.DataSha256)
        {
            return "the training examples, labels or sources differ from those the probes were simulated on";
        }

        return Method != other.Method ? $"the method is '{other.Method}', the probes were simulated with '{Method}'" : null;
    }
}

/// <summary>A probe set read from a file: what it was simulated from, the run and step it names, its units' ids and state.</summary>
/// <param name="Identity">What the set was simulated from (the file's <c>probe-set-*</c> metadata).</param>
/// <param name="RunId">The run id every row carries.</param>
/// <param name="Step">The checkpoint step every row carries.</param>
/// <param name="ExampleIds">The example units' ids (<c>subject_id</c> of the example rows), in file order.</param>
/// <param name="SourceIds">The source units' ids, in file order.</param>
/// <param name="State">The units' tensors and factors, in the same order.</param>
public sealed record StoredProbeSet(ProbeSetIdentity Identity, string RunId, long Step, long[] ExampleIds, long[] SourceIds, ProbeSetState State);

/// <summary>
/// A probe set in one file, so a run's simulation (minutes) is paid once and re-read by later <c>attribute</c> calls:
/// an Arrow IPC file (<see cref="ArrowEventFile"/>) of the <see cref="InfluenceProbe"/> wire schema itself, one row
/// per unit exactly as the Simulator publishes it (example rows in unit order, then source rows; keys
/// <c>&lt;run&gt;/&lt;step&gt;/example/&lt;id&gt;</c> and <c>…/source/&lt;id&gt;</c>), with the set's identity
/// and a checksum of its factors as schema metadata (<see cref="MethodKey"/>, <see cref="ThetaKey"/>,
/// <see cref="DataKey"/>, <see cref="FactorsKey"/>). Any Arrow library reads it as a table. Pure compute: a stream
/// or bytes in, no file system.
/// </summary>
public static class ProbeSetFile
{
    /// <summary>Metadata key: the method and options the set was simulated with (<see cref="ProbeSetIdentity.Method"/>).</summary>
    public const string MethodKey = "probe-set-method";

    /// <summary>Metadata key: SHA-256 (hex) of the trained parameters θ, float32 little-endian.</summary>
    public const string ThetaKey = "probe-set-theta-sha256";

    /// <summary>Metadata key: SHA-256 (hex) of the training inputs, labels and source ids the simulation used.</summary>
    public const string DataKey = "probe-set-data-sha256";

    /// <summary>Metadata key: SHA-256 (hex) of every row's factors as float32 little-endian, rows in file order.</summary>
    public const string FactorsKey = "probe-set-factors-sha256";

    /// <summary>Rows per record batch (a few MB at MLP sizes; a reader never needs more than one batch at a time).</summary>
    public const int RowsPerBatch = 64;

    /// <summary>
    /// Writes <paramref name="state"/> as float32 probes of run <paramref name="runId"/>, step <paramref name="step"/>:
    /// the example rows, the source rows, then the shared tensors (forward-only's spectral directions) as
    /// <see cref="ProbeSubject.Shared"/> chunk rows (<see cref="SharedChunks"/>), as the Simulator publishes them.
    /// </summary>
    public static void Write(Stream output, ProbeSetIdentity identity, string runId, long step, IReadOnlyList<long> exampleIds, IReadOnlyList<long> sourceIds, ProbeSetState state)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(exampleIds);
        ArgumentNullException.ThrowIfNull(sourceIds);
        ArgumentNullException.ThrowIfNull(state);
        state.Validate();

        if (exampleIds.Count != state.Examples.Count || sourceIds.Count != state.Sources.Count)
        {
            throw new ArgumentException($"{exampleIds.Count} example and {sourceIds.Count} source ids for {state.Examples.Count} example and {state.Sources.Count} source units.");
        }

        // The rows share the state's float arrays (no copy); written a batch at a time.
        // Shared tensors (e.g. forward-only's spectral directions) follow as chunk rows, as the Simulator publishes them.
        var chunks = SharedChunks.Split(state.Shared);
        var rows = state.Examples.Select((f, u) => Row(ProbeSubject.Example, exampleIds[u], state.ExampleTensors, f))
            .Concat(state.Sources.Select((f, u) => Row(ProbeSubject.Source, sourceIds[u], state.SourceTensors, f)))
            .Concat(chunks.Select((c, i) => Row(ProbeSubject.Shared, i, c.Tensors, c.Values)));
        var metadata = new Dictionary<string, string>
        {
            [MethodKey] = identity.Method,
            [ThetaKey] = identity.ThetaSha256,
            [DataKey] = identity.DataSha256,
            [FactorsKey] = FactorsSha256(state.Examples.Concat(state.Sources).Concat(chunks.Select(c => c.Values))),
        };
        ArrowEventFile.Write(output, rows.Chunk(RowsPerBatch), metadata);

        InfluenceProbe Row(ProbeSubject subject, long id, IReadOnlyList<ProbeTensor> tensors, float[] factors) =>
            new(runId, step, subject, id, state.Architecture, subject == ProbeSubject.Shared || tensors.Count == 0 ? 0 : tensors.Max(t => t.Rank), state.Examples.Count, state.Sources.Count, tensors, ProbePrecision.Float32, factors)
            {
                SetShared = chunks.Count,
            };
    }

    /// <summary>Reads a probe-set file; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="ProbeFormatException">Not a probe-set file, truncated, corrupt, or not one consistent set.</exception>
    public static StoredProbeSet Read(ReadOnlyMemory<byte> bytes, string source)
    {
        ArrowEventFileContents<InfluenceProbe> contents;
        try
        {
            contents = ArrowEventFile.Read<InfluenceProbe>(bytes);
        }
        catch (EventContractException e)
        {
            throw new ProbeFormatException($"{source} is truncated or corrupt, or not a probe-set file ({e.Message}); delete it and let 'attribute --probes' simulate again.", e);
        }

        string Meta(string key) => contents.Metadata.TryGetValue(key, out var v) && v.Length > 0 ? v
            : throw new ProbeFormatException($"{source} has no '{key}' schema metadata: it is a file of probes, not a probe set written by 'attribute --probes'; point --probes at a new file to simulate one.");
        var probes = contents.Events;
        var examples = probes.Where(p => p.Subject == ProbeSubject.Example).ToArray();
        var sources = probes.Where(p => p.Subject == ProbeSubject.Source).ToArray();
        var shared = probes.Where(p => p.Subject == ProbeSubject.Shared).ToArray();
        if (examples.Length == 0 || !probes.Take(examples.Length).All(p => p.Subject == ProbeSubject.Example)
            || !probes.Skip(examples.Length + sources.Length).All(p => p.Subject == ProbeSubject.Shared))
        {
            throw new ProbeFormatException($"{source}: {examples.Length} example rows; a probe-set file holds its example rows first, then its source rows, then its shared-state chunks.");
        }

        var first = examples[0];
        var set = $"{first.RunId}/{first.Step}";
        foreach (var (p, row) in probes.Select((p, i) => (p, i)))
        {
            var model = p.Subject == ProbeSubject.Example ? first : p.Subject == ProbeSubject.Source ? sources[0] : p;
            if (p.RunId != first.RunId || p.Step != first.Step || p.Architecture != first.Architecture || p.SetExamples != examples.Length || p.SetSources != sources.Length
                || p.SetShared != shared.Length || p.Rank != model.Rank || !p.Tensors.SequenceEqual(model.Tensors)
                || (p.Subject == ProbeSubject.Shared && p.SubjectId != row - examples.Length - sources.Length))
            {
                throw new ProbeFormatException($"{source}: row {row} ({p.Key}, {p.Architecture} rank {p.Rank}, set of {p.SetExamples}/{p.SetSources}/{p.SetShared}) is not of the set {set} ({first.Architecture}, {examples.Length} example and {sources.Length} source rows, each subject with one tensor layout, then {shared.Length} shared chunks in order).");
            }
        }

        if (FactorsSha256(probes.Select(p => p.Factors)) != Meta(FactorsKey))
        {
            throw new ProbeFormatException($"{source} is truncated or corrupt (its factors do not match their checksum); delete it and let 'attribute --probes' simulate again.");
        }

        var identity = new ProbeSetIdentity { Method = Meta(MethodKey), ThetaSha256 = Meta(ThetaKey), DataSha256 = Meta(DataKey), Architecture = first.Architecture };
        var state = new ProbeSetState
        {
            Architecture = first.Architecture,
            ExampleTensors = first.Tensors,
            Examples = [.. examples.Select(p => p.Factors)],
            SourceTensors = sources.Length > 0 ? sources[0].Tensors : [],
            Sources = [.. sources.Select(p => p.Factors)],
            Shared = SharedChunks.Join([.. shared.Select(p => (p.Tensors, p.Factors))]),
        };
        return new StoredProbeSet(identity, first.RunId, first.Step, [.. examples.Select(p => p.SubjectId)], [.. sources.Select(p => p.SubjectId)], state);
    }

    private static string FactorsSha256(IEnumerable<float[]> rows)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var row in rows)
        {
            hash.AppendData(MemoryMarshal.AsBytes(row.AsSpan()));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
