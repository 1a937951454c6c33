using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Mix.Benchmarks.FrontEndBenchmarks).Assembly).Run(args);
