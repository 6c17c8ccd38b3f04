using System.Diagnostics;
using System.Globalization;
using System.Text;
using Attribution.Attribution;
using Attribution.Attribution.Contamination;
using Attribution.Attribution.Spans;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Cli.Evaluation;

/// <summary>Everything that defines a contamination benchmark run.</summary>
internal sealed record ContaminationOptions(
    string Corpus,
    string Dictionary,
    GptConfig Config,
    DocumentTrainingRecipe Recipe,
    int TrainDocuments,
    int CleanItems,
    IReadOnlyList<double> Rates,
    IReadOnlyList<int> Multiplicities,
    int MinSpan,
    int MinWords,
    int DedupSpan,
    IReadOnlyList<string> Methods,
    double FalseAlertRate,
    int Folds,
    ulong Seed,
    string CacheRoot)
{
    /// <summary>Distinct leaked items per form in a run at <paramref name="rate"/> (at least 1).</summary>
    public int ItemsPerForm(double rate) => Math.Max(1, (int)Math.Round(rate * TrainDocuments));
}

/// <summary>One query of the benchmark with its evidence (span, and attribution per method).</summary>
internal sealed record ContaminationQuery(int Run, double Rate, int Multiplicity, LeakForm? Form, BenchmarkItem Item, SpanEvidence Span, AttributionEvidence[] Attribution)
{
    public bool Leaked => Form is not null;
}

/// <summary>What one method cost in one run.</summary>
internal sealed record ContaminationMethodCost(string Spec, int Run, double PrecomputeSeconds, double PrecomputeCpuSeconds, double ScoreMsPerQuery, double ScoreCpuMsPerQuery);

/// <summary>The data of all runs, before the policies are fitted.</summary>
internal sealed record ContaminationData(
    IReadOnlyList<ContaminationQuery> Queries,
    IReadOnlyList<ContaminationMethodCost> Costs,
    IReadOnlyList<string> RunLines,
    int Candidates,
    int Deduplicated,
    int TrainingsDone,
    int TrainingsCached,
    double SpanMsPerQuery);

/// <summary>
/// The contamination benchmark (issue 13 item 3): held-out question/answer items from a dictionary the model is not
/// trained on, injected into a GPT training corpus at each rate × multiplicity (one training per pair, all three forms
/// together, disjoint items), then every query (leaked and clean) gets span evidence from the run's
/// <see cref="SpanIndex"/> and attribution evidence from every method (flagged = the span stage's documents).
/// </summary>
internal sealed class ContaminationRunner(ContaminationOptions options)
{
    public ContaminationData Run(Action<string> log, CancellationToken cancellationToken)
    {
        var corpus = TextCorpus.Load(options.Corpus);
        var tokenizer = Tokenizers.Create(ByteTokenizer.TokenizerName);
        int maxFramed = options.Config.Context + 1;
        var framed = corpus.Documents.Select(d => d.Bytes.Length + 2 > maxFramed ? null : tokenizer.EncodeDocument(d.Bytes)).ToArray();
        var eligible = Enumerable.Range(0, framed.Length).Where(i => framed[i] is { Length: >= 8 }).ToArray();
        if (eligible.Length < options.TrainDocuments)
        {
            throw new ArgumentException($"--train {options.TrainDocuments}: the corpus {corpus.Spec} has only {eligible.Length} documents of 8..{maxFramed} byte tokens.");
        }

        var order = new Engine.Rng(options.Seed).Permutation(eligible.Length);
        var baseIndices = order.Take(options.TrainDocuments).Select(k => eligible[k]).ToArray();
        var baseDocs = baseIndices.Select(i => framed[i]!).ToArray();
        var baseIds = baseIndices.Select(i => corpus.Documents[i].Id).ToArray();
        var baseSources = baseIndices.Select(i => corpus.Documents[i].SourceId).ToArray();
        int injectedSource = corpus.Sources.Count;
        log($"training corpus: {baseDocs.Length} documents of {corpus.Spec} ({corpus.Sources.Count} sources), byte tokens, at most {maxFramed} per document");

        // Items: every form of every item must fit the context; drawn reproducibly, deduplicated against the clean corpus.
        var entries = DictdDatabase.Read(options.Dictionary).Select(e => (Headword: e.Key, Entry: Encoding.UTF8.GetString(e.Bytes))).ToList();
        var thesaurus = Thesaurus.FromDictionary(entries);
        var candidates = new List<BenchmarkItem>();
        foreach (var (key, text) in entries)
        {
            if (BenchmarkItems.FromDictionaryEntry(candidates.Count, key, text, 60) is { } item
                && Enum.GetValues<LeakForm>().All(f => Encoding.UTF8.GetByteCount(BenchmarkItems.Render(item, f, 99, thesaurus)) + 2 <= maxFramed))
            {
                candidates.Add(item);
            }
        }

        // Every run asks its own clean items (none recurs across runs), so the clean queries are independent draws:
        // the threshold's false-alert bound is about exchangeable queries, and a clean item repeated in every run would
        // count its one verdict six times.
        int runs = options.Rates.Count * options.Multiplicities.Count;
        int leakedNeeded = options.Rates.Sum(r => options.ItemsPerForm(r)) * options.Multiplicities.Count * 3;
        int needed = (options.CleanItems * runs) + leakedNeeded;
        var cleanIndex = SpanIndex.Build(baseDocs, baseIds, baseSources);
        var dedupOptions = new SpanQueryOptions(options.DedupSpan, 1);
        var drawn = BenchmarkItems.Draw(candidates, Math.Min(candidates.Count, needed * 2), options.Seed ^ 0x17E5);
        var items = new List<BenchmarkItem>();
        int dropped = 0;
        foreach (var item in drawn)
        {
            if (items.Count == needed + (needed / 5) + 10)
            {
                break; // a fifth to spare: clean items that share a span with a run's injected items are skipped below
            }

            if (cleanIndex.Find(Frame(tokenizer, BenchmarkItems.Canonical(item)), dedupOptions).Count > 0)
            {
                dropped++;
                continue;
            }

            items.Add(item with { Id = items.Count });
        }

        if (items.Count < needed)
        {
            throw new ArgumentException($"{options.Dictionary} gave {items.Count} usable items after deduplication; {needed} are needed (--clean {options.CleanItems} x {runs} runs + {leakedNeeded} leaked); lower --clean or --train.");
        }

        log($"items: {candidates.Count} usable dictionary entries, {drawn.Count} drawn, {dropped} dropped as sharing a span of >= {options.DedupSpan} tokens with the clean training corpus; {options.CleanItems} clean per run x {runs} runs + {leakedNeeded} leaked");
        int next = 0;
        var lines = new List<string>();
        var changed = items.Select(i => (Before: Words(i.Answer), After: Words(BenchmarkItems.Paraphrase(i.Answer, thesaurus)))).ToArray();
        lines.Add(string.Create(CultureInfo.InvariantCulture,
            $"paraphrases: thesaurus of {thesaurus.Count} words (the dictionary's Syn: lists); {changed.Sum(c => c.Before.Except(c.After).Count()) / (double)Math.Max(1, changed.Sum(c => c.Before.Count)):P0} of the answers' distinct words replaced; e.g. ")
            + string.Join("; ", items.Take(3).Select(i => $"\"{i.Answer}\" -> \"{BenchmarkItems.Paraphrase(i.Answer, thesaurus)}\"")));
        log(lines[^1]);

        var queries = new List<ContaminationQuery>();
        var costs = new List<ContaminationMethodCost>();
        int trained = 0, cached = 0, overlapping = 0;
        double spanMs = 0;
        int spanQueries = 0;
        int run = 0;
        foreach (double rate in options.Rates)
        {
            foreach (int multiplicity in options.Multiplicities)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int perForm = options.ItemsPerForm(rate);
                var leaked = new List<(LeakForm Form, BenchmarkItem Item)>();
                foreach (var form in Enum.GetValues<LeakForm>())
                {
                    for (int k = 0; k < perForm; k++)
                    {
                        leaked.Add((form, items[next++]));
                    }
                }

                // A clean item must share no span of DedupSpan tokens with this run's training text, the injected items
                // included (dictionary definitions repeat templates such as "One who, or that which, ..."): otherwise the
                // label "clean" is wrong and its alert is not false.
                var injected = SpanIndex.Build([.. leaked.Select(l => Frame(tokenizer, BenchmarkItems.Render(l.Item, l.Form, 0, thesaurus)))],
                    [.. leaked.Select((_, i) => (long)i)], [.. leaked.Select(_ => injectedSource)]);
                var clean = new List<BenchmarkItem>(options.CleanItems);
                while (clean.Count < options.CleanItems)
                {
                    if (next == items.Count)
                    {
                        throw new ArgumentException($"{options.Dictionary} ran out of clean items sharing no span with the injected ones; lower --clean.");
                    }

                    var candidate = items[next++];
                    if (injected.Find(Frame(tokenizer, BenchmarkItems.Canonical(candidate)), dedupOptions).Count > 0)
                    {
                        overlapping++;
                        continue;
                    }

                    clean.Add(candidate);
                }

                var docs = new List<int[]>(baseDocs);
                var ids = new List<long>(baseIds);
                var sources = new List<int>(baseSources);
                foreach (var (form, item) in leaked)
                {
                    for (int copy = 0; copy < multiplicity; copy++)
                    {
                        docs.Add(Frame(tokenizer, BenchmarkItems.Render(item, form, copy, thesaurus)));
                        ids.Add((1L << 40) + (item.Id * 1000L) + copy);
                        sources.Add(injectedSource);
                    }
                }

                var (theta, fromCache) = Train(docs, ids, run, rate, multiplicity, cancellationToken);
                trained += fromCache ? 0 : 1;
                cached += fromCache ? 1 : 0;
                var matcher = new CorpusMatcher(SpanIndex.Build(docs, ids, sources), tokenizer);
                var matchOptions = new CorpusMatchOptions(options.MinSpan, options.MinWords, 64);
                var runQueries = leaked.Select(l => (Form: (LeakForm?)l.Form, l.Item)).Concat(clean.Select(c => (Form: (LeakForm?)null, Item: c))).ToArray();
                var tokens = runQueries.Select(q => Frame(tokenizer, BenchmarkItems.Canonical(q.Item))).ToArray();
                var clock = Stopwatch.StartNew();
                var spans = tokens.Select(t => matcher.Find(t, matchOptions)).ToArray();
                spanMs += clock.Elapsed.TotalMilliseconds;
                spanQueries += tokens.Length;
                var completions = runQueries.Select((q, i) => new CompletionQuery(tokens[i][..(Encoding.UTF8.GetByteCount(BenchmarkItems.Prompt(q.Item)) + 1)],
                    tokens[i][(Encoding.UTF8.GetByteCount(BenchmarkItems.Prompt(q.Item)) + 1)..])).ToArray();
                var attribution = new AttributionEvidence[runQueries.Length][];
                for (int i = 0; i < attribution.Length; i++)
                {
                    attribution[i] = new AttributionEvidence[options.Methods.Count];
                }

                var config = options.Config;
                var problem = new AttributionProblem(() => new GptModel(new Gpt(config, seed: 0)), theta,
                    AttributionProblem.Documents(docs, config.Context), [.. sources], injectedSource + 1, options.Recipe.WeightDecay, [theta])
                {
                    TrainingLearningRate = options.Recipe.LearningRate,
                };
                for (int m = 0; m < options.Methods.Count; m++)
                {
                    var (name, o) = EvalRunner.ParseSpec(options.Methods[m]);
                    var method = MethodFactory.Create(name, o);
                    using var self = Process.GetCurrentProcess();
                    var cpu0 = self.TotalProcessorTime;
                    clock.Restart();
                    method.Precompute(problem, cancellationToken);
                    double pre = clock.Elapsed.TotalSeconds;
                    self.Refresh();
                    var cpu1 = self.TotalProcessorTime;
                    clock.Restart();
                    for (int start = 0; start < completions.Length; start += 32)
                    {
                        int count = Math.Min(32, completions.Length - start);
                        var scores = method.Score(QueryBatch.Completions(completions[start..(start + count)], config.Context), cancellationToken);
                        for (int q = 0; q < count; q++)
                        {
                            var row = scores.Scores.AsSpan(q * docs.Count, docs.Count);
                            attribution[start + q][m] = AttributionEvidence.From(row, ids, sources, ContaminationPolicy.SpanDocuments(spans[start + q]));
                        }
                    }

                    double scoreMs = clock.Elapsed.TotalMilliseconds / completions.Length;
                    self.Refresh();
                    costs.Add(new ContaminationMethodCost(options.Methods[m], run, pre, (cpu1 - cpu0).TotalSeconds, scoreMs, (self.TotalProcessorTime - cpu1).TotalMilliseconds / completions.Length));
                    log(string.Create(CultureInfo.InvariantCulture, $"  run {run} (rate {rate:P1}, x{multiplicity}): {options.Methods[m]}: precompute {pre:F1} s wall / {(cpu1 - cpu0).TotalSeconds:F1} s CPU, score {scoreMs:F1} ms/query wall"));
                }

                for (int i = 0; i < runQueries.Length; i++)
                {
                    queries.Add(new ContaminationQuery(run, rate, multiplicity, runQueries[i].Form, runQueries[i].Item, spans[i], attribution[i]));
                }

                var line = string.Create(CultureInfo.InvariantCulture,
                    $"run {run}: rate {rate:P1}, multiplicity {multiplicity}: {perForm} items per form, {docs.Count - baseDocs.Length} injected documents ({(double)(docs.Count - baseDocs.Length) / docs.Count:P1} of {docs.Count}); model {(fromCache ? "from cache" : "trained")}");
                lines.Add(line);
                log(line);
                run++;
            }
        }

        lines.Add($"clean items: {overlapping} skipped for sharing a span of >= {options.DedupSpan} tokens with their run's injected items");
        log(lines[^1]);
        return new ContaminationData(queries, costs, lines, candidates.Count, dropped, trained, cached, spanMs / Math.Max(1, spanQueries));
    }

    private (float[] Theta, bool FromCache) Train(List<int[]> docs, List<long> ids, int run, double rate, int multiplicity, CancellationToken cancellationToken)
    {
        var setting = new StringBuilder();
        setting.Append(CultureInfo.InvariantCulture, $"protocol=contamination-v1\ncorpus={options.Corpus}\nmodel={options.Config}\nrecipe={options.Recipe.Key}\nseed={options.Seed}\n");
        setting.Append(CultureInfo.InvariantCulture, $"run={run};rate={rate};multiplicity={multiplicity}\n");
        setting.Append("documents=").Append(RetrainCache.Hash([.. docs.SelectMany(d => d.SelectMany(BitConverter.GetBytes))])).Append('\n');
        setting.Append("ids=").Append(RetrainCache.Hash([.. ids.SelectMany(BitConverter.GetBytes)])).Append('\n');
        var cache = new RetrainCache(options.CacheRoot, setting.ToString());
        var theta = cache.GetOrCompute("model.theta", () =>
        {
            var model = new Gpt(options.Config, options.Seed ^ 0xC0DE);
            DocumentTrainer.Train(model, docs, options.Recipe, options.Seed ^ 0xC0DE, cancellationToken: cancellationToken);
            var adapter = new GptModel(model);
            var flat = new float[adapter.ParameterCount];
            adapter.CopyTo(flat);
            return flat;
        });
        return (theta, cache.Hits > 0);
    }

    private static HashSet<string> Words(string text) => [.. text.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries).Select(w => w.Trim('.').ToLowerInvariant())];

    private static int[] Frame(ITokenizer tokenizer, string text) => tokenizer.EncodeDocument(Encoding.UTF8.GetBytes(text));
}
