using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using Mix.Dsl;
using Mix.Fuzz;

if (args.Length >= 1 && args[0] == "probe")
{
    var fams = args.Length > 1 && args[1] != "all" ? new[] { HostileFamilies.Get(args[1]) } : HostileFamilies.All.ToArray();
    foreach (var fam in fams)
    {
        var sizes = args.Length > 2 ? new[] { int.Parse(args[2]) } : fam.Sizes;
        foreach (var n in sizes)
        {
            var src = fam.Build(n);
            string line = "";
            var t = new Thread(() =>
            {
                var sw = Stopwatch.StartNew();
                try
                {
                    var c = MixCompilation.Create(src);
                    var d = c.Diagnostics.Take(3).Select(x => x.ToString()).Select(s => s.Length > 160 ? s[..160] : s);
                    line = $"{sw.Elapsed.TotalSeconds,7:F3}s {c.Diagnostics.Count,4} diags: {string.Join(" | ", d)}";
                }
                catch (Exception e) { line = $"{sw.Elapsed.TotalSeconds,7:F3}s THREW {e.GetType().Name}: {e.Message}"; }
            }, 1024 * 1024);
            Console.Out.Flush();
            t.Start();
            if (!t.Join(TimeSpan.FromSeconds(double.Parse(Environment.GetEnvironmentVariable("PROBE_LIMIT") ?? "20")))) line = "TIMEOUT";
            Console.WriteLine($"{fam.Name,-18} {n,6} {src.Sum(s => s.Text.Length),8}ch {line}");
            if (line == "TIMEOUT") Environment.Exit(3);
        }
    }
    return 0;
}
if (args.Length >= 1 && args[0] == "files")
{
    var src = args.Skip(1).Select(p => new Mix.Dsl.Text.SourceText(System.IO.Path.GetFileName(p), System.IO.File.ReadAllText(p))).ToList();
    for (int k = 0; k < 3; k++)
    {
        var sw = Stopwatch.StartNew();
        var c = MixCompilation.Create(src);
        Console.WriteLine($"{sw.Elapsed.TotalMilliseconds:F1} ms, {c.Diagnostics.Count} diagnostics");
    }
    return 0;
}
Console.Error.WriteLine("usage: probe [family|all] [size]");
return 2;
