using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Attribution.Attribution;
using Attribution.Attribution.Contamination;
using Attribution.Attribution.Spans;
using Attribution.Cli.Evaluation;
using Attribution.Contracts;
using Attribution.Engine;
using Attribution.Scorer;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline bench contamination-stages</c>: the per-query CPU cost of each stage of the Scorer's contamination path
/// on a GPT run, with the Scorer's own objects: the span stage (the query's tokens in the training documents' exact-span
/// index and their normalised words in its <see cref="NormalizedTextIndex"/>), the attribution readout (<see cref="LanguageModelScorer.Score"/>, one query per call, as a batch of one) and the
/// two-stage policy (<see cref="AlertPolicy.Evaluate"/>). Queries: half copy a training document (prompt and completion
/// cut from it: a verbatim leak), half are the run's held-out documents. Process CPU time per query of each stage,
/// each stage run over all queries until it used a second of CPU, after one untimed pass.
/// </summary>
internal static class ContaminationStagesBench
{
    public static Command Create()
    {
        var run = new Option<string>("--run") { Description = "A './pipeline train --model gpt' run directory (the GPT demo's: runs/demo-gpt).", Required = true };
        var method = new Option<string>("--method") { Description = "Attribution method spec served (the GPT demo's by default).", DefaultValueFactory = _ => "trak:k=512,projector=sjlt,damping=3" };
        var queries = new Option<int>("--queries") { Description = "Queries (half copied from training documents, half held out).", DefaultValueFactory = _ => 40 };
        var command = new Command("contamination-stages", "Per-query CPU cost of the Scorer's contamination stages on a GPT run: span lookup, attribution readout, policy.");
        foreach (var o in new Option[] { run, method, queries })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) => Task.FromResult(Run(parse.GetValue(run)!, parse.GetValue(method)!, parse.GetValue(queries), ct)));
        return command;
    }

    private static int Run(string runDir, string methodSpec, int count, CancellationToken ct)
    {
        if (count < 2)
        {
            Console.Error.WriteLine($"bench contamination-stages: --queries must be at least 2 (got {count}).");
            return 2;
        }

        try
        {
            if (!LanguageModelRun.IsLanguageModelRun(runDir))
            {
                throw new ArgumentException($"{runDir} is not a GPT run; train one with './pipeline train --model gpt --out {runDir}' (or run './pipeline demo --model gpt').");
            }

            Blas.SetThreads(1);
            var lm = LanguageModelRun.Load(runDir);
            var (name, options) = EvalRunner.ParseSpec(methodSpec);
            var method = MethodFactory.Create(name, options);
            var problem = lm.Problem();
            var clock = Stopwatch.StartNew();
            method.Precompute(problem, ct);
            double precompute = clock.Elapsed.TotalSeconds;
            var training = lm.TrainDocuments.Select(i => lm.Corpus.Documents[i]).ToArray();
            var framed = training.Select(d => lm.Tokenizer.EncodeDocument(d.Bytes)).ToArray();
            clock.Restart();
            var index = SpanIndex.Build(framed, [.. training.Select(d => d.Id)], [.. training.Select(d => d.SourceId)]);
            double build = clock.Elapsed.TotalSeconds;
            clock.Restart();
            var matcher = new CorpusMatcher(index, lm.Tokenizer);
            double textBuild = clock.Elapsed.TotalSeconds;
            var version = "bench@0";
            var scorer = new LanguageModelScorer(version, method, lm.Config, lm.Tokenizer, [.. training.Select(d => d.Id)], [.. training.Select(d => d.SourceId)],
                [.. lm.Corpus.Sources.Select(s => (long)s.Id)], [.. lm.Corpus.Sources.Select(s => s.Name)]);
            var scorerOptions = new ScorerOptions();
            var policy = AlertPolicy.From(scorerOptions);
            var spans = new SpanLookup(scorer, matcher, scorerOptions.Contamination.MatchOptions());

            var queries = Queries(lm, training, framed, count, version);
            var found = queries.Select(q => spans.Find(q.Query)).ToArray(); // also the warm-up
            var scores = queries.Select(q => scorer.Score([q.Query])).ToArray();
            var verdicts = queries.Select((q, i) => policy.Evaluate(scores[i].SourceRow(0).Span, scorer.SourceIds, scores[i].ExampleRow(0).Span, scorer.ExampleNorms.Span,
                scorer.ExampleIds, scorer.ExampleSourceIds, found[i])).ToArray();
            int alerts = verdicts.Count(v => v is not null), leakedAlerts = verdicts.Where((v, i) => v is not null && queries[i].Leaked).Count();
            // Each stage over all queries, repeated until it has used at least a second of CPU (the process clock ticks in 10 ms).
            var exactOptions = new SpanQueryOptions(scorerOptions.Contamination.SpanMinLength, scorerOptions.Contamination.MaxEvidenceDocuments);
            double exact = PerQuery(queries.Count, () => { foreach (var q in queries) { _ = index.Find(scorer.SpanTokens(q.Query), exactOptions); } });
            double span = PerQuery(queries.Count, () => { foreach (var q in queries) { _ = spans.Find(q.Query); } });
            double attribution = PerQuery(queries.Count, () => { foreach (var q in queries) { _ = scorer.Score([q.Query]); } });
            double decide = PerQuery(queries.Count, () =>
            {
                for (int i = 0; i < queries.Count; i++)
                {
                    _ = policy.Evaluate(scores[i].SourceRow(0).Span, scorer.SourceIds, scores[i].ExampleRow(0).Span, scorer.ExampleNorms.Span, scorer.ExampleIds, scorer.ExampleSourceIds, found[i]);
                }
            });

            int n = queries.Count;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"contamination-stages: {problem.Architecture}, {training.Length} training documents ({index.TokenCount} tokens; span index built in {build:F2} s, {index.MemoryBytes / 1048576.0:F1} MiB; normalised-text index of {matcher.Text.WordCount} words built in {textBuild:F2} s), method {method.Describe()} (precompute {precompute:F1} s), {n} queries ({n / 2} copied from training documents), one thread"));
            Console.WriteLine("| stage | CPU ms per query | share |");
            Console.WriteLine("|---|---:|---:|");
            double total = span + attribution + decide;
            foreach (var (stage, ms) in new[] { ("span stage (SpanLookup.Find: exact spans + normalised text)", span), ("attribution readout (LanguageModelScorer.Score)", attribution), ("policy (AlertPolicy.Evaluate)", decide) })
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {stage} | {ms:F3} | {ms / total:P1} |"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"of the span stage, exact spans alone (tokens + SpanIndex.Find): {exact:F3} CPU ms per query"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"alerts with the default policy: {alerts} ({leakedAlerts} on the {n / 2} copied queries)"));
            // The same stated rule without the normalised-text features (what it was before they existed).
            var exactPolicyOptions = policy.Calibrated.Options with { Weights = [.. policy.Calibrated.Options.Weights.Select((w, k) => ContaminationFeatures.Kinds[k] == ContaminationEvidenceKind.Text ? 0 : w)] };
            var exactVerdicts = queries.Select((q, i) => policy.With(exactPolicyOptions).Evaluate(scores[i].SourceRow(0).Span, scorer.SourceIds, scores[i].ExampleRow(0).Span, scorer.ExampleNorms.Span,
                scorer.ExampleIds, scorer.ExampleSourceIds, found[i])).ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"alerts with the default policy's text weights set to 0: {exactVerdicts.Count(v => v is not null)} ({exactVerdicts.Where((v, i) => v is not null && queries[i].Leaked).Count()} on the copied queries)"));
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException)
        {
            Console.Error.WriteLine($"bench contamination-stages: {e.Message}");
            return 2;
        }
    }

    // Copied: a training document cut at a third, the completion the next tokens (up to a quarter of the context);
    // held out: the run's own held-out queries.
    private static List<(ModelQuery Query, bool Leaked)> Queries(LanguageModelRun lm, Engine.Data.TextDocument[] training, int[][] framed, int count, string version)
    {
        var list = new List<(ModelQuery, bool)>(count);
        for (int d = 0; d < training.Length && list.Count < count / 2; d++)
        {
            var tokens = framed[d];
            int split = Math.Max(2, tokens.Length / 3), take = Math.Min(tokens.Length - split, lm.Config.Context / 4);
            if (take >= 1)
            {
                list.Add((Fitted($"copy-{d}", version, lm, tokens[1..split], tokens[split..(split + take)]), true));
            }
        }

        for (int v = 0; v < lm.ValidationDocuments.Length && list.Count < count; v++)
        {
            try
            {
                var q = lm.Query(v);
                list.Add((Fitted($"held-{v}", version, lm, q.Prompt[1..], q.Completion), false));
            }
            catch (ArgumentException)
            {
                // too short to split into prompt and completion
            }
        }

        return list;
    }

    // A query of these prompt and completion tokens, the prompt cut to its last tokens so that both fit the context
    // (what the Scorer asks a client to send; a longer one is refused).
    private static ModelQuery Fitted(string id, string version, LanguageModelRun lm, int[] prompt, int[] completion)
    {
        int keep = Math.Max(0, lm.Config.Context - completion.Length);
        var kept = prompt.Length > keep ? prompt[(prompt.Length - keep)..] : prompt;
        return ModelQuery.FromTokens(id, version, lm.Tokenizer.Name, [.. kept.Select(t => (long)t)], [.. completion.Select(t => (long)t)], default);
    }

    // CPU milliseconds per query of `pass` (one pass over `n` queries), repeated until it used a second of process CPU
    // (all threads, GC included; the stages run on this thread with one BLAS thread).
    private static double PerQuery(int n, Action pass)
    {
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        var start = self.TotalProcessorTime;
        int passes = 0;
        TimeSpan used;
        do
        {
            pass();
            passes++;
            self.Refresh();
            used = self.TotalProcessorTime - start;
        }
        while (used < TimeSpan.FromSeconds(1));

        return used.TotalMilliseconds / passes / n;
    }
}
