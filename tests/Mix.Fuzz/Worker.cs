using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using Mix.Dsl;

namespace Mix.Fuzz;

/// <summary>
/// The child process: checks inputs one after another, each on a fresh thread with a small fixed stack (1 MB by
/// default, less than the compiler's or the IDE's threads have), and writes one line before (<c>begin i</c>) and
/// one after (<c>done i wall-ms cpu-ms status</c>) each. A stack overflow kills this process, not the caller, and the last
/// <c>begin</c> names the input.
/// </summary>
public static class Worker
{
    public static int Run(string repoRoot, int seed, long start, long count, int stackBytes)
    {
        var inputs = new FuzzInputs(repoRoot, seed);
        var output = Console.Out;
        // Compile the checker's code paths once, so the first input's time is the check, not the JIT.
        var zoo = Directory.GetFiles(Path.Combine(repoRoot, "models"), "*.mix").Select(p => new Mix.Dsl.Text.SourceText(Path.GetFileName(p), File.ReadAllText(p))).ToList();
        MixCompilation.Create(zoo);
        for (long i = start; i < start + count; i++)
        {
            var input = inputs.Get(i);
            output.WriteLine($"begin {i}");
            output.Flush();
            string status = "ok";
            double ms = 0;
            var thread = new Thread(() =>
            {
                var sw = Stopwatch.StartNew();
                try
                {
                    var c = MixCompilation.Create(input.Files);
                    ms = sw.Elapsed.TotalMilliseconds;
                    status = Verdict(input, c);
                }
                catch (Exception e)
                {
                    ms = sw.Elapsed.TotalMilliseconds;
                    status = $"threw {e.GetType().Name}: {OneLine(e.Message)}";
                }
            }, stackBytes);
            // CPU time as well as wall time: the long run shares the machine at low priority, where wall time
            // measures the neighbours.
            var self = Process.GetCurrentProcess();
            var cpuBefore = self.TotalProcessorTime;
            thread.Start();
            thread.Join();
            self.Refresh();
            var cpu = (self.TotalProcessorTime - cpuBefore).TotalMilliseconds;
            var inv = System.Globalization.CultureInfo.InvariantCulture;
            output.WriteLine($"done {i} {ms.ToString("F2", inv)} {cpu.ToString("F2", inv)} {status}");
        }
        output.Flush();
        return 0;
    }

    /// <summary>"ok", or what is wrong with the result.</summary>
    static string Verdict(FuzzInput input, MixCompilation c)
    {
        if (c.Diagnostics.FirstOrDefault(d => d.Id == "MIX0999") is { } internalError) return "internal-error " + OneLine(internalError.ToString());
        foreach (var d in c.Diagnostics)
        {
            var file = input.Files.FirstOrDefault(f => f.Path == d.Path);
            if (file is null || d.Span.Start < 0 || d.Span.End > file.Text.Length) return $"bad-span {OneLine(d.ToString())}";
            if (d.Message.Length > 20_000) return $"huge-message {d.Id} ({d.Message.Length} characters)";
        }
        bool declares = c.Files.Any(f => f.Definitions.Count + f.Enums.Count + f.Imports.Count > 0);
        bool blank = input.Files.All(f => f.Text.Split('\n').All(l => l.Trim().Trim(';').Trim().Length == 0 || l.TrimStart(' ', '\t', ';').StartsWith("//", StringComparison.Ordinal)));
        if (c.Diagnostics.Count == 0 && !declares && !blank) return "silent (neither diagnostics nor definitions)";
        return "ok";
    }

    static string OneLine(string s)
    {
        s = s.Replace('\n', ' ').Replace('\r', ' ');
        return s.Length > 300 ? s.Substring(0, 300) + "…" : s;
    }

    /// <summary>The repository root above <paramref name="from"/> (the folder with Dsl.sln).</summary>
    public static string FindRepoRoot(string from)
    {
        var dir = new DirectoryInfo(from);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Dsl.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new DirectoryNotFoundException($"no Dsl.sln above {from}");
    }
}
