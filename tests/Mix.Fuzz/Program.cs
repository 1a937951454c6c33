using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using Mix.Dsl;
using Mix.Fuzz;

// Commands (docs/robustness.md):
//   worker --repo R --seed S --start I --count N [--stack BYTES]   the child process FuzzRunner starts
//   run [--count N] [--seed S] [--workers W] [--out DIR]           a long run: N inputs through child processes
//   probe [family|all] [size]                                      times the hostile families
//   files a.mix b.mix ...                                          times checking files together
string Arg(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
string RepoArg(string from)
{
    var given = Arg("--repo", "");
    return given.Length > 0 ? given : Worker.FindRepoRoot(from);
}
var mode = args.Length > 0 ? args[0] : "";
var invariant = CultureInfo.InvariantCulture;

switch (mode)
{
    case "worker":
        return Worker.Run(RepoArg(AppContext.BaseDirectory), int.Parse(Arg("--seed", "1"), invariant),
            long.Parse(Arg("--start", "0"), invariant), long.Parse(Arg("--count", "1000"), invariant), int.Parse(Arg("--stack", "1048576"), invariant));

    case "run":
    {
        var root = RepoArg(Directory.GetCurrentDirectory());
        var runner = new FuzzRunner
        {
            RepoRoot = root,
            Seed = int.Parse(Arg("--seed", "1"), invariant),
            Workers = int.Parse(Arg("--workers", Environment.ProcessorCount.ToString(invariant)), invariant),
            BatchSize = long.Parse(Arg("--batch", "20000"), invariant),
            Progress = line => Console.Error.Write("\r" + line + "   "),
            Failed = f =>
            {
                var dir = Arg("--out", "");
                if (dir.Length == 0) return;
                Directory.CreateDirectory(dir);
                lock (args) File.AppendAllText(Path.Combine(dir, "failures.txt"), $"#{f.Index} ({f.Kind}, {f.Length} chars): {f.What}{Environment.NewLine}");
            },
        };
        var report = runner.Run(long.Parse(Arg("--start", "0"), invariant), long.Parse(Arg("--count", "1000000"), invariant));
        Console.Error.WriteLine();
        Console.WriteLine(report.Summary(20));
        var outDir = Arg("--out", "");
        if (outDir.Length > 0)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, "summary.txt"), report.Summary(50) + Environment.NewLine);
            var inputs = new FuzzInputs(root, runner.Seed);
            foreach (var t in report.Slowest.Take(10).Select(t => t.Index).Concat(report.Failures.Take(50).Select(f => f.Index)).Distinct())
                foreach (var f in inputs.Get(t).Files)
                    File.WriteAllText(Path.Combine(outDir, $"input-{t}-{Path.GetFileName(f.Path)}"), f.Text);
        }
        return report.Failures.Count == 0 ? 0 : 1;
    }

    case "probe":
    {
        var fams = args.Length > 1 && args[1] != "all" ? new[] { HostileFamilies.Get(args[1]) } : HostileFamilies.All.ToArray();
        foreach (var fam in fams)
        {
            var sizes = args.Length > 2 ? new[] { int.Parse(args[2], invariant) } : fam.Sizes;
            foreach (var n in sizes)
            {
                var src = fam.Build(n);
                string line = "";
                var t = new Thread(() =>
                {
                    var sw = Stopwatch.StartNew();
                    try
                    {
                        var trees = src.Select(MixSyntaxTree.Parse).ToList();
                        var parsed = sw.Elapsed.TotalSeconds;
                        var c = MixCompilation.Create(trees, Array.Empty<ExternalMixer>());
                        var d = c.Diagnostics.Take(3).Select(x => x.ToString()).Select(s => s.Length > 160 ? s[..160] : s);
                        line = $"{sw.Elapsed.TotalSeconds,7:F3}s (parse {parsed:F3}s) {c.Diagnostics.Count,4} diags: {string.Join(" | ", d)}";
                    }
                    catch (Exception e) { line = $"{sw.Elapsed.TotalSeconds,7:F3}s THREW {e.GetType().Name}: {e.Message}"; }
                }, 1024 * 1024);
                t.Start();
                if (!t.Join(TimeSpan.FromSeconds(20))) line = "TIMEOUT";
                Console.WriteLine($"{fam.Name,-18} {n,6} {src.Sum(s => s.Text.Length),8}ch {line}");
                if (line == "TIMEOUT") return 3;
            }
        }
        return 0;
    }

    case "units":
    {
        // What the generator does per file: check it with everything it imports (checkOnly), for every file.
        var src = HostileFamilies.Get(args[1]).Build(int.Parse(args[2], invariant));
        var trees = src.Select(MixSyntaxTree.Parse).ToList();
        var sw = Stopwatch.StartNew();
        foreach (var t in trees) MixCompilation.Create(trees, Array.Empty<ExternalMixer>(), checkOnly: t.Source.Path);
        Console.WriteLine($"{trees.Count} units in {sw.Elapsed.TotalSeconds:F2} s");
        return 0;
    }

    case "files":
    {
        var src = args.Skip(1).Select(p => new Mix.Dsl.Text.SourceText(Path.GetFileName(p), File.ReadAllText(p))).ToList();
        for (int k = 0; k < 3; k++)
        {
            var sw = Stopwatch.StartNew();
            var c = MixCompilation.Create(src);
            Console.WriteLine($"{sw.Elapsed.TotalMilliseconds:F1} ms, {c.Diagnostics.Count} diagnostics");
        }
        return 0;
    }

    default:
        Console.Error.WriteLine("usage: Mix.Fuzz worker|run|probe|files ... (docs/robustness.md)");
        return 2;
}
