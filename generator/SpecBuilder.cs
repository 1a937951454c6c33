using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Mix.Dsl;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Semantics;
using Mix.Dsl.Text;

namespace Mix.Generator;

/// <summary>The spec steps: parse each .mix file, check each with its imports, translate, then one <see cref="FileSpec"/>
/// per file.</summary>
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
            (mixers ?? Array.Empty<MixerBinding>()).Select(Front));

    /// <summary>A C# mixer as the front end sees it.</summary>
    public static ExternalMixer Front(MixerBinding m) => new(m.Name, m.Parameters, m.Signature, m.TypeName);

    /// <summary>One C# mixer per name (the first type by name; MIX9111 tells the others), sorted by name.</summary>
    public static List<MixerBinding> DistinctMixers(IEnumerable<MixerBinding> mixers) =>
        mixers.GroupBy(m => m.Name, StringComparer.Ordinal).Select(g => g.OrderBy(m => m.TypeName, StringComparer.Ordinal).First())
            .OrderBy(m => m.Name, StringComparer.Ordinal).ToList();

    /// <summary>What the translator needs from a clean compilation: every definition by name (the first in file order),
    /// the C# mixers' declarations and types, and the enum members.</summary>
    public static (Dictionary<string, UserCallable> Defs, HashSet<string> EnumMembers, Dictionary<string, string> ExternalTypes)
        TranslationContext(MixCompilation compilation, IReadOnlyList<MixerBinding> externals)
    {
        var defs = new Dictionary<string, UserCallable>(StringComparer.Ordinal);
        foreach (var callable in compilation.Callables)
            if (!defs.ContainsKey(callable.Name)) defs[callable.Name] = callable;
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
        var enumMembers = new HashSet<string>(compilation.Files.SelectMany(f => f.Enums).SelectMany(e => e.Members).Select(m => m.Name), StringComparer.Ordinal);
        return (defs, enumMembers, externalTypes);
    }

    public static EquatableArray<FileSpec> Build(ImmutableArray<MixInput> inputs, GeneratorSettings settings) =>
        Build(inputs, settings, ImmutableArray<MixerBinding>.Empty);

    /// <summary>All steps of the pipeline at once (for tools and benchmarks): parse, check each file with its imports, finish.</summary>
    public static EquatableArray<FileSpec> Build(ImmutableArray<MixInput> inputs, GeneratorSettings settings, ImmutableArray<MixerBinding> mixers)
    {
        var parsed = inputs.Select(Parse).ToImmutableArray();
        var units = parsed.Select(p => BuildUnit(Unit(p, parsed), mixers)).ToImmutableArray();
        return Finish(units, settings);
    }

    public static ParsedMix Parse(MixInput input) => new(input, MixSyntaxTree.Parse(new SourceText(FrontEndPath(input.Path), input.Text)));

    /// <summary>The file with everything it imports, transitively (an import the set lacks is the check's to report,
    /// with the files of that name it may have meant).</summary>
    public static CheckUnit Unit(ParsedMix file, ImmutableArray<ParsedMix> all)
    {
        var byPath = new Dictionary<string, ParsedMix>(StringComparer.Ordinal);
        foreach (var p in all) byPath[p.Tree.Source.Path] = p;
        var members = new Dictionary<string, ParsedMix>(StringComparer.Ordinal) { [file.Tree.Source.Path] = file };
        var queue = new Queue<ParsedMix>();
        queue.Enqueue(file);
        while (queue.Count > 0)
            foreach (var import in queue.Dequeue().Tree.Imports)
            {
                if (members.ContainsKey(import)) continue;
                if (byPath.TryGetValue(import, out var next))
                {
                    members[import] = next;
                    queue.Enqueue(next);
                    continue;
                }
                // A missing import: the files of the same name come along so that the error can suggest one.
                var name = import.Split('/').Last();
                foreach (var candidate in byPath.Where(kv => kv.Key == name || kv.Key.EndsWith("/" + name, StringComparison.Ordinal)))
                    members[candidate.Key] = candidate.Value;
            }
        var ordered = members.Values.OrderBy(p => p.Input.Path, StringComparer.Ordinal).ToList();
        return new CheckUnit(file.Input, ordered.Select(p => p.Input).ToEquatableArray(), ordered.Select(p => p.Tree).ToImmutableArray());
    }

    /// <summary>Checks the unit's file (its imports where it uses them) and translates its definitions unless an error
    /// lies in the file or in an imported definition it uses; every diagnostic of the check is kept for reporting.</summary>
    public static UnitSpec BuildUnit(CheckUnit unit, ImmutableArray<MixerBinding> mixers)
    {
        var path = FrontEndPath(unit.Input.Path);
        var externals = DistinctMixers(mixers);
        var compilation = MixCompilation.Create(unit.Trees, externals.Select(Front), checkOnly: path);
        // The front end's paths are normalized; diagnostics are reported at the paths the compiler gave.
        var original = unit.Closure.ToDictionary(i => FrontEndPath(i.Path), i => i.Path, StringComparer.Ordinal);
        var diags = compilation.Diagnostics.Select(d => new GenDiagnostic(d.Id, d.Message, d.Span.Start, d.Span.Length,
            d.Start.Line, d.Start.Character, d.End.Line, d.End.Character,
            d.Path == path ? null : original.TryGetValue(d.Path, out var p) ? p : d.Path)).ToList();
        var uses = compilation.ImportedDefinitionsUsedBy(path).Select(u => u.File.Source.Path).Distinct(StringComparer.Ordinal)
            .OrderBy(p => p, StringComparer.Ordinal).ToEquatableArray();
        // The translator never sees a definition with an error: the file is not generated (its errors are reported).
        if (compilation.HasErrorsAffecting(path))
            return new UnitSpec(unit.Input.Path, unit.Input.Namespace, uses, true, EquatableArray<ClassSpec>.Empty, diags.ToEquatableArray());

        var (defs, enumMembers, externalTypes) = TranslationContext(compilation, externals);
        var classes = new List<ClassSpec>();
        foreach (var d in compilation.Definitions)
        {
            try
            {
                classes.Add(new Translator(d, defs, enumMembers, externalTypes).Translate());
            }
            catch (UnsupportedException e)
            {
                var source = d.Callable.File.Source;
                var (start, end) = (source.GetPosition(e.Span.Start), source.GetPosition(e.Span.End));
                diags.Add(new GenDiagnostic(UnsupportedId, $"{d.Name}: {e.Message}", e.Span.Start, e.Span.Length,
                    start.Line, start.Character, end.Line, end.Character));
            }
        }
        return new UnitSpec(unit.Input.Path, unit.Input.Namespace, uses, false, classes.ToEquatableArray(), diags.ToEquatableArray());
    }

    /// <summary>The standard-library files the project's files import, directly or not (sorted by path).</summary>
    public static EquatableArray<string> LibraryUsed(ImmutableArray<ParsedMix> all) =>
        StandardLibrary.ImportedBy(all.Select(p => p.Tree)).Select(t => t.Source.Path).ToEquatableArray();

    static readonly System.Collections.Concurrent.ConcurrentDictionary<string, FileSpec> s_library = new(StringComparer.Ordinal);

    /// <summary>
    /// A library file's classes (internal, in <see cref="Names.LibraryNamespace"/>): the library ships inside the
    /// generator, so its translation is the same for every project and is made once per process.
    /// </summary>
    public static FileSpec LibraryFile(string path) => s_library.GetOrAdd(path, p =>
    {
        var tree = StandardLibrary.Tree(p)!;
        var zoo = StandardLibrary.IsModelsPath(p);
        var file = p.Substring((zoo ? StandardLibrary.ModelsPrefix : StandardLibrary.Prefix).Length);
        var hint = (zoo ? "Mix.Zoo." : "Mix.Std.") + file.Substring(0, file.Length - ".mix".Length).Replace('/', '.') + ".g.cs";
        var unit = BuildUnit(new CheckUnit(new MixInput(p, tree.Source.Text), new[] { new MixInput(p, tree.Source.Text) }.ToEquatableArray(),
            ImmutableArray.Create(tree)), ImmutableArray<MixerBinding>.Empty);
        return new FileSpec(hint, p, Names.LibraryNamespace(p), unit.HasErrors, unit.Classes, unit.Diagnostics);
    });

    /// <summary>
    /// One spec per file: hint names unique over the project; a file skipped when it has errors or uses a definition of
    /// a skipped file (its classes would be missing); each diagnostic reported once, by the first file (in path order)
    /// whose check found it, although several files' checks see an imported file's errors.
    /// </summary>
    public static EquatableArray<FileSpec> Finish(ImmutableArray<UnitSpec> units, GeneratorSettings settings)
    {
        var ordered = units.OrderBy(u => u.MixPath, StringComparer.Ordinal).ToList();
        var skipped = new HashSet<string>(ordered.Where(u => u.HasErrors).Select(u => FrontEndPath(u.MixPath)), StringComparer.Ordinal);
        for (bool changed = true; changed;)
        {
            changed = false;
            foreach (var unit in ordered)
                if (!skipped.Contains(FrontEndPath(unit.MixPath)) && unit.Uses.Any(skipped.Contains))
                    changed |= skipped.Add(FrontEndPath(unit.MixPath));
        }
        var hints = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var reported = new HashSet<(string, string, int, int, string)>();
        var result = new List<FileSpec>();
        foreach (var unit in ordered)
        {
            var hint = Names.HintName(RelativePath(unit.MixPath, settings.ProjectDir));
            for (int n = 2; !hints.Add(hint); n++) hint = hint.Substring(0, hint.Length - ".g.cs".Length) + "." + n + ".g.cs";
            var ns = unit.Namespace ?? settings.Namespace;
            if (!Names.IsNamespace(ns))
            {
                var where = unit.Namespace is null ? "the project's MixNamespace (or RootNamespace)" : "this file's MixNamespace metadata";
                result.Add(new FileSpec(hint, unit.MixPath, ns, true, EquatableArray<ClassSpec>.Empty, new[]
                {
                    new GenDiagnostic(Descriptors.InvalidNamespace.Id, $"'{ns}' ({where}) is not a valid C# namespace, so nothing is generated for this file; use dotted names such as My.Models", 0, 0, 0, 0, 0, 0),
                }.ToEquatableArray()));
                continue;
            }
            var isSkipped = skipped.Contains(FrontEndPath(unit.MixPath));
            var diags = unit.Diagnostics
                .Where(d => !(isSkipped && d.Id == UnsupportedId)) // translation problems of a file that is not generated
                .Where(d => reported.Add((d.Id, FrontEndPath(d.Path ?? unit.MixPath), d.SpanStart, d.SpanLength, d.Message)))
                .ToEquatableArray();
            result.Add(isSkipped
                ? new FileSpec(hint, unit.MixPath, ns, true, EquatableArray<ClassSpec>.Empty, diags)
                : new FileSpec(hint, unit.MixPath, ns, false, unit.Classes, diags));
        }
        return result.ToEquatableArray();
    }
}
