using System;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// <c>[Mixer("name", "parameters", "signature")]</c> on a C# module makes it a token mixer of .mix: the front end checks
/// its uses like a built-in's (through <c>ExternalMixer</c>), the analyzer knows it, generated code builds it.
/// </summary>
public class MixerAttributeTests
{
    const string CSharp = """
        using TorchSharp;
        using static TorchSharp.torch;
        namespace User
        {
            [Mix.Mixer("scaled_tokens", "scale: float = 1.0", "(x: [B, N, dim]) -> [B, N, dim]")]
            public sealed class ScaledTokens : nn.Module<Tensor, Tensor>
            {
                readonly double _scale;
                public ScaledTokens(long dim, double scale = 1.0) : base(nameof(ScaledTokens)) => _scale = scale;
                public override Tensor forward(Tensor x) => x * _scale;
            }
        }
        """;

    const string Mix = """
        block uses_it(dim: int, token_mixer: mixer = scaled_tokens(scale = 2.0)) (x: [B, N, dim]) -> [B, N, dim] {
          m = token_mixer(dim)
          direct = scaled_tokens(dim = dim, scale = 3.0)
          return direct(x) + m(x)
        }
        """;

    static InMemoryText MixFile(string text = Mix) => new(Harness.Root + "uses.mix", text);

    [Fact]
    public void Generated_code_builds_the_csharp_mixer_and_runs()
    {
        var result = Harness.Run(new[] { MixFile() }, out var output, CSharp);
        Assert.Empty(result.Diagnostics.Select(d => d.ToString()));
        var source = result.Results.Single().GeneratedSources.Single(s => s.HintName == "uses.mix.g.cs").SourceText.ToString();
        Assert.Contains("public MixerFactory TokenMixer { get; init; } = dim => new global::User.ScaledTokens(dim, scale: 2.0);", source);
        Assert.Contains("direct = new global::User.ScaledTokens(options.Dim, scale: 3.0);", source);
        Assert.Contains("public readonly global::User.ScaledTokens direct;", source);
        Assert.Contains("MixDispatch.TokenMixer(direct, x)", source);
        var problems = output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));

        // Emit and run: direct (×3) + token_mixer (×2) = ×5.
        using var stream = new MemoryStream();
        var emit = output.Emit(stream, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        var assembly = System.Reflection.Assembly.Load(stream.ToArray());
        var type = assembly.GetType("Mix.Snapshots.UsesIt")!;
        var options = Activator.CreateInstance(type.GetNestedType("Options")!, 8L)!;
        using var model = (nn.Module<Tensor, Tensor>)Activator.CreateInstance(type, options)!;
        using var _ = torch.no_grad();
        using var x = torch.randn(2, 3, 8);
        using var y = model.call(x);
        Assert.True(y.allclose(x * 5.0));
    }

    static ImmutableArray<Diagnostic> Analyze(string csharp, InMemoryText mix) =>
        Harness.Run(new[] { mix }, out _, csharp).Diagnostics.Where(d => d.Id.StartsWith("MIX0", StringComparison.Ordinal)).ToImmutableArray();

    [Fact]
    public void The_front_end_checks_uses_against_the_declared_parameters_and_contract()
    {
        Assert.Empty(Analyze(CSharp, MixFile()).Select(d => d.ToString()));
        var misspelt = Analyze(CSharp, MixFile(Mix.Replace("scale = 3.0", "scael = 3.0")));
        Assert.Contains(misspelt, d => d.Id == "MIX0201");
        var wrongLayout = Analyze(CSharp, MixFile("block b(dim: int) (x: [B, dim, H, W]) -> [B, dim, H, W] {\n  m = scaled_tokens(dim = dim)\n  return m(x)\n}\n"));
        Assert.Contains(wrongLayout, d => d.Id == "MIX0302");
        var unknown = Analyze("namespace User { public class A { } }", MixFile());
        Assert.Contains(unknown, d => d.Id == "MIX0101");
    }

    [Fact]
    public void Csharp_edits_that_keep_the_declaration_leave_the_mix_specs_cached()
    {
        var compilation = Harness.Compilation(CSharp);
        var driver = Harness.Driver(new[] { MixFile() }).RunGenerators(compilation, TestContext.Current.CancellationToken);
        var edited = compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.First(),
            Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText(CSharp.Replace("x * _scale", "_scale * x"),
                new Microsoft.CodeAnalysis.CSharp.CSharpParseOptions(Microsoft.CodeAnalysis.CSharp.LanguageVersion.Latest), cancellationToken: TestContext.Current.CancellationToken));
        driver = driver.RunGenerators(edited, TestContext.Current.CancellationToken);
        var run = driver.GetRunResult().Results.Single();
        Assert.All(run.TrackedSteps[MixGenerator.Steps.Specs].SelectMany(s => s.Outputs), o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
    }
}
