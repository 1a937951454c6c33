using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Testing;
using Microsoft.CodeAnalysis.Text;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>An AdditionalText from a string.</summary>
sealed class InMemoryText : AdditionalText
{
    readonly SourceText _text;
    public InMemoryText(string path, string text) { Path = path; _text = SourceText.From(text); }
    public override string Path { get; }
    public override SourceText GetText(CancellationToken cancellationToken = default) => _text;
}

/// <summary>Global MSBuild properties as the compiler sees them.</summary>
sealed class Options : AnalyzerConfigOptionsProvider
{
    sealed class Dict : AnalyzerConfigOptions
    {
        readonly IReadOnlyDictionary<string, string> _values;
        public Dict(IReadOnlyDictionary<string, string> values) => _values = values;
        public override bool TryGetValue(string key, out string value)
        {
            if (_values.TryGetValue(key, out var v)) { value = v; return true; }
            value = "";
            return false;
        }
    }

    readonly Dict _global;
    readonly IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> _perFile;
    static readonly Dict s_empty = new(new Dictionary<string, string>());
    public Options(IReadOnlyDictionary<string, string> global, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>? perFile = null)
    {
        _global = new Dict(global);
        _perFile = perFile ?? new Dictionary<string, IReadOnlyDictionary<string, string>>();
    }
    public override AnalyzerConfigOptions GlobalOptions => _global;
    public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => s_empty;
    public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) => _perFile.TryGetValue(textFile.Path, out var v) ? new Dict(v) : s_empty;
}

static class Harness
{
    /// <summary>The root the tests pretend the examples live under (stable across machines).</summary>
    public const string Root = "/repo/examples/";
    public const string Namespace = "Mix.Snapshots";

    public static string RepoRoot([CallerFilePath] string file = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));
    public static string TestDir([CallerFilePath] string file = "") => Path.GetDirectoryName(file)!;
    public static string SnapshotDir => Path.Combine(TestDir(), "Snapshots");

    /// <summary>models/*.mix with test paths (<c>/repo/examples/models/x.mix</c>).</summary>
    public static List<InMemoryText> Examples() =>
        Directory.GetFiles(Path.Combine(RepoRoot(), "models"), "*.mix").OrderBy(p => p, StringComparer.Ordinal)
            .Select(p => new InMemoryText(Root + "models/" + Path.GetFileName(p), File.ReadAllText(p))).ToList();

    public static Options DefaultOptions() => new(new Dictionary<string, string>
    {
        ["build_property.ProjectDir"] = Root,
        ["build_property.MixNamespace"] = Namespace,
    });

    /// <summary>Reference assemblies for Microsoft.CodeAnalysis.Testing that never touch the network: the .NET 8
    /// reference pack comes from the local NuGet cache (a nuget.config with no sources; the global packages folder is
    /// always searched first).</summary>
    public static readonly Lazy<ReferenceAssemblies> LocalNet80 = new(() =>
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var versions = Path.Combine(packages, "microsoft.netcore.app.ref");
        var version = Directory.Exists(versions)
            ? Directory.GetDirectories(versions).Select(Path.GetFileName).Where(v => v!.StartsWith("8.0.", StringComparison.Ordinal))
                .OrderBy(v => int.Parse(v!.Substring(4), System.Globalization.CultureInfo.InvariantCulture)).LastOrDefault()
            : null;
        Assert.True(version is not null, $"Microsoft.NETCore.App.Ref 8.0.x is not in {packages} (restore the solution once)");
        var config = Path.Combine(Path.GetTempPath(), "mix-generator-tests.nuget.config");
        File.WriteAllText(config, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n  <packageSources>\n    <clear />\n  </packageSources>\n" +
            $"  <config>\n    <add key=\"globalPackagesFolder\" value=\"{packages}\" />\n  </config>\n</configuration>\n");
        return new ReferenceAssemblies("net8.0", new PackageIdentity("Microsoft.NETCore.App.Ref", version!), Path.Combine("ref", "net8.0"))
            .WithNuGetConfigFilePath(config);
    });

    static ImmutableArray<MetadataReference>? s_refs;

    /// <summary>Everything the test process runs on: the framework, TorchSharp, Mix.Runtime.</summary>
    public static ImmutableArray<MetadataReference> References()
    {
        if (s_refs is { } r) return r;
        _ = typeof(Mix.Runtime.Builtins.Builtin);
        _ = typeof(TorchSharp.torch);
        var tpa = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        s_refs = tpa.Where(p => p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToImmutableArray();
        return s_refs.Value;
    }

    public static CSharpCompilation Compilation(params string[] sources) =>
        CSharpCompilation.Create("Tests", sources.Select(s => CSharpSyntaxTree.ParseText(s, new CSharpParseOptions(LanguageVersion.Latest))),
            References(), new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

    public static GeneratorDriver Driver(IEnumerable<AdditionalText> texts, AnalyzerConfigOptionsProvider? options = null) =>
        CSharpGeneratorDriver.Create(new[] { new MixGenerator().AsSourceGenerator() }, texts,
            new CSharpParseOptions(LanguageVersion.Latest), options ?? DefaultOptions(),
            new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    public static GeneratorDriverRunResult Run(IEnumerable<AdditionalText> texts, out Compilation output, params string[] sources)
    {
        var driver = Driver(texts).RunGeneratorsAndUpdateCompilation(Compilation(sources), out output, out _);
        return driver.GetRunResult();
    }
}
