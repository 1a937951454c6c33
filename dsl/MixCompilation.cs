using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Semantics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl;

/// <summary>The result of checking a definition: its module tree (as built with defaults) and inferred shapes.</summary>
public sealed class CheckedDefinition
{
    internal CheckedDefinition(UserCallable callable, LayerNode? root, IReadOnlyList<Shape> inputs, Shape? output)
    {
        Callable = callable;
        Root = root;
        Inputs = inputs;
        Output = output;
    }

    /// <summary>The definition.</summary>
    public UserCallable Callable { get; }
    /// <summary>Name.</summary>
    public string Name => Callable.Name;
    /// <summary>Kind.</summary>
    public DefinitionKind Kind => Callable.Definition.Kind;
    /// <summary>File path.</summary>
    public string Path => Callable.File.Source.Path;
    /// <summary>Module tree with weights, built with default parameters (symbolic where there is no default).</summary>
    public LayerNode? Root { get; }
    /// <summary>Input shapes as read from the signature.</summary>
    public IReadOnlyList<Shape> Inputs { get; }
    /// <summary>Inferred output shape, if it could be inferred.</summary>
    public Shape? Output { get; }
}

/// <summary>
/// Parses and checks a set of <c>.mix</c> files together (imports resolve within the set; no file IO). Never throws:
/// every problem is in <see cref="Diagnostics"/>.
/// </summary>
public sealed partial class MixCompilation
{
    readonly List<CheckedDefinition> _definitions = new();

    MixCompilation(IReadOnlyList<MixFile> files, IReadOnlyList<Diagnostic> diagnostics, List<CheckedDefinition> defs,
        IReadOnlyList<UserCallable>? callables = null, IReadOnlyList<FileContext>? contexts = null)
    {
        _contexts = contexts ?? Array.Empty<FileContext>();
        Callables = callables ?? Array.Empty<UserCallable>();
        Files = files;
        Diagnostics = diagnostics;
        _definitions = defs;
    }

    /// <summary>Evaluation steps the check took (its budget: MIX0406).</summary>
    internal int CheckSteps { get; private set; }

    /// <summary>Parsed files, in input order.</summary>
    public IReadOnlyList<MixFile> Files { get; }
    /// <summary>All diagnostics, in file order then position.</summary>
    public IReadOnlyList<Diagnostic> Diagnostics { get; }
    /// <summary>Every file's own definitions (checked or not), in file order.</summary>
    public IReadOnlyList<UserCallable> Callables { get; }
    /// <summary>Checked definitions, in file order.</summary>
    public IReadOnlyList<CheckedDefinition> Definitions => _definitions;
    /// <summary>Whether any error was reported.</summary>
    public bool HasErrors => Diagnostics.Any(d => d.Severity == Severity.Error);

    /// <summary>The checked definition with this name (first match, in file order).</summary>
    public CheckedDefinition? Find(string name) => _definitions.FirstOrDefault(d => d.Name == name);

    /// <summary>Checks one file on its own.</summary>
    public static MixCompilation Create(string path, string text) => Create(new[] { new SourceText(path, text) });

    /// <summary>Checks files together.</summary>
    public static MixCompilation Create(IEnumerable<SourceText> sources) => Create(sources, Array.Empty<ExternalMixer>());

    /// <summary>Checks files together, with mixers implemented in C# visible to every file.</summary>
    public static MixCompilation Create(IEnumerable<SourceText> sources, IEnumerable<ExternalMixer> externals) =>
        Create(sources.Select(MixSyntaxTree.Parse), externals);

    /// <summary>
    /// Checks parsed files together. With <paramref name="checkOnly"/>, only that file's definitions are checked (the
    /// others are checked where it uses them): what a caller that checks each file with its imports needs.
    /// </summary>
    public static MixCompilation Create(IEnumerable<MixSyntaxTree> trees, IEnumerable<ExternalMixer> externals, string? checkOnly = null)
    {
        var list = trees.ToList();
        list.AddRange(StandardLibrary.ImportedBy(list));
        var externalList = externals.ToList();
        bool deep = list.Any(t => StackDepth.NeedsLargeStack(t.Source.Text));
        var only = checkOnly is null ? null : NormalizePath(checkOnly);
        return StackDepth.Run(deep, () => Build(list, externalList, only), failure => Failed(list.Select(t => t.Source).ToList(), failure));
    }

    static MixCompilation Failed(List<SourceText> sources, Exception failure)
    {
        var bag = new DiagnosticBag();
        var src = sources.FirstOrDefault() ?? new SourceText("", "");
        bag.Report(DiagnosticIds.InternalError, src, new TextSpan(0, 0), $"internal checker error ({failure.GetType().Name}: {failure.Message})");
        return new MixCompilation(Array.Empty<MixFile>(), bag.Items, new List<CheckedDefinition>());
    }

    static MixCompilation Build(List<MixSyntaxTree> trees, List<ExternalMixer> externals, string? checkOnly)
    {
        var bag = new DiagnosticBag();
        foreach (var tree in trees)
            foreach (var d in tree.Diagnostics) bag.Add(d);
        var files = trees.Select(t => t.File).ToList();
        var externalFiles = externals.Select(e => MixParser.ParseCore(ExternalSource(e), bag)).ToList();
        var evaluator = new Evaluator(bag);
        var contexts = files.Select(f => new FileContext(f)).ToList();
        foreach (var c in contexts) evaluator.Contexts[c.File] = c;
        foreach (var f in files)
            foreach (var d in f.Definitions)
                if (bag.Items.Any(x => x.Path == f.Source.Path && x.Descriptor.Category == "Syntax" && x.Span.Start >= d.Span.Start && x.Span.Start <= d.Span.End))
                    evaluator.Broken.Add(d);

        var byPath = new Dictionary<string, FileContext>(StringComparer.Ordinal);
        foreach (var c in contexts) byPath[NormalizePath(c.Source.Path)] = c;

        // Own definitions and enums first, then imports.
        foreach (var c in contexts) DeclareOwn(c, evaluator, bag);
        foreach (var c in contexts) ResolveImports(c, byPath, bag);
        // Looking for a cycle through every file is quadratic; most import graphs have none, and once the edges that
        // close the cycles are cut the rest need no search either.
        foreach (var c in contexts)
        {
            if (!HasCycle(contexts)) break;
            ReportCycles(c, bag);
        }
        foreach (var c in contexts)
        {
            // Checking one file (the generator, once per file of the project): the other files' imports are added
            // when the check first looks into them, so a file in a graph of hundreds costs what it uses.
            if (checkOnly is null || NormalizePath(c.Source.Path) == checkOnly) AddImported(c, bag);
            else
            {
                var context = c;
                c.PendingImports = () => AddImported(context, bag);
            }
        }
        AddExternals(externalFiles, contexts, evaluator, bag);
        foreach (var c in contexts)
            foreach (var d in c.File.Definitions)
                if (c.Definitions.TryGetValue(d.Name.Name, out var own) && own is UserCallable u && u.Definition == d)
                    u.SetParams(BuildParams(d, c, evaluator, bag));

        var checkedDefs = new List<CheckedDefinition>();
        foreach (var c in contexts)
        {
            if (checkOnly is not null && NormalizePath(c.Source.Path) != checkOnly) continue;
            foreach (var def in c.File.Definitions)
            {
                if (!c.Definitions.TryGetValue(def.Name.Name, out var callable) || callable is not UserCallable u || u.Definition != def) continue;
                IReadOnlyList<Shape> inputs = Array.Empty<Shape>();
                Shape? output = null;
                var root = evaluator.Guard(c, def.Name.Span, () => evaluator.CheckDefinition(u, c, out output, out inputs), null);
                checkedDefs.Add(new CheckedDefinition(u, root, inputs, output));
            }
        }
        var ordered = bag.Items
            .Select((d, i) => (d, i))
            .OrderBy(x => files.FindIndex(f => f.Source.Path == x.d.Path))
            .ThenBy(x => x.d.Span.Start)
            .ThenBy(x => x.i)
            .Select(x => x.d)
            .ToList();
        var callables = contexts.SelectMany(c => c.File.Definitions
            .Select(d => c.Definitions.TryGetValue(d.Name.Name, out var own) && own is UserCallable u && u.Definition == d ? u : null)
            .Where(u => u is not null)).ToList();
        return new MixCompilation(files, ordered, checkedDefs, callables!, contexts) { CheckSteps = evaluator.StepsUsed };
    }

    /// <summary>An external mixer as a .mix declaration without a body: <c>mixer name(params) (x: [...]) -&gt; [...]</c>.</summary>
    static SourceText ExternalSource(ExternalMixer e) =>
        new(e.Origin, $"mixer {e.Name}({e.Parameters}) {e.Signature} {{}}\n");

    static void AddExternals(List<MixFile> externalFiles, List<FileContext> contexts, Evaluator evaluator, DiagnosticBag bag)
    {
        foreach (var file in externalFiles)
        {
            var context = new FileContext(file);
            evaluator.Contexts[file] = context;
            foreach (var d in file.Definitions)
            {
                if (d.Signature is null)
                {
                    bag.Report(DiagnosticIds.MissingSignature, file.Source, d.Name.Span, $"external mixer {d.Name.Name} needs a signature");
                    continue;
                }
                var u = new UserCallable(d, file, Array.Empty<ParamSpec>()) { IsExternal = true };
                u.SetParams(BuildParams(d, context, evaluator, bag));
                context.Definitions[d.Name.Name] = u;
                foreach (var c in contexts)
                {
                    if (c.Definitions.TryGetValue(d.Name.Name, out var existing) && existing is UserCallable eu)
                        bag.Report(DiagnosticIds.DuplicateDefinition, c.Source, eu.Definition.Name.Span,
                            $"'{d.Name.Name}' is also a C# mixer ({file.Source.Path})");
                    else c.Definitions[d.Name.Name] = u;
                }
            }
        }
    }

    static void DeclareOwn(FileContext c, Evaluator evaluator, DiagnosticBag bag)
    {
        foreach (var e in c.File.Enums)
        {
            if (c.Enums.ContainsKey(e.Name.Name))
            {
                bag.Report(DiagnosticIds.DuplicateDefinition, c.Source, e.Name.Span, $"enum '{e.Name.Name}' is already defined in this file");
                continue;
            }
            c.Enums[e.Name.Name] = e;
            var seen = new HashSet<string>();
            foreach (var m in e.Members)
            {
                if (!seen.Add(m.Name)) bag.Report(DiagnosticIds.DuplicateDefinition, c.Source, m.Span, $"'{m.Name}' appears twice in enum {e.Name.Name}");
                if (!c.EnumMembers.ContainsKey(m.Name)) c.EnumMembers[m.Name] = e.Name.Name;
            }
        }
        foreach (var d in c.File.Definitions)
        {
            if (c.Definitions.ContainsKey(d.Name.Name))
            {
                bag.Report(DiagnosticIds.DuplicateDefinition, c.Source, d.Name.Span, $"'{d.Name.Name}' is already defined in this file");
                continue;
            }
            // A standard-library mixer re-expresses the built-in of its name; importing it shadows the built-in.
            if (BuiltinCatalog.Find(d.Name.Name) is { } builtin
                && !(StandardLibrary.IsStdPath(c.Source.Path) && builtin.Kind == CallableKind.Mixer && d.Kind == DefinitionKind.Mixer))
            {
                bag.Report(DiagnosticIds.DuplicateDefinition, c.Source, d.Name.Span, $"'{d.Name.Name}' is a built-in; choose another name");
                continue;
            }
            c.Definitions[d.Name.Name] = new UserCallable(d, c.File, Array.Empty<ParamSpec>());
        }
    }

    static List<ParamSpec> BuildParams(Definition d, FileContext c, Evaluator evaluator, DiagnosticBag bag)
    {
        var list = new List<ParamSpec>();
        var seen = new HashSet<string>();
        if (d.Kind == DefinitionKind.Mixer && !d.Parameters.Any(p => p.Name.Name == "dim"))
            list.Add(new ParamSpec("dim", MixType.Int, required: true) { IsImplicitDim = true });
        foreach (var p in d.Parameters)
        {
            if (!seen.Add(p.Name.Name))
            {
                bag.Report(DiagnosticIds.DuplicateParameter, c.Source, p.Name.Span, $"parameter '{p.Name.Name}' is declared twice");
                continue;
            }
            var type = evaluator.ResolveType(c, p.Type) ?? MixType.Any;
            list.Add(new ParamSpec(p.Name.Name, type, required: p.Default is null && !type.IsOptional, defaultExpr: p.Default)
            {
                IsImplicitDim = d.Kind == DefinitionKind.Mixer && p.Name.Name == "dim",
            });
        }
        return list;
    }

    static void ResolveImports(FileContext c, Dictionary<string, FileContext> byPath, DiagnosticBag bag)
    {
        foreach (var imp in c.File.Imports)
        {
            var target = ResolveImport(c.Source.Path, imp.Path);
            if (!byPath.TryGetValue(target, out var other) && StandardLibrary.IsLibraryPath(target))
            {
                var (what, paths) = StandardLibrary.IsModelsPath(target)
                    ? ("the model zoo", StandardLibrary.ModelPaths) : ("the standard library", StandardLibrary.Paths);
                var best = Suggestions.Closest(target, paths);
                bag.Report(DiagnosticIds.ImportNotFound, c.Source, imp.PathSpan,
                    $"{what} has no '{target}'" + (best is null ? $"; its files are {string.Join(", ", paths)}" : $"; did you mean '{best}'?"));
                continue;
            }
            if (other is null)
            {
                var name = imp.Path.Replace('\\', '/').Split('/').Last();
                var candidates = byPath.Keys.Where(k => k.EndsWith("/" + name, StringComparison.Ordinal) || k == name).ToList();
                bag.Report(DiagnosticIds.ImportNotFound, c.Source, imp.PathSpan,
                    $"cannot find '{imp.Path}' (looked for '{target}') among the .mix files of the project" +
                    (candidates.Count > 0 ? $"; there is '{candidates[0]}'" : ""));
                continue;
            }
            if (other == c)
            {
                bag.Report(DiagnosticIds.ImportCycle, c.Source, imp.PathSpan, "a file cannot import itself");
                continue;
            }
            c.Imports.Add(other);
        }
    }

    static void ReportCycles(FileContext c, DiagnosticBag bag)
    {
        foreach (var imp in c.Imports.ToList())
        {
            var path = FindPath(imp, c);
            if (path is null) continue;
            var decl = c.File.Imports.FirstOrDefault(i => ResolveImport(c.Source.Path, i.Path) == NormalizePath(imp.Source.Path));
            var files = new[] { c.Source.Path }.Concat(path.Select(p => p.Source.Path)).ToList();
            // A long ring is named by its ends; the message stays readable (and small) however many files it has.
            if (files.Count > 12) files = files.Take(5).Concat(new[] { $"({files.Count - 10} more)" }).Concat(files.Skip(files.Count - 5)).ToList();
            var chain = string.Join(" → ", files);
            bag.Report(DiagnosticIds.ImportCycle, c.Source, decl?.PathSpan ?? new TextSpan(0, 0), $"imports form a cycle: {chain}");
            c.Imports.Remove(imp);
        }
    }

    /// <summary>Whether the imports (as they stand) contain a cycle: one depth-first pass with an explicit stack.</summary>
    static bool HasCycle(List<FileContext> contexts)
    {
        var state = new Dictionary<FileContext, int>(); // 1: on the current path, 2: done
        var stack = new Stack<(FileContext Node, int Next)>();
        foreach (var root in contexts)
        {
            if (state.ContainsKey(root)) continue;
            state[root] = 1;
            stack.Push((root, 0));
            while (stack.Count > 0)
            {
                var (node, next) = stack.Pop();
                if (next < node.Imports.Count)
                {
                    stack.Push((node, next + 1));
                    var child = node.Imports[next];
                    if (!state.TryGetValue(child, out var s)) { state[child] = 1; stack.Push((child, 0)); }
                    else if (s == 1) return true;
                }
                else state[node] = 2;
            }
        }
        return false;
    }

    /// <summary>A shortest import path from <paramref name="from"/> to <paramref name="to"/>, found breadth-first
    /// (no recursion: an import chain may be thousands of files long).</summary>
    static List<FileContext>? FindPath(FileContext from, FileContext to)
    {
        var parent = new Dictionary<FileContext, FileContext?> { [from] = null };
        var queue = new Queue<FileContext>();
        queue.Enqueue(from);
        while (queue.Count > 0)
        {
            var at = queue.Dequeue();
            if (at == to)
            {
                var path = new List<FileContext>();
                for (FileContext? p = at; p is not null; p = parent[p]) path.Add(p);
                path.Reverse();
                return path;
            }
            foreach (var next in at.Imports)
                if (!parent.ContainsKey(next))
                {
                    parent[next] = at;
                    queue.Enqueue(next);
                }
        }
        return null;
    }

    static void AddImported(FileContext c, DiagnosticBag bag)
    {
        var visited = new HashSet<FileContext> { c };
        var queue = new Queue<FileContext>(c.Imports);
        while (queue.Count > 0)
        {
            var other = queue.Dequeue();
            if (!visited.Add(other)) continue;
            foreach (var kv in other.File.Definitions)
            {
                if (!other.Definitions.TryGetValue(kv.Name.Name, out var callable) || callable is not UserCallable u || u.Definition != kv) continue;
                if (c.Definitions.TryGetValue(kv.Name.Name, out var existing))
                {
                    if (existing is UserCallable eu && eu.File == c.File)
                        bag.Report(DiagnosticIds.DuplicateDefinition, c.Source, eu.Definition.Name.Span,
                            $"'{kv.Name.Name}' is also defined in imported '{other.Source.Path}'");
                    continue;
                }
                c.Definitions[kv.Name.Name] = callable;
            }
            foreach (var e in other.Enums)
            {
                if (c.Enums.ContainsKey(e.Key)) continue;
                c.Enums[e.Key] = e.Value;
                foreach (var m in e.Value.Members) if (!c.EnumMembers.ContainsKey(m.Name)) c.EnumMembers[m.Name] = e.Key;
            }
            foreach (var next in other.Imports) queue.Enqueue(next);
        }
    }

    /// <summary>
    /// The normalized path an import in <paramref name="from"/> refers to: relative to the importing file, except a
    /// library name (<c>mix/std/...</c>, <c>mix/models/...</c>), which is the same from every file.
    /// </summary>
    public static string ResolveImport(string from, string import) =>
        StandardLibrary.IsLibraryPath(import) ? NormalizePath(import) : NormalizePath(CombinePath(DirectoryOf(from), import));

    static string DirectoryOf(string path)
    {
        var p = path.Replace('\\', '/');
        int i = p.LastIndexOf('/');
        return i < 0 ? "" : p.Substring(0, i);
    }

    static string CombinePath(string dir, string rel)
    {
        rel = rel.Replace('\\', '/');
        if (rel.StartsWith("/", StringComparison.Ordinal) || dir.Length == 0) return rel;
        return dir + "/" + rel;
    }

    /// <summary>Forward slashes, no "." or ".." segments.</summary>
    public static string NormalizePath(string path)
    {
        var p = path.Replace('\\', '/');
        bool rooted = p.StartsWith("/", StringComparison.Ordinal);
        var parts = new List<string>();
        foreach (var seg in p.Split('/'))
        {
            if (seg.Length == 0 || seg == ".") continue;
            if (seg == ".." && parts.Count > 0 && parts[parts.Count - 1] != "..") parts.RemoveAt(parts.Count - 1);
            else parts.Add(seg);
        }
        return (rooted ? "/" : "") + string.Join("/", parts);
    }
}
