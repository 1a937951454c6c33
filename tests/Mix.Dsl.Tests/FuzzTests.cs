using System;
using System.Globalization;
using Mix.Fuzz;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The front end never crashes, throws or hangs, on random inputs: mutations of the example models and documented
/// examples, programs generated from the grammar with deep nesting, long chains, self reference and growing symbolic
/// arithmetic, the hostile families at random sizes, and multi-file import graphs (tests/Mix.Fuzz/FuzzInputs.cs).
/// The inputs are checked in child processes, each on a thread with a 1 MB stack, so a stack overflow fails this
/// test (naming the input) instead of killing the test host. MIX_FUZZ_COUNT changes the number of inputs; the
/// long run is a command (docs/robustness.md).
/// </summary>
public class FuzzTests
{
    [Fact]
    public void Random_inputs_never_crash_throw_or_hang_the_checker()
    {
        long count = long.TryParse(Environment.GetEnvironmentVariable("MIX_FUZZ_COUNT"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 4_000;
        var runner = new FuzzRunner
        {
            RepoRoot = Repo.Root,
            Seed = 19,
            BatchSize = (count + 1) / Math.Max(1, Environment.ProcessorCount),
            // Generous for a shared CI machine; the long run on an idle machine is held to one second.
            LimitMilliseconds = 5_000,
        };
        var report = runner.Run(0, count);
        Assert.True(report.Failures.Count == 0, report.Summary());
        Assert.Equal(count, report.Inputs);
    }
}
