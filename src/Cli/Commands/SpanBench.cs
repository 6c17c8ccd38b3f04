using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Attribution.Attribution.Spans;
using Attribution.Engine;
using Attribution.Engine.Data;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>bench spans</c>: the exact-span index (<see cref="SpanIndex"/>) on the text corpus. Holds out a seeded fraction of
/// the documents, tokenizes the rest, builds the index (time, memory), then times one query at a time: half are windows
/// copied from indexed documents (a verbatim leak), half windows of held-out documents (fresh text).
/// </summary>
internal static class SpanBench
{
    public static Command Create()
    {
        var corpus = new Option<string>("--corpus") { Description = "Corpus spec (TextCorpus).", DefaultValueFactory = _ => "fortunes,foldoc,jargon,devil" };
        var tokenizer = new Option<string>("--tokenizer") { Description = "Tokenizer: bytes or gpt2.", DefaultValueFactory = _ => "gpt2" };
        var queries = new Option<int>("--queries") { Description = "Timed queries (half copied, half fresh).", DefaultValueFactory = _ => 1000 };
        var length = new Option<int>("--query-length") { Description = "Tokens per query (shorter held-out documents are used whole).", DefaultValueFactory = _ => 64 };
        var minLength = new Option<int>("--min-length") { Description = "Shortest span reported.", DefaultValueFactory = _ => 8 };
        var maxDocuments = new Option<int>("--max-documents") { Description = "Documents listed per span.", DefaultValueFactory = _ => 16 };
        var holdout = new Option<double>("--holdout") { Description = "Fraction of documents left out of the index (the fresh queries).", DefaultValueFactory = _ => 0.02 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the split and the query choice.", DefaultValueFactory = _ => 1 };
        var command = new Command("spans", "The exact-span index on the text corpus: build time and memory, per-query latency p50/p99 for copied and fresh queries.");
        foreach (var o in new Option[] { corpus, tokenizer, queries, length, minLength, maxDocuments, holdout, seed })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse => Run(parse.GetValue(corpus)!, parse.GetValue(tokenizer)!, parse.GetValue(queries), parse.GetValue(length),
            new SpanQueryOptions(parse.GetValue(minLength), parse.GetValue(maxDocuments)), parse.GetValue(holdout), parse.GetValue(seed)));
        return command;
    }

    private static int Run(string spec, string tokenizerName, int queryCount, int queryLength, SpanQueryOptions options, double holdout, ulong seed)
    {
        if (queryCount < 2 || queryLength < 1 || options.MinLength < 1 || options.MaxDocuments < 1 || !(holdout > 0 && holdout < 1))
        {
            Console.Error.WriteLine("--queries must be >= 2, --query-length, --min-length and --max-documents >= 1, --holdout in (0, 1).");
            return 2;
        }

        if (!Tokenizers.Names.Contains(tokenizerName))
        {
            Console.Error.WriteLine($"Unknown --tokenizer '{tokenizerName}'; known: {string.Join(", ", Tokenizers.Names)}.");
            return 2;
        }

        var tokenizer = Tokenizers.Create(tokenizerName);
        var text = TextCorpus.Load(spec);
        var (train, validation) = text.Split(holdout, seed);
        var sw = Stopwatch.StartNew();
        var tokens = new int[text.Documents.Count][];
        Parallel.For(0, tokens.Length, i => tokens[i] = tokenizer.Encode(text.Text(i)));
        double tokenizeSeconds = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"bench spans: corpus {text.Spec} ({text.Documents.Count} documents, {text.Sources.Count} sources), tokenizer {tokenizer.Name}: " +
            $"{tokens.Sum(t => (long)t.Length):N0} tokens, tokenized in {tokenizeSeconds:F1} s (all cores; not part of the index)");

        var docs = train.Select(i => tokens[i]).ToArray();
        var ids = train.Select(i => text.Documents[i].Id).ToArray();
        var sources = train.Select(i => text.Documents[i].SourceId).ToArray();
        GC.Collect();
        long before = GC.GetTotalMemory(true);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        using var self = Process.GetCurrentProcess();
        var cpu0 = self.TotalProcessorTime;
        sw.Restart();
        var index = SpanIndex.Build(docs, ids, sources);
        double build = sw.Elapsed.TotalSeconds;
        self.Refresh();
        double buildCpu = (self.TotalProcessorTime - cpu0).TotalSeconds;
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        long retained = GC.GetTotalMemory(true) - before;
        Console.WriteLine($"index: {index.DocumentCount:N0} documents ({validation.Length:N0} held out), {index.TokenCount:N0} tokens; build {build:F2} s wall, {buildCpu:F2} s CPU (process) on one thread; " +
            $"arrays {index.MemoryBytes / 1048576.0:F1} MiB ({(double)index.MemoryBytes / index.TokenCount:F1} B/token), retained {retained / 1048576.0:F1} MiB, allocated during build {allocated / 1048576.0:F1} MiB");

        var rng = new Rng(seed);
        var copied = Windows(rng, train.Where(i => tokens[i].Length >= queryLength).Select(i => tokens[i]).ToArray(), queryCount / 2, queryLength, "indexed");
        var fresh = Windows(rng, validation.Where(i => tokens[i].Length >= options.MinLength).Select(i => tokens[i]).ToArray(), queryCount - (queryCount / 2), queryLength, "held-out");
        if (copied is null || fresh is null)
        {
            return 2;
        }

        // Warm-up (JIT tiering), not timed.
        foreach (var q in copied.Take(50).Concat(fresh.Take(50)))
        {
            index.Find(q, options);
        }

        Console.WriteLine($"queries: {queryLength} tokens (held-out documents shorter than that whole), min span {options.MinLength}, at most {options.MaxDocuments} documents per span; one query at a time, one thread");
        Measure("copied from an indexed document", index, copied, options, queryLength);
        Measure("held-out document (fresh)", index, fresh, options, queryLength);
        return 0;
    }

    private static int[][]? Windows(Rng rng, int[][] pool, int count, int length, string what)
    {
        if (pool.Length == 0)
        {
            Console.Error.WriteLine($"No {what} document is long enough for a query; lower --query-length or --min-length.");
            return null;
        }

        var result = new int[count][];
        for (int i = 0; i < count; i++)
        {
            var doc = pool[rng.NextInt(pool.Length)];
            int n = Math.Min(length, doc.Length);
            int start = rng.NextInt(doc.Length - n + 1);
            result[i] = doc[start..(start + n)];
        }

        return result;
    }

    private static void Measure(string kind, SpanIndex index, int[][] queries, SpanQueryOptions options, int queryLength)
    {
        var ms = new double[queries.Length];
        var longest = new int[queries.Length];
        int spans = 0;
        using var self = Process.GetCurrentProcess();
        var cpu0 = self.TotalProcessorTime;
        for (int i = 0; i < queries.Length; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            var found = index.Find(queries[i], options);
            ms[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            spans += found.Count;
            longest[i] = found.Count == 0 ? 0 : found.Max(s => s.Length);
        }

        self.Refresh();
        double cpuMs = (self.TotalProcessorTime - cpu0).TotalMilliseconds / queries.Length;
        double wallMean = ms.Average();
        Array.Sort(ms);
        Array.Sort(longest);
        int whole = longest.Count(l => l == queryLength);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {kind}: {queries.Length} queries, latency p50 {Pct(ms, 0.50):F3} ms, p99 {Pct(ms, 0.99):F3} ms, max {ms[^1]:F3} ms, mean {wallMean:F3} ms wall / {cpuMs:F3} ms CPU (process); " +
            $"{longest.Count(l => l > 0)} with a span >= {options.MinLength} ({whole} matched whole), {spans} spans; longest span p50 {Pct(longest, 0.5)} / p90 {Pct(longest, 0.9)} tokens"));
    }

    private static T Pct<T>(T[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
}
