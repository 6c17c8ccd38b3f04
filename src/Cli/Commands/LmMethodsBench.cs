using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Attribution.Attribution;
using Attribution.Cli.Evaluation;
using Attribution.Engine;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline bench lm-methods</c>: every attribution method on one GPT run, in one process, one after the other on
/// the same training documents and the same held-out queries: precompute seconds, per-query latency (the batch's
/// scoring time over its queries), the same per training document, and the precomputed state's bytes.
/// </summary>
internal static class LmMethodsBench
{
    /// <summary>The methods measured by default (settings that fit a small run on a shared 2-core machine).</summary>
    public const string DefaultMethods = "forward-only:horizon=4,batch=16,rank=8;trak:k=512;tracin;grad-dot;if:solver=cg,iterations=10";

    public static Command Create()
    {
        var run = new Option<string>("--run") { Description = "A './pipeline train --model gpt' run directory.", Required = true };
        var queries = new Option<int>("--queries") { Description = "Held-out documents used as queries (the first N; each split into prompt and completion).", DefaultValueFactory = _ => 4 };
        var trainLimit = new Option<int>("--train-limit") { Description = "Attribute to the first N training documents (0 = all).", DefaultValueFactory = _ => 40 };
        var methods = new Option<string>("--methods") { Description = "Semicolon-separated method specs (name:key=value,...).", DefaultValueFactory = _ => DefaultMethods };
        var threads = new Option<int>("--threads") { Description = "BLAS threads.", DefaultValueFactory = _ => 1 };
        var command = new Command("lm-methods", "Per-query latency, precompute time and state size of every attribution method on one GPT run (same documents, same queries).");
        foreach (var o in new Option[] { run, queries, trainLimit, methods, threads })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) => Task.FromResult(Run(parse.GetValue(run)!, parse.GetValue(queries), parse.GetValue(trainLimit), parse.GetValue(methods)!, parse.GetValue(threads), ct)));
        return command;
    }

    private static int Run(string runDir, int queryCount, int trainLimit, string methodSpecs, int threads, CancellationToken cancellationToken)
    {
        if (queryCount < 1 || trainLimit < 0 || threads < 1)
        {
            Console.Error.WriteLine($"bench lm-methods: --queries and --threads must be at least 1 and --train-limit non-negative (got {queryCount}, {threads}, {trainLimit}).");
            return 2;
        }

        try
        {
            if (!LanguageModelRun.IsLanguageModelRun(runDir))
            {
                throw new ArgumentException($"{runDir} is not a GPT run; train one with './pipeline train --model gpt --out {runDir}'.");
            }

            var specs = methodSpecs.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var methods = specs.Select(s => { var (name, o) = EvalRunner.ParseSpec(s); return (Spec: s, Method: MethodFactory.Create(name, o)); }).ToArray();
            Blas.SetThreads(threads);
            var lm = LanguageModelRun.Load(runDir);
            var problem = lm.Problem(trainLimit);
            var positions = Enumerable.Range(0, Math.Min(queryCount, lm.ValidationDocuments.Length)).ToArray();
            var queries = lm.Queries(positions);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"lm-methods: {problem.Architecture} ({problem.ParameterCount} parameters), {problem.Count} training documents (rows of {problem.Training.SequenceLength} tokens), {problem.SourceCount} sources, {queries.Count} queries (rows of {queries.Batch.SequenceLength}), {threads} BLAS thread(s)"));
            Console.WriteLine("| method | precompute s | per query ms | per query per document µs | state MiB |");
            Console.WriteLine("|---|---:|---:|---:|---:|");
            foreach (var (spec, method) in methods)
            {
                var clock = Stopwatch.StartNew();
                method.Precompute(problem, cancellationToken);
                double precompute = clock.Elapsed.TotalSeconds;
                // One untimed query first (JIT, buffers), then the batch.
                method.Score(lm.Queries([positions[0]]), cancellationToken);
                clock.Restart();
                method.Score(queries, cancellationToken);
                double perQuery = clock.Elapsed.TotalSeconds / queries.Count;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {spec} | {precompute:F1} | {perQuery * 1e3:F1} | {perQuery * 1e6 / problem.Count:F1} | {method.StateBytes / 1048576.0:F2} |"));
            }

            return 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException)
        {
            Console.Error.WriteLine($"bench lm-methods: {e.Message}");
            return 1;
        }
    }
}
