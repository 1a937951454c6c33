using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mix.Dsl.Text;

namespace Mix.Dsl;

/// <summary>
/// The standard library: <c>.mix</c> files shipped inside Mix.Dsl (dsl/Std/*.mix, embedded resources), imported by a
/// package-relative name such as <c>import "mix/std/mixers.mix"</c> from any file. Their paths are
/// <c>mix/std/&lt;file&gt;.mix</c>, so diagnostics inside them are located there. A compilation adds the library files
/// its files import (directly or through another library file); nothing is read from disk.
/// </summary>
public static class StandardLibrary
{
    /// <summary>The prefix of every library path: an import that starts with it names a library file.</summary>
    public const string Prefix = "mix/std/";

    /// <summary>
    /// The fused kernels a library mixer may declare itself equivalent to with <c>@kernel("name")</c> (the runtime's
    /// fused dispatch recognizes the generated class by that name).
    /// </summary>
    public static readonly string[] Kernels = { "pooling", "sepconv", "global_filter", "mamba" };

    const string ResourcePrefix = "Mix.Dsl.Std.";

    static readonly Lazy<IReadOnlyDictionary<string, MixSyntaxTree>> s_trees = new(Load);

    /// <summary>Whether <paramref name="path"/> (normalized, or an import as written) names a library file.</summary>
    public static bool IsLibraryPath(string path) => path.Replace('\\', '/').StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Every library file's path, sorted.</summary>
    public static IReadOnlyList<string> Paths => s_trees.Value.Keys.OrderBy(p => p, StringComparer.Ordinal).ToList();

    /// <summary>A library file's text, or null when there is no such file.</summary>
    public static SourceText? Source(string path) => Tree(path)?.Source;

    /// <summary>A library file parsed (once per process), or null when there is no such file.</summary>
    public static MixSyntaxTree? Tree(string path) =>
        s_trees.Value.TryGetValue(MixCompilation.NormalizePath(path), out var tree) ? tree : null;

    /// <summary>
    /// The library files that <paramref name="trees"/> import, directly or through other library files, and that are
    /// not among them; in path order. An import of a library path that does not exist is left for the compilation to
    /// report.
    /// </summary>
    public static IReadOnlyList<MixSyntaxTree> ImportedBy(IEnumerable<MixSyntaxTree> trees)
    {
        var present = new HashSet<string>(StringComparer.Ordinal);
        var queue = new Queue<MixSyntaxTree>();
        foreach (var t in trees)
        {
            present.Add(MixCompilation.NormalizePath(t.Source.Path));
            queue.Enqueue(t);
        }
        var added = new List<MixSyntaxTree>();
        while (queue.Count > 0)
            foreach (var import in queue.Dequeue().Imports)
                if (IsLibraryPath(import) && present.Add(import) && Tree(import) is { } lib)
                {
                    added.Add(lib);
                    queue.Enqueue(lib);
                }
        return added.OrderBy(t => t.Source.Path, StringComparer.Ordinal).ToList();
    }

    static IReadOnlyDictionary<string, MixSyntaxTree> Load()
    {
        var assembly = typeof(StandardLibrary).Assembly;
        var trees = new Dictionary<string, MixSyntaxTree>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames())
        {
            if (!name.StartsWith(ResourcePrefix, StringComparison.Ordinal) || !name.EndsWith(".mix", StringComparison.Ordinal)) continue;
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var reader = new StreamReader(stream);
            var path = Prefix + name.Substring(ResourcePrefix.Length);
            trees[path] = MixSyntaxTree.Parse(new SourceText(path, reader.ReadToEnd()));
        }
        return trees;
    }
}
