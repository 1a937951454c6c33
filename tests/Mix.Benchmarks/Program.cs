using System;
using System.Diagnostics;
using BenchmarkDotNet.Running;
using Mix.Benchmarks;

if (args.Length > 0 && args[0] == "--generator-cpu")
{
    // CPU time per operation (process CPU time over many runs): robust on a shared, oversubscribed machine where
    // BenchmarkDotNet's wall-clock numbers include time spent waiting for a core.
    foreach (var files in new[] { "poolformer", "all", "poolformer" })
    {
        var b = new GeneratorBenchmarks { Files = files };
        b.Setup();
        Measure($"{files}: full first run", 40, () => b.FullFirstRun());
        Measure($"{files}: edit (spec changes) + incremental run", 200, () => b.EditAndRun());
        Measure($"{files}: comment edit + incremental run", 200, () => b.CommentEditAndRun());
        Measure($"{files}: front end only: parse + check", 200, () => b.FrontEndOnly());
        Measure($"{files}: specs only (front end + translation)", 200, () => b.SpecsOnly());
        Measure($"{files}: front end parse only", 200, () => b.ParseOnly());
    }
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(FrontEndBenchmarks).Assembly).Run(args);

static void Measure(string what, int n, Action op)
{
    for (int i = 0; i < n; i++) op(); // warm-up: tiered JIT reaches its final code
    GC.Collect();
    var p = Process.GetCurrentProcess();
    p.Refresh();
    var cpu0 = p.TotalProcessorTime;
    var wall = Stopwatch.StartNew();
    for (int i = 0; i < n; i++) op();
    wall.Stop();
    p.Refresh();
    var cpu = (p.TotalProcessorTime - cpu0).TotalMilliseconds / n;
    Console.WriteLine($"{what,-55} CPU {cpu,8:F2} ms/op   wall {wall.Elapsed.TotalMilliseconds / n,8:F2} ms/op   (n = {n})");
}
