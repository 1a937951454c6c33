using System;
using System.IO;
using System.Linq;
using System.Reflection;
using Mix.Dsl;
using Mix.Dsl.Text;

namespace Mix.Examples;

/// <summary>The .mix files an example embeds (logical names are their paths, e.g. <c>Vision/vision.mix</c>).</summary>
public static class MixSources
{
    /// <summary>Checks every embedded <c>.mix</c> resource of <paramref name="assembly"/> together.</summary>
    public static MixCompilation Compile(Assembly assembly)
    {
        var sources = assembly.GetManifestResourceNames().Where(n => n.EndsWith(".mix", StringComparison.Ordinal)).OrderBy(n => n, StringComparer.Ordinal)
            .Select(n =>
            {
                using var reader = new StreamReader(assembly.GetManifestResourceStream(n)!);
                return new SourceText(n, reader.ReadToEnd());
            });
        return MixCompilation.Create(sources);
    }
}
