using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using Mix.Dsl;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.ZooTests;

/// <summary>The repository's zoo as the front end sees it.</summary>
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

    /// <summary>models/*.mix checked together.</summary>
    public static MixCompilation Zoo() => s_zoo.Value;

    static readonly System.Lazy<MixCompilation> s_zoo = new(() => MixCompilation.Create(Directory.GetFiles(ModelsDir, "*.mix").OrderBy(p => p, System.StringComparer.Ordinal)
        .Select(p => new SourceText(Path.GetFileName(p), File.ReadAllText(p)))));

    /// <summary>Every <c>model</c> definition of the zoo, by name.</summary>
    public static string[] ZooModelNames() => Zoo().Definitions.Where(d => d.Kind == DefinitionKind.Model && !StandardLibrary.IsLibraryPath(d.Path))
        .Select(d => d.Name).OrderBy(n => n, System.StringComparer.Ordinal).ToArray();
}
