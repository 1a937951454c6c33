using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace Mix.Fuzz;

/// <summary>One input that failed: it crashed the child (stack overflow, abort), hung, threw, or gave a bad result.</summary>
public sealed record FuzzFailure(long Index, string Kind, int Length, string What);

/// <summary>One timed input.</summary>
/// <summary>One timed input: wall time, and the CPU time of the child while it checked the input (what the limit
/// applies to: on a shared machine wall time measures the neighbours).</summary>
public sealed record FuzzTiming(long Index, string Kind, int Length, double Milliseconds, double CpuMilliseconds);

/// <summary>The outcome of a run.</summary>
public sealed record FuzzReport(long Inputs, IReadOnlyList<FuzzFailure> Failures, IReadOnlyList<FuzzTiming> Slowest, TimeSpan Elapsed)
{
    public string Summary(int slowest = 10)
    {
        var lines = new List<string>
        {
            $"{Inputs:N0} inputs in {Elapsed.TotalSeconds:F0} s; {Failures.Count} failed",
        };
        lines.AddRange(Failures.Take(20).Select(f => $"  FAILED #{f.Index} ({f.Kind}, {f.Length} chars): {f.What}"));
        lines.Add("slowest:");
        lines.AddRange(Slowest.Take(slowest).Select(t => $"  #{t.Index} {t.Kind}, {t.Length} chars: {t.CpuMilliseconds:F0} ms CPU ({t.Milliseconds:F0} ms wall)"));
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>
/// Runs inputs through child processes (<see cref="Worker"/>), so a stack overflow in the checker is a reported
/// failure, not a dead test host. A child that dies is replaced and the run goes on after the input it died on; one
/// that spends <see cref="HangLimit"/> of CPU time without a result is killed and its input reported as a hang.
/// </summary>
public sealed class FuzzRunner
{
    public string RepoRoot { get; init; } = "";
    public int Seed { get; init; } = 1;
    public int Workers { get; init; } = Math.Max(1, Environment.ProcessorCount);
    public long BatchSize { get; init; } = 5_000;
    public int StackBytes { get; init; } = 1024 * 1024;
    /// <summary>An input that takes more CPU time than this is a failure.</summary>
    public double LimitMilliseconds { get; init; } = 1_000;
    public TimeSpan HangLimit { get; init; } = TimeSpan.FromSeconds(30);
    public Action<string>? Progress { get; init; }
    /// <summary>Called with each failure as it is found (a long run writes them down before it ends).</summary>
    public Action<FuzzFailure>? Failed { get; init; }

    /// <summary>The worker executable: this assembly, run by the same <c>dotnet</c>.</summary>
    static string WorkerPath => typeof(FuzzRunner).Assembly.Location;

    public FuzzReport Run(long start, long count)
    {
        var sw = Stopwatch.StartNew();
        var failures = new List<FuzzFailure>();
        var timings = new List<FuzzTiming>();
        var inputs = new FuzzInputs(RepoRoot, Seed);
        long next = start, end = start + count, done = 0;
        var gate = new object();
        var tasks = Enumerable.Range(0, Workers).Select(_ => Task.Run(() =>
        {
            while (true)
            {
                long from, n;
                lock (gate)
                {
                    if (next >= end) return;
                    from = next;
                    n = Math.Min(BatchSize, end - next);
                    next += n;
                }
                while (n > 0)
                {
                    var (checkedCount, failure, batchTimings) = RunChild(from, n);
                    lock (gate)
                    {
                        done += checkedCount + (failure is null ? 0 : 1);
                        foreach (var t in batchTimings) AddTiming(timings, t);
                        int before = failures.Count;
                        foreach (var t in batchTimings.Where(t => t.CpuMilliseconds > LimitMilliseconds))
                            failures.Add(new FuzzFailure(t.Index, t.Kind, t.Length, $"took {t.CpuMilliseconds:F0} ms CPU ({t.Milliseconds:F0} ms wall; limit {LimitMilliseconds:F0} ms)"));
                        if (failure is not null) failures.Add(Describe(inputs, failure.Value.Index, failure.Value.What));
                        foreach (var f in failures.Skip(before)) Failed?.Invoke(f);
                        Progress?.Invoke($"{done:N0}/{count:N0} inputs, {failures.Count} failed, {sw.Elapsed.TotalSeconds:F0} s");
                    }
                    // Resume after the input the child failed on (or after the batch).
                    long consumed = checkedCount + (failure is null ? 0 : 1);
                    if (consumed == 0) consumed = 1;
                    from += consumed;
                    n -= consumed;
                }
            }
        })).ToArray();
        Task.WaitAll(tasks);
        failures.AddRange(_reported);
        return new FuzzReport(done, failures.OrderBy(f => f.Index).ToList(), timings.OrderByDescending(t => t.CpuMilliseconds).ToList(), sw.Elapsed);
    }

    static void AddTiming(List<FuzzTiming> slowest, FuzzTiming t)
    {
        const int Keep = 50;
        if (slowest.Count >= Keep && t.CpuMilliseconds <= slowest.Min(s => s.CpuMilliseconds)) return;
        slowest.Add(t);
        if (slowest.Count > Keep) slowest.Remove(slowest.MinBy(s => s.CpuMilliseconds)!);
    }

    static FuzzFailure Describe(FuzzInputs inputs, long index, string what)
    {
        var input = inputs.Get(index);
        return new FuzzFailure(index, input.Kind, input.Length, what);
    }

    /// <summary>Runs one child over [from, from + count); returns how many inputs completed cleanly before a
    /// failure that ended the child (if any), and the timings of the ones that completed.</summary>
    (long Checked, (long Index, string What)? Failure, List<FuzzTiming> Timings) RunChild(long from, long count)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "exec", WorkerPath, "worker", "--repo", RepoRoot, "--seed", Seed.ToString(CultureInfo.InvariantCulture),
                     "--start", from.ToString(CultureInfo.InvariantCulture), "--count", count.ToString(CultureInfo.InvariantCulture),
                     "--stack", StackBytes.ToString(CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = new System.Text.StringBuilder();
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null && stderr.Length < 4000) stderr.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        var timings = new List<FuzzTiming>();
        var inputs = new FuzzInputs(RepoRoot, Seed);
        long? current = null;
        long completed = 0;
        (long, string)? failure = null;
        var cpuAtLastLine = TimeSpan.Zero;
        while (true)
        {
            // A hang is CPU time spent without a result, not wall time: at low priority on a busy machine a child
            // can wait minutes for a core (and its warm-up alone can take longer than the limit).
            var lineTask = p.StandardOutput.ReadLineAsync();
            bool hung = false;
            while (!lineTask.Wait(TimeSpan.FromSeconds(5)))
            {
                try
                {
                    p.Refresh();
                    if (p.HasExited || p.TotalProcessorTime - cpuAtLastLine <= HangLimit) continue;
                }
                // the child may exit between the two reads: TotalProcessorTime then throws (Win32Exception on Linux)
                catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception) { continue; }
                hung = true;
                break;
            }
            if (hung)
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                failure = (current ?? from + completed, $"hung (no result after {HangLimit.TotalSeconds:F0} s of CPU time)");
                break;
            }
            try { cpuAtLastLine = p.TotalProcessorTime; }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception) { /* exited: its last line follows */ }
            var line = lineTask.Result;
            if (line is null) break;
            var parts = line.Split(' ', 5);
            if (parts[0] == "begin") current = long.Parse(parts[1], CultureInfo.InvariantCulture);
            else if (parts[0] == "done")
            {
                long index = long.Parse(parts[1], CultureInfo.InvariantCulture);
                double ms = double.Parse(parts[2], CultureInfo.InvariantCulture);
                double cpu = double.Parse(parts[3], CultureInfo.InvariantCulture);
                var status = parts.Length > 4 ? parts[4] : "ok";
                var input = inputs.Get(index);
                timings.Add(new FuzzTiming(index, input.Kind, input.Length, ms, cpu));
                current = null;
                if (status != "ok")
                {
                    // Not fatal for the child: record it and let the child go on.
                    var reported = new FuzzFailure(index, input.Kind, input.Length, status);
                    _reported.Add(reported);
                    Failed?.Invoke(reported);
                }
                completed++;
            }
        }
        p.WaitForExit();
        if (failure is null && completed < count)
        {
            var crashed = current ?? from + completed;
            var why = stderr.ToString().Split('\n').FirstOrDefault(l => l.Trim().Length > 0)?.Trim() ?? "";
            failure = (crashed, $"the child process died (exit code {p.ExitCode}) while checking it: {why}");
        }
        return (completed, failure, timings);
    }

    readonly System.Collections.Concurrent.ConcurrentBag<FuzzFailure> _reported = new();

    /// <summary>Failures the children reported without dying (exceptions, internal errors, bad spans).</summary>
    public IReadOnlyList<FuzzFailure> Reported => _reported.OrderBy(f => f.Index).ToList();
}
