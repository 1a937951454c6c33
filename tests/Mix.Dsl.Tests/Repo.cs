using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using Mix.Dsl;
using Mix.Dsl.Text;

namespace Mix.Dsl.Tests;

/// <summary>Paths into the repository and shortcuts for compiling .mix text in tests.</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    static string FindRoot([CallerFilePath] string here = "")
    {
        var dir = Path.GetDirectoryName(here)!;
        while (!File.Exists(Path.Combine(dir, "Dsl.sln"))) dir = Path.GetDirectoryName(dir)!;
        return dir;
    }

    public static string ModelsDir => Path.Combine(Root, "models");

    /// <summary>All example files, with paths relative to models/ (as a generator would see them).</summary>
    public static SourceText[] ExampleSources() =>
        Directory.GetFiles(ModelsDir, "*.mix").OrderBy(p => p, System.StringComparer.Ordinal)
            .Select(p => new SourceText(Path.GetFileName(p), File.ReadAllText(p))).ToArray();

    public static MixCompilation Compile(string text, string path = "example.mix") => MixCompilation.Create(path, text);
}
