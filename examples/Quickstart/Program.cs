using System;
using System.IO;
using System.Linq;
using System.Reflection;
using Mix.Dsl;
using Mix.Dsl.Text;
using Mix.Runtime;
using TorchSharp;
using static TorchSharp.torch;

// The Quickstart: check the embedded example .mix models, print what the checker inferred for each
// (input and output shapes, parameters), then build PoolFormer-S12 with the runtime and run it on the CPU.

var assembly = Assembly.GetExecutingAssembly();
var sources = assembly.GetManifestResourceNames()
    .Where(n => n.EndsWith(".mix", StringComparison.Ordinal))
    .OrderBy(n => n, StringComparer.Ordinal)
    .Select(n =>
    {
        using var reader = new StreamReader(assembly.GetManifestResourceStream(n)!);
        return new SourceText(n.Substring("models/".Length), reader.ReadToEnd());
    })
    .ToList();

var compilation = MixCompilation.Create(sources);
Console.WriteLine($"Checked {sources.Count} .mix files: {compilation.Diagnostics.Count} diagnostics.");
foreach (var d in compilation.Diagnostics) Console.WriteLine("  " + d);

Console.WriteLine();
Console.WriteLine($"{"model",-20} {"input",-18} {"output",-16} {"parameters",14}");
foreach (var m in compilation.Definitions.Where(d => d.Kind == Mix.Dsl.Syntax.DefinitionKind.Model))
{
    var p = m.Root?.ParameterCount();
    Console.WriteLine($"{m.Name,-20} {string.Join(", ", m.Inputs),-18} {m.Output?.ToString() ?? "?",-16} {(p is long n ? n.ToString("N0") : "?"),14}");
}

Console.WriteLine();
torch.manual_seed(0);
using var model = MetaFormer.PoolFormerS12();
model.eval();
using (torch.no_grad())
{
    using var x = torch.randn(1, 3, 224, 224);
    var watch = System.Diagnostics.Stopwatch.StartNew();
    using var logits = model.forward(x);
    Console.WriteLine($"poolformer_s12 forward on CPU: [1, 3, 224, 224] -> [{string.Join(", ", logits.shape)}] in {watch.ElapsedMilliseconds} ms");
    var keys = model.state_dict().Keys.ToList();
    var expected = compilation.Find("poolformer_s12")!.Root!.AllWeights().Select(w => w.Key).ToList();
    Console.WriteLine(keys.SequenceEqual(expected)
        ? $"Its {keys.Count} state-dict keys are exactly those the .mix source names (timm's)."
        : "Its state-dict keys differ from the .mix source.");
}
