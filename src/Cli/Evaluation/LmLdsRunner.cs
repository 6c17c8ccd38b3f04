using System.Diagnostics;
using System.Globalization;
using System.Text;
using Attribution.Attribution.Evaluation;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Cli.Evaluation;

/// <summary>Everything that defines a language-model LDS run; <see cref="Canonical"/> is what the retraining cache keys on.</summary>
internal sealed record LmLdsOptions(
    string Corpus,
    string Tokenizer,
    GptConfig Config,
    int MinTokens,
    int BaseDocuments,
    int PoolDocuments,
    int Queries,
    DocumentTrainingRecipe BaseRecipe,
    DocumentTrainingRecipe FineTuneRecipe,
    int Subsets,
    double Alpha,
    int SeedsPerSubset,
    int SourceSubsets,
    ulong Seed,
    string CacheRoot,
    IReadOnlyList<string> Methods,
    int LatencyQueries,
    int QueryBatch,
    double CalibrationFraction = 0,
    IReadOnlyList<int>? ScaleDocuments = null,
    int EnergyDocuments = 0,
    int ScalePasses = 5,
    IReadOnlyList<int>? ReadoutDocuments = null,
    IReadOnlyList<int>? ReadoutBatches = null,
    int ReadoutMaxMiB = 2048)
{
    /// <summary>The setting text (recipe, data selection, queries, output function) the ground-truth cache is keyed on.</summary>
    public string Canonical(TextCorpus corpus, LmBenchmarkSplit split)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"protocol=lm-lds-finetune-v1\ncorpus={corpus.Spec}\ntokenizer={Tokenizer}\nmodel={Config}\n");
        sb.Append(CultureInfo.InvariantCulture, $"base-recipe={BaseRecipe.Key}\nfinetune-recipe={FineTuneRecipe.Key}\nmin-tokens={MinTokens}\nseed={Seed}\n");
        sb.Append("base-docs=").Append(RetrainCache.Hash(Ids(corpus, split.Base))).Append('\n');
        sb.Append("pool-docs=").Append(RetrainCache.Hash(Ids(corpus, split.Pool))).Append('\n');
        sb.Append("query-docs=").Append(RetrainCache.Hash(Ids(corpus, split.Queries))).Append('\n');
        sb.Append("output=").Append(CompletionQuery.OutputFunction).Append('\n');
        return sb.ToString();
    }

    private static byte[] Ids(TextCorpus corpus, int[] indices) =>
        [.. indices.SelectMany(i => BitConverter.GetBytes(corpus.Documents[i].Id))];
}

/// <summary>The benchmark's data: the corpus, the split, every document's framed tokens and the queries.</summary>
internal sealed record LmLdsData(TextCorpus Corpus, ITokenizer Tokenizer, LmBenchmarkSplit Split, int[][] PoolDocuments,
    int[] PoolSourceIds, int[] SourcesPresent, CompletionQuery[] Queries, int[][] BaseDocuments)
{
    /// <summary>Loads the corpus, tokenises it and draws the split.</summary>
    public static LmLdsData Load(LmLdsOptions o)
    {
        var corpus = TextCorpus.Load(o.Corpus);
        var tokenizer = Tokenizers.Create(o.Tokenizer);
        if (o.Config.VocabSize < tokenizer.VocabSize)
        {
            throw new ArgumentException($"the model's vocabulary ({o.Config.VocabSize}) must hold the {tokenizer.VocabSize} ids of the {tokenizer.Name} tokenizer.");
        }

        // Only documents short enough to matter are encoded in full: a byte-level framing is bytes + 2 ids, so longer
        // ones cannot be eligible under any tokenizer whose tokens cover at least one byte.
        int limit = (o.Config.Context + 1) * 8;
        var framed = corpus.Documents.Select(d => d.Bytes.Length > limit ? null : tokenizer.EncodeDocument(d.Bytes)).ToArray();
        var split = LmBenchmarkSplit.Draw(framed.Select(f => f?.Length ?? int.MaxValue).ToArray(), o.Config.Context, o.MinTokens,
            o.BaseDocuments, o.PoolDocuments, o.Queries, o.Seed);
        var pool = split.Pool.Select(i => framed[i]!).ToArray();
        var rawSources = split.Pool.Select(i => corpus.Documents[i].SourceId).ToArray();
        var present = rawSources.Distinct().Order().ToArray();
        var remap = present.Select((s, k) => (s, k)).ToDictionary(p => p.s, p => p.k);
        return new LmLdsData(corpus, tokenizer, split, pool, [.. rawSources.Select(s => remap[s])], present,
            [.. split.Queries.Select(i => LmBenchmarkSplit.AsQuery(framed[i]!))], [.. split.Base.Select(i => framed[i]!)]);
    }
}

/// <summary>The ground truth of a run: the base and full-pool models and the LDS retraining campaigns (cached).</summary>
internal sealed record LmLdsTruth(
    string SettingHash,
    float[] BaseTheta,
    float[] FullTheta,
    IReadOnlyList<float[]> FullCheckpoints,
    SubsetPlan Plan,
    LdsGroundTruth Examples,
    SubsetPlan? SourcePlan,
    LdsGroundTruth? Sources,
    double[] FullOutputs,
    double[] BaseOutputs,
    int ModelsTrained,
    int ModelsFromCache,
    double Seconds,
    double SecondsPerFineTune);

/// <summary>
/// Language-model LDS (issue 11 item 5), fine-tuning protocol: one base GPT is trained from scratch on the base
/// documents; every subset model is that base fine-tuned on a random α-subset of the pool documents (data order from the
/// seed), and its output per query is the completion log-likelihood (sum over completion tokens, nats; larger = better,
/// so no sign flip). Two seeds per subset give the noise ceiling. From-scratch retraining was measured to be dominated
/// by seed noise at this size (shared/docs/language-models-and-contamination.md), so the fine-tuning setting is used.
/// </summary>
internal sealed class LmLdsRunner(LmLdsOptions options, LmLdsData data)
{
    /// <summary>Trains (or reads from the cache) every model of the campaign and collects the outputs.</summary>
    public LmLdsTruth RunGroundTruth(IProgress<RetrainProgress>? progress, CancellationToken cancellationToken)
    {
        var canonical = options.Canonical(data.Corpus, data.Split);
        var cache = new RetrainCache(options.CacheRoot, canonical);
        var clock = Stopwatch.StartNew();
        var baseTheta = cache.GetOrCompute("base.theta", () =>
        {
            var model = new Gpt(options.Config, options.Seed ^ 0xBA5E);
            DocumentTrainer.Train(model, data.BaseDocuments, options.BaseRecipe, options.Seed ^ 0xBA5E, cancellationToken: cancellationToken);
            return Flat(model);
        });
        progress?.Report(new RetrainProgress(1, 1, "base model"));

        int n = data.PoolDocuments.Length, q = data.Queries.Length;
        int fullSeed = (int)(options.Seed & 0x7FFF_FFFF);
        var checkpoints = new List<float[]>();
        double fineTuneSeconds = 0;
        int fineTunes = 0;
        var fullTheta = cache.GetOrCompute($"full-{fullSeed}.theta", () =>
        {
            var t = Stopwatch.StartNew();
            var model = FineTune(RetrainingHarness.Complement(n, []), fullSeed, (epoch, m) => checkpoints.Add(Flat(m)), cancellationToken);
            fineTuneSeconds += t.Elapsed.TotalSeconds;
            fineTunes++;
            return Flat(model);
        });
        if (checkpoints.Count == 0)
        {
            for (int e = 1; e <= options.FineTuneRecipe.Epochs; e++)
            {
                checkpoints.Add(cache.GetOrCompute($"full-{fullSeed}-epoch{e}.theta", () => throw new InvalidOperationException(
                    $"the cache {cache.Folder} holds the full-pool model but not its epoch-{e} checkpoint; delete full-{fullSeed}.theta to retrain it.")));
            }
        }
        else
        {
            for (int e = 0; e < checkpoints.Count; e++)
            {
                var c = checkpoints[e];
                cache.GetOrCompute($"full-{fullSeed}-epoch{e + 1}.theta", () => c);
            }
        }

        var measure = cache.Wrap((subset, seed, ct) =>
        {
            var t = Stopwatch.StartNew();
            var model = FineTune(subset, seed, null, ct);
            fineTuneSeconds += t.Elapsed.TotalSeconds;
            fineTunes++;
            return Outputs(model);
        });
        var plan = SubsetPlan.Draw(n, options.Subsets, options.Alpha, options.Seed, options.SeedsPerSubset);
        var truth = RetrainingHarness.RunLds(plan, q, measure, progress, cancellationToken);

        SubsetPlan? sourcePlan = null;
        LdsGroundTruth? sourceTruth = null;
        if (options.SourceSubsets > 1 && data.SourcesPresent.Length > 2)
        {
            sourcePlan = SubsetPlan.Draw(data.SourcesPresent.Length, options.SourceSubsets, options.Alpha, options.Seed ^ 0x500, options.SeedsPerSubset);
            var expanded = RetrainingHarness.RunLds(SourceLds.Expand(sourcePlan, data.PoolSourceIds), q, measure, progress, cancellationToken);
            sourceTruth = new LdsGroundTruth(sourcePlan, q, expanded.Replicates);
        }

        return new LmLdsTruth(cache.SettingHash, baseTheta, fullTheta, checkpoints, plan, truth, sourcePlan, sourceTruth,
            [.. Outputs(Load(fullTheta)).Select(v => (double)v)], [.. Outputs(Load(baseTheta)).Select(v => (double)v)],
            cache.Misses, cache.Hits, clock.Elapsed.TotalSeconds, fineTunes == 0 ? double.NaN : fineTuneSeconds / fineTunes);

        Gpt FineTune(int[] subset, int seed, Action<int, Gpt>? onEpoch, CancellationToken ct) => FineTuneFrom(baseTheta, subset, seed, onEpoch, ct);
    }

    /// <summary>Another full-pool fine-tune of the base model with data-order seed <paramref name="seed"/> (for ensembles).</summary>
    public float[] FineTuneFull(LmLdsTruth truth, int seed, CancellationToken cancellationToken) =>
        Flat(FineTuneFrom(truth.BaseTheta, RetrainingHarness.Complement(data.PoolDocuments.Length, []), seed, null, cancellationToken));

    /// <summary>Completion log-likelihood of every query under <paramref name="model"/>.</summary>
    public float[] Outputs(Gpt model) => [.. data.Queries.Select(query => (float)query.LogLikelihood(model))];

    /// <summary>A model of the run's shape holding <paramref name="theta"/>.</summary>
    public Gpt Load(float[] theta)
    {
        var model = new GptModel(new Gpt(options.Config, seed: 0));
        model.LoadFrom(theta);
        return model.Gpt;
    }

    private Gpt FineTuneFrom(float[] baseTheta, int[] subset, int seed, Action<int, Gpt>? onEpoch, CancellationToken cancellationToken)
    {
        var model = Load(baseTheta);
        DocumentTrainer.Train(model, [.. subset.Select(i => data.PoolDocuments[i])], options.FineTuneRecipe, (ulong)seed, onEpoch, cancellationToken);
        return model;
    }

    private static float[] Flat(Gpt model)
    {
        var adapter = new GptModel(model);
        var flat = new float[adapter.ParameterCount];
        adapter.CopyTo(flat);
        return flat;
    }
}
