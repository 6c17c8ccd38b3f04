using Attribution.Attribution;

namespace Attribution.Cli.Demo;

/// <summary>What <c>./pipeline demo</c> runs; every field has a command-line option.</summary>
internal sealed record DemoSettings
{
    /// <summary>The demo's corpus for <c>--model gpt</c>: five fortune packs (1,150 documents, five sources).</summary>
    public const string GptCorpus = "fortunes/startrek,fortunes/bofh-excuses,fortunes/linux,fortunes/tao,fortunes/pets";

    public string Model { get; init; } = "mlp";
    public string Corpus { get; init; } = GptCorpus;
    public int Steps { get; init; } = 2000;
    public string Method { get; init; } = "forward-only";

    public string? KafkaBootstrap { get; init; }
    public int Queries { get; init; } = 300;
    public double Rate { get; init; } = 100;
    public int LeakedQueries { get; init; } = 20;
    public int TrainSize { get; init; } = 5_000;
    public int Epochs { get; init; } = 8;
    public int Simulate { get; init; } = 1_000;
    /// <summary>Simulation horizon in steps; null (with <see cref="HorizonEpochs"/> null) is the Simulator's default (4 epochs).</summary>
    public int? Horizon { get; init; }

    /// <summary>Simulation horizon in epochs of the shared mini-batches (Simulator:HorizonEpochs); not with <see cref="Horizon"/>.</summary>
    public double? HorizonEpochs { get; init; }
    public int Publishers { get; init; } = 10;
    public int LeakedExamples { get; init; } = 40;
    public double AlertThreshold { get; init; } = 0.5;

    /// <summary>Clean test images (after the queries) the calibrated alert threshold is chosen on; 0 = the fixed rules.</summary>
    public int CalibrationQueries { get; init; }
    public ulong Seed { get; init; }
    public string RunDirectory { get; init; } = Path.Combine("runs", "demo-mlp");
    public string OutputDirectory { get; init; } = Path.Combine("runs", "demo-output");
    public bool Console { get; init; } = true;
    public int ConsolePort { get; init; } = 8090;
    public bool Stay { get; init; }

    /// <summary>STRIDE on the GPT demo when <c>--method stride</c> is given without options: the language-model LDS configuration (docs/benchmarks/stride.md).</summary>
    public const string GptStride = "stride:k=512,d=8,steps=100,reference=32,linearity=0";

    /// <summary>The method spec the services are configured with (<c>Simulator:Method</c>, <c>Scorer:Method</c>).</summary>
    public string ServedMethod => Model == "gpt" && Method == "stride" ? GptStride : Method;

    /// <summary>
    /// <c>Scorer:Normalize</c> on the GPT demo: relative influence for forward-only (readable rankings: documents with large
    /// updates do not top every query), none for STRIDE (relative influence is a forward-only readout; the Scorer refuses
    /// it for any other method).
    /// </summary>
    public string GptScorerNormalize => MethodFactory.CreateServed(ServedMethod).Name == "forward-only" ? RelativeInfluenceMethod.OptionValue : "none";

    public string? Validate()
    {
        try
        {
            _ = MethodFactory.CreateServed(ServedMethod);
        }
        catch (MethodOptionException e)
        {
            return $"--method: {e.Message}";
        }

        if (Model == "gpt")
        {
            return Queries is < 1 or > 200 ? $"--queries must be 1..200 for --model gpt (got {Queries})."
                : Steps < 1 ? $"--steps must be >= 1 (got {Steps})." : null;
        }

        if (Queries < 1 || LeakedQueries < 0 || LeakedQueries > LeakedExamples)
        {
            return $"--queries must be >= 1 (got {Queries}) and --leaked-queries 0..{LeakedExamples} (got {LeakedQueries}).";
        }

        if (TrainSize < 200 || TrainSize > 60_000 || Epochs < 1)
        {
            return $"--train-size must be 200..60000 (got {TrainSize}) and --epochs >= 1 (got {Epochs}).";
        }

        if (Simulate < 1 || Horizon < 1 || Publishers < 1 || LeakedExamples < 1 || LeakedExamples >= TrainSize / 2)
        {
            return "--simulate, --horizon and --publishers must be >= 1, and the leaked source must hold fewer than half of the training examples.";
        }

        if (HorizonEpochs is { } epochs && (Horizon is not null || !(epochs > 0) || !double.IsFinite(epochs)))
        {
            return Horizon is not null ? "--horizon (steps) and --horizon-epochs both set the horizon: give one of them."
                : $"--horizon-epochs must be a positive number of epochs (got {epochs.ToString(System.Globalization.CultureInfo.InvariantCulture)}).";
        }

        if (ConsolePort is < 0 or > 65534)
        {
            return $"--console-port must be 0..65534 (0 picks a free port; Flight takes the next one), got {ConsolePort}.";
        }

        if (Stay && !Console)
        {
            return "--stay keeps the console open after the demo: it cannot be combined with --no-console.";
        }

        if (CalibrationQueries < 0 || Queries + CalibrationQueries > 2_000)
        {
            return $"--calibrate-alerts must be 0 or more, with --queries, at most the 2,000 test images the run keeps (got {CalibrationQueries} + {Queries}).";
        }

        if (Rate < 0)
        {
            return $"--rate must be >= 0 queries/s (0 = as fast as possible), got {Rate}.";
        }

        return AlertThreshold is > 0 and <= 1 ? null : $"--alert-threshold must be in (0, 1] (got {AlertThreshold}).";
    }
}
