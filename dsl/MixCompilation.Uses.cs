using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Semantics;

namespace Mix.Dsl;

public sealed partial class MixCompilation
{
    readonly IReadOnlyList<FileContext> _contexts;

    /// <summary>
    /// The definitions of other files that a file's definitions can reach (by name, transitively), found from the
    /// syntax: a superset of what checking or generating the file needs. A caller that builds one file at a time skips
    /// the file only when an error lies in its own text or in one of these, so a broken definition elsewhere leaves it
    /// alone.
    /// </summary>
    public IReadOnlyList<UserCallable> ImportedDefinitionsUsedBy(string path)
    {
        var normalized = NormalizePath(path);
        var start = _contexts.FirstOrDefault(c => NormalizePath(c.Source.Path) == normalized);
        if (start is null) return Array.Empty<UserCallable>();
        var seen = new HashSet<Syntax.Definition>();
        var result = new List<UserCallable>();
        var queue = new Queue<(UserCallable Callable, FileContext Context)>();
        foreach (var d in start.File.Definitions)
            if (start.Ready().Definitions.TryGetValue(d.Name.Name, out var own) && own is UserCallable u && u.Definition == d && seen.Add(d))
                queue.Enqueue((u, start));
        var byFile = _contexts.ToDictionary(c => c.File);
        while (queue.Count > 0)
        {
            var (callable, context) = queue.Dequeue();
            if (callable.File != start.File) result.Add(callable);
            foreach (var name in Syntax.NameWalker.Names(callable.Definition))
            {
                if (!context.Ready().Definitions.TryGetValue(name, out var target) || target is not UserCallable u || u.IsExternal) continue;
                if (!seen.Add(u.Definition) || !byFile.TryGetValue(u.File, out var targetContext)) continue;
                queue.Enqueue((u, targetContext));
            }
        }
        return result;
    }

    /// <summary>Whether an error lies in <paramref name="path"/> or in a definition of another file that it uses
    /// (<see cref="ImportedDefinitionsUsedBy"/>): whether that file can be built.</summary>
    public bool HasErrorsAffecting(string path)
    {
        if (_contexts.Count == 0) return HasErrors; // the checker failed as a whole
        var normalized = NormalizePath(path);
        var used = ImportedDefinitionsUsedBy(path);
        return Diagnostics.Any(d => d.Severity == Severity.Error &&
            (NormalizePath(d.Path) == normalized ||
             used.Any(u => NormalizePath(u.File.Source.Path) == NormalizePath(d.Path) && d.Span.Start >= u.Definition.Span.Start && d.Span.Start <= u.Definition.Span.End)));
    }
}
