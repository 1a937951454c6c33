using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Mix.Dsl;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Semantics;
using Mix.Dsl.Text;

namespace Mix.Generator;

/// <summary>Checks all .mix files together and builds one <see cref="FileSpec"/> per file.</summary>
internal static class SpecBuilder
{
    public const string UnsupportedId = "MIX9001";

    /// <summary>The path a file has for the front end: forward slashes, so imports resolve the same on every OS.</summary>
    public static string FrontEndPath(string path) => MixCompilation.NormalizePath(path);

    /// <summary>Path relative to the project directory (forward slashes), or the normalized path without its root.</summary>
    public static string RelativePath(string path, string projectDir)
    {
        var p = FrontEndPath(path);
        if (projectDir.Length > 0)
        {
            var dir = FrontEndPath(projectDir).TrimEnd('/') + "/";
            if (p.StartsWith(dir, StringComparison.OrdinalIgnoreCase)) return p.Substring(dir.Length);
        }
        var colon = p.IndexOf(':');
        if (colon >= 0 && colon < 3) p = p.Substring(colon + 1);
        return p.TrimStart('/');
    }

    public static MixCompilation Compile(IEnumerable<MixInput> inputs, IEnumerable<MixerBinding>? mixers = null) =>
        MixCompilation.Create(inputs.Select(i => new SourceText(FrontEndPath(i.Path), i.Text)),
            (mixers ?? Array.Empty<MixerBinding>()).Select(m => new ExternalMixer(m.Name, m.Parameters, m.Signature, m.TypeName)));

    public static EquatableArray<FileSpec> Build(ImmutableArray<MixInput> inputs, GeneratorSettings settings) =>
        Build(inputs, settings, ImmutableArray<MixerBinding>.Empty);

    public static EquatableArray<FileSpec> Build(ImmutableArray<MixInput> inputs, GeneratorSettings settings, ImmutableArray<MixerBinding> mixers)
    {
        var ordered = inputs.OrderBy(i => i.Path, StringComparer.Ordinal).ToList();
        var externals = mixers.GroupBy(m => m.Name, StringComparer.Ordinal).Select(g => g.OrderBy(m => m.TypeName, StringComparer.Ordinal).First())
            .OrderBy(m => m.Name, StringComparer.Ordinal).ToList();
        var compilation = Compile(ordered, externals);

        var defs = new Dictionary<string, UserCallable>(StringComparer.Ordinal);
        foreach (var d in compilation.Definitions)
            if (!defs.ContainsKey(d.Name)) defs[d.Name] = d.Callable;
        // C# mixers: their parameters as the front end reads them (a bodiless mixer declaration), and their C# types.
        var externalTypes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in externals)
        {
            if (defs.ContainsKey(m.Name)) continue; // a .mix definition of the same name: the front end reports it
            var declaration = MixCompilation.Create(m.TypeName, $"mixer {m.Name}({m.Parameters}) {m.Signature} {{}}\n").Find(m.Name);
            if (declaration is null) continue;
            defs[m.Name] = declaration.Callable;
            externalTypes[m.Name] = m.TypeName;
        }

        // A file is generated only when it and everything it imports check without errors.
        var errorFiles = new HashSet<string>(compilation.Diagnostics.Where(d => d.Severity == Severity.Error).Select(d => d.Path), StringComparer.Ordinal);
        var imports = compilation.Files.ToDictionary(f => f.Source.Path, f => f.Imports.Select(i => Resolve(f.Source.Path, i.Path)).ToList(), StringComparer.Ordinal);
        bool Broken(string path, HashSet<string> seen)
        {
            if (errorFiles.Contains(path)) return true;
            if (!seen.Add(path) || !imports.TryGetValue(path, out var list)) return false;
            return list.Any(p => Broken(p, seen));
        }

        var enumMembers = new HashSet<string>(compilation.Files.SelectMany(f => f.Enums).SelectMany(e => e.Members).Select(m => m.Name), StringComparer.Ordinal);
        var hints = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var result = new List<FileSpec>();
        foreach (var input in ordered)
        {
            var path = FrontEndPath(input.Path);
            var hint = Names.HintName(RelativePath(input.Path, settings.ProjectDir));
            for (int n = 2; !hints.Add(hint); n++) hint = hint.Substring(0, hint.Length - ".g.cs".Length) + "." + n + ".g.cs";
            var ns = input.Namespace ?? settings.Namespace;
            if (Broken(path, new HashSet<string>(StringComparer.Ordinal)))
            {
                result.Add(new FileSpec(hint, input.Path, ns, true, EquatableArray<ClassSpec>.Empty, EquatableArray<GenDiagnostic>.Empty));
                continue;
            }
            var classes = new List<ClassSpec>();
            var diags = new List<GenDiagnostic>();
            foreach (var d in compilation.Definitions.Where(d => d.Path == path))
            {
                try
                {
                    classes.Add(new Translator(d, defs, enumMembers, externalTypes).Translate());
                }
                catch (UnsupportedException e)
                {
                    var pos = d.Callable.File.Source.GetPosition(e.Span.Start);
                    diags.Add(new GenDiagnostic(UnsupportedId, $"{d.Name}: {e.Message}", pos.Line, pos.Character));
                }
            }
            result.Add(new FileSpec(hint, input.Path, ns, false, classes.ToEquatableArray(), diags.ToEquatableArray()));
        }
        return result.ToEquatableArray();
    }

    static string Resolve(string from, string import)
    {
        var p = from.Replace('\\', '/');
        int i = p.LastIndexOf('/');
        var dir = i < 0 ? "" : p.Substring(0, i);
        var rel = import.Replace('\\', '/');
        return MixCompilation.NormalizePath(rel.StartsWith("/", StringComparison.Ordinal) || dir.Length == 0 ? rel : dir + "/" + rel);
    }
}
