extern alias cli;

using System;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace Mix.Examples.Tests;

using MixCli = cli::Mix.Cli.MixCli;

/// <summary>The mix CLI against C# projects (their [Mixer] classes), size checking and its help.</summary>
public class CliProjectTests : IDisposable
{
    const string MixerClass = """
        using Mix;
        using TorchSharp;
        namespace User.Mixers;

        [Mixer("scaled_tokens", "scale: float = 1.0", "(x: [B, N, dim]) -> [B, N, dim]")]
        public sealed class ScaledTokens : torch.nn.Module<torch.Tensor, torch.Tensor>
        {
            public ScaledTokens(long dim, double scale = 1.0) : base(nameof(ScaledTokens)) { }
            public override torch.Tensor forward(torch.Tensor x) => x;
        }
        """;

    const string UsesTheMixer = """
        block b(dim: int, token_mixer: mixer = scaled_tokens(scale = 2.0)) (x: [B, N, dim]) -> [B, N, dim] {
          m = token_mixer(dim)
          return x + m(x)
        }
        """;

    readonly string _dir = Path.Combine(Path.GetTempPath(), "mix-cli-project-" + Guid.NewGuid().ToString("N"));

    public CliProjectTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "models"));
        File.WriteAllText(Path.Combine(_dir, "User.csproj"), "<Project Sdk=\"Microsoft.NET.Sdk\" />\n");
        File.WriteAllText(Path.Combine(_dir, "ScaledTokens.cs"), MixerClass);
        File.WriteAllText(Path.Combine(_dir, "models", "b.mix"), UsesTheMixer);
        // Build output is not the project's source: a stale copy there must not count.
        Directory.CreateDirectory(Path.Combine(_dir, "obj"));
        File.WriteAllText(Path.Combine(_dir, "obj", "Old.cs"), MixerClass.Replace("scaled_tokens", "stale_tokens", StringComparison.Ordinal));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    static string RepoRoot([CallerFilePath] string file = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));
    static string Model(string name) => Path.Combine(RepoRoot(), "models", name);

    static (int Code, string Out, string Err) Mix(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = MixCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Check_without_the_project_does_not_know_the_CSharp_mixer()
    {
        var (code, output, _) = Mix("check", Path.Combine(_dir, "models", "b.mix"));
        Assert.Equal(1, code);
        Assert.Contains("error MIX0101: unknown name 'scaled_tokens'", output);
    }

    [Fact]
    public void Check_with_the_project_sees_its_Mixer_classes()
    {
        var (code, output, error) = Mix("check", Path.Combine(_dir, "models", "b.mix"), "--project", Path.Combine(_dir, "User.csproj"));
        Assert.True(code == 0, output + error);
        Assert.Contains("1 file checked (0 imported), 1 definitions: 0 errors, 0 warnings.", output);
    }

    [Fact]
    public void Check_of_a_project_alone_checks_its_mix_files()
    {
        var (code, output, error) = Mix("check", "-p", _dir);
        Assert.True(code == 0, output + error);
        Assert.Contains("1 file checked", output);
        // A misuse of the mixer is still an error: the declared contract is checked.
        File.WriteAllText(Path.Combine(_dir, "models", "bad.mix"), UsesTheMixer.Replace("scale = 2.0", "scale = \"big\"", StringComparison.Ordinal).Replace("block b(", "block c(", StringComparison.Ordinal));
        (code, output, _) = Mix("check", "-p", _dir);
        Assert.Equal(1, code);
        Assert.Contains("bad.mix(1,", output);
        Assert.Contains("2 files checked", output);
    }

    [Fact]
    public void Check_with_an_assembly_reads_the_Mixer_attribute_from_metadata()
    {
        // The attribute as the generator emits it (internal, in the user's assembly), compiled with the class.
        const string attribute = "namespace Mix { [System.AttributeUsage(System.AttributeTargets.Class)] internal sealed class MixerAttribute : System.Attribute " +
                                 "{ public MixerAttribute(string name, string parameters, string signature) { } } }";
        const string source = """
            namespace User.Mixers;
            [Mix.Mixer("scaled_tokens", "scale: float = 1.0", "(x: [B, N, dim]) -> [B, N, dim]")]
            public sealed class ScaledTokens { }
            """;
        var compilation = CSharpCompilation.Create("UserMixers",
            new[] { CSharpSyntaxTree.ParseText(attribute, cancellationToken: TestContext.Current.CancellationToken), CSharpSyntaxTree.ParseText(source, cancellationToken: TestContext.Current.CancellationToken) },
            new[] { MetadataReference.CreateFromFile(typeof(object).Assembly.Location) },
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        var dll = Path.Combine(_dir, "UserMixers.dll");
        var emitted = compilation.Emit(dll, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(emitted.Success, string.Join("\n", emitted.Diagnostics));

        var (code, output, error) = Mix("check", Path.Combine(_dir, "models", "b.mix"), "--assembly", dll);
        Assert.True(code == 0, output + error);
        Assert.Contains("0 errors", output);
    }

    [Fact]
    public void Check_with_a_missing_project_or_assembly_is_a_usage_error()
    {
        var (code, _, error) = Mix("check", Path.Combine(_dir, "models", "b.mix"), "--assembly", Path.Combine(_dir, "nope.dll"));
        Assert.Equal(2, code);
        Assert.Contains("assembly not found", error);
        (code, _, error) = Mix("check");
        Assert.Equal(2, code);
        Assert.Contains("needs .mix files, or --project", error);
    }

    [Fact]
    public void Summary_rejects_an_unknown_size_name()
    {
        var (code, output, error) = Mix("summary", Model("poolformer.mix"), "poolformer_s12", "-s", "H=224", "-s", "Y=224");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains("error: --size: 'Y' is not a size of poolformer_s12; its sizes are B, H, W", error);
    }

    [Fact]
    public void Summary_warns_when_a_size_does_not_divide_a_stride()
    {
        var (code, output, error) = Mix("summary", Model("poolformer.mix"), "poolformer_s12", "-s", "H=225", "-s", "W=224");
        Assert.Equal(0, code);
        Assert.Contains("warning: poolformer_s12: H=225 does not divide evenly: stem.conv makes H/4 = 56.25, not a whole number", error);
        Assert.DoesNotContain("W=224 does not divide", error);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("warning:", StringComparison.Ordinal));
        Assert.Contains("model poolformer_s12", output);
        // Sizes that fit: no warning.
        (_, _, error) = Mix("summary", Model("poolformer.mix"), "poolformer_s12", "-s", "H=224", "-s", "W=224");
        Assert.DoesNotContain("warning", error);
    }

    [Fact]
    public void Summary_help_shows_the_model_as_optional()
    {
        var (code, output, _) = Mix("summary", "--help");
        Assert.Equal(0, code);
        var usage = output.Split('\n').SkipWhile(l => !l.StartsWith("Usage:", StringComparison.Ordinal)).Skip(1).First();
        Assert.Contains("<file> [<model>]", usage);
    }
}
