using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mix.Dsl.Text;

namespace Mix.Dsl;

/// <summary>
/// The standard library: <c>.mix</c> files shipped inside Mix.Dsl (dsl/Std/*.mix, embedded resources), imported by a
/// package-relative name such as <c>import "mix/std/mixers.mix"</c> from any file. Their paths are
/// <c>mix/std/&lt;file&gt;.mix</c>, so diagnostics inside them are located there. The model zoo (models/*.mix) ships the
/// same way under <c>mix/models/&lt;file&gt;.mix</c> (<c>import "mix/models/metaformer.mix"</c>); a zoo file's relative
/// imports resolve inside the zoo. A compilation adds the library files its files import (directly or through another
/// library file); nothing is read from disk.
/// </summary>
public static class StandardLibrary
{
    /// <summary>The prefix of every library path: an import that starts with it names a library file.</summary>
    public const string Prefix = "mix/std/";

    /// <summary>The prefix of the model zoo's files (models/*.mix of the repository).</summary>
    public const string ModelsPrefix = "mix/models/";

    /// <summary>
    /// The fused kernels a library mixer may declare itself equivalent to with <c>@kernel("name")</c> (the runtime's
    /// fused dispatch recognizes the generated class by that name).
    /// </summary>
    public static readonly string[] Kernels = { "pooling", "sepconv", "global_filter", "mamba" };

    const string ResourcePrefix = "Mix.Dsl.Std.";
    const string ModelsResourcePrefix = "Mix.Dsl.Models.";

    static readonly Lazy<IReadOnlyDictionary<string, MixSyntaxTree>> s_trees = new(Load);

    /// <summary>Whether <paramref name="path"/> (normalized, or an import as written) names a library file: the
    /// standard library's or the model zoo's.</summary>
    public static bool IsLibraryPath(string path) => IsStdPath(path) || IsModelsPath(path);

    /// <summary>Whether <paramref name="path"/> names a standard-library file (<c>mix/std/...</c>).</summary>
    public static bool IsStdPath(string path) => path.Replace('\\', '/').StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Whether <paramref name="path"/> names a model zoo file (<c>mix/models/...</c>).</summary>
    public static bool IsModelsPath(string path) => path.Replace('\\', '/').StartsWith(ModelsPrefix, StringComparison.Ordinal);

    /// <summary>Every standard-library file's path, sorted.</summary>
    public static IReadOnlyList<string> Paths => s_trees.Value.Keys.Where(IsStdPath).OrderBy(p => p, StringComparer.Ordinal).ToList();

    /// <summary>Every model zoo file's path, sorted.</summary>
    public static IReadOnlyList<string> ModelPaths => s_trees.Value.Keys.Where(IsModelsPath).OrderBy(p => p, StringComparer.Ordinal).ToList();

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
        {
            var tree = queue.Dequeue();
            // Imports are resolved against the importing file: a zoo file's "metaformer.mix" is mix/models/metaformer.mix.
            foreach (var target in tree.Imports)
            {
                if (IsLibraryPath(target) && present.Add(target) && Tree(target) is { } lib)
                {
                    added.Add(lib);
                    queue.Enqueue(lib);
                }
            }
        }
        return added.OrderBy(t => t.Source.Path, StringComparer.Ordinal).ToList();
    }

    static IReadOnlyDictionary<string, MixSyntaxTree> Load()
    {
        var assembly = typeof(StandardLibrary).Assembly;
        var trees = new Dictionary<string, MixSyntaxTree>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames())
        {
            if (!name.EndsWith(".mix", StringComparison.Ordinal)) continue;
            string path;
            if (name.StartsWith(ResourcePrefix, StringComparison.Ordinal)) path = Prefix + name.Substring(ResourcePrefix.Length);
            else if (name.StartsWith(ModelsResourcePrefix, StringComparison.Ordinal)) path = ModelsPrefix + name.Substring(ModelsResourcePrefix.Length);
            else continue;
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var reader = new StreamReader(stream);
            trees[path] = MixSyntaxTree.Parse(new SourceText(path, reader.ReadToEnd()));
        }
        return trees;
    }
}
