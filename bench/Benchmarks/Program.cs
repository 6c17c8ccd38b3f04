using BenchmarkDotNet.Running;

// Every benchmark class in this assembly is selectable: dotnet run -c Release --project bench/Benchmarks -- --filter '*Arrow*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
