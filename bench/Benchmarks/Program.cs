using Attribution.Benchmarks;
using BenchmarkDotNet.Running;

// 'arrow-compare' and 'arrow-fuzz' are plain timed runs; anything else goes to BenchmarkDotNet, where every
// benchmark class in this assembly is selectable: dotnet run -c Release --project bench/Benchmarks -- --filter '*Arrow*'
return args.FirstOrDefault() switch
{
    "arrow-compare" => ArrowCompare.Run(args[1..]),
    "arrow-fuzz" => ArrowFuzz.Run(args[1..]),
    _ => Run(args),
};

static int Run(string[] args)
{
    BenchmarkSwitcher.FromAssembly(typeof(ArrowBenchmarks).Assembly).Run(args);
    return 0;
}
