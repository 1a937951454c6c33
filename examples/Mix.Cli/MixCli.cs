using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Globalization;
using System.IO;
using System.Linq;
using Mix.Dsl;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;
using Mix.Training.Summary;

namespace Mix.Cli;

/// <summary>The <c>mix</c> command line: <c>check</c>, <c>summary</c>, <c>emit</c>.</summary>
public static class MixCli
{
    /// <summary>Runs <c>mix</c> with <paramref name="args"/>, writing to <paramref name="output"/> and
    /// <paramref name="error"/> (default: the console). Returns the exit code: 0 success, 1 errors in the .mix
    /// files, 2 a usage or file problem.</summary>
    public static int Run(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        var root = new RootCommand("mix: check .mix files, print a model's layers, shapes, parameters and FLOPs, and print the C# the Mix generator emits.");

        Option<string?> ProjectOption() => new("--project", "-p")
        {
            Description = "A C# project (file or folder) whose [Mixer] classes the .mix files may use; `check` with no files checks the project's .mix files",
        };
        Option<string[]> AssemblyOption() => new("--assembly", "-a")
        {
            Description = "A built assembly whose [Mixer] classes the .mix files may use (repeatable)", AllowMultipleArgumentsPerToken = true,
        };

        var checkFiles = new Argument<string[]>("files") { Description = "The .mix files to check (their imports are read too); default with --project: the project's", Arity = ArgumentArity.ZeroOrMore };
        var checkProject = ProjectOption();
        var checkAssemblies = AssemblyOption();
        var check = new Command("check", "Parse and check .mix files; print diagnostics as file(line,col): error MIXnnnn: message. Exit code 1 on errors.")
        {
            checkFiles, checkProject, checkAssemblies,
        };
        check.SetAction(p => Check(p.GetValue(checkFiles) ?? Array.Empty<string>(), p.GetValue(checkProject), p.GetValue(checkAssemblies) ?? Array.Empty<string>(), output, error));

        var summaryFile = new Argument<string>("file") { Description = "The .mix file" };
        var summaryModel = new Argument<string?>("model") { Description = "The model (or block) to summarize; default: every model in the file", Arity = ArgumentArity.ZeroOrOne };
        var sizes = new Option<string[]>("--size", "-s")
        {
            Description = "A value for a shape symbol, e.g. -s H=224 -s W=224 (the batch B is 1 for FLOPs); with all sizes known, FLOPs are numbers",
            AllowMultipleArgumentsPerToken = true,
        };
        var depth = new Option<int>("--depth", "-d") { Description = "How many levels of layers to list", DefaultValueFactory = _ => 1 };
        var kvCache = new Option<string?>("--kv-cache")
        {
            Description = "Also show the decoding cache with the KV layers stored as fp16, kivi4, kivi2 or vidkv (float32 is always shown)",
        };
        var kvGroup = new Option<int>("--kv-group") { Description = "Group size G of a quantized KV cache", DefaultValueFactory = _ => 32 };
        var kvResidual = new Option<int>("--kv-residual") { Description = "Recent tokens R a quantized KV cache keeps in full precision", DefaultValueFactory = _ => 32 };
        var summaryProject = ProjectOption();
        summaryProject.Description = "A C# project (file or folder) whose [Mixer] classes the .mix file may use";
        var summaryAssemblies = AssemblyOption();
        var summary = new Command("summary", "Print a model's layer table from the .mix source alone: layer, kind, output shape (symbolic), parameters, FLOPs, and for causal models the decoding cache (bytes per token and fixed bytes per sequence, per layer and in total).")
        {
            summaryFile, summaryModel, sizes, depth, kvCache, kvGroup, kvResidual, summaryProject, summaryAssemblies,
        };
        summary.SetAction(p => Summary(p.GetValue(summaryFile)!, p.GetValue(summaryModel), p.GetValue(sizes) ?? Array.Empty<string>(), p.GetValue(depth),
            p.GetValue(kvCache), p.GetValue(kvGroup), p.GetValue(kvResidual), p.GetValue(summaryProject), p.GetValue(summaryAssemblies) ?? Array.Empty<string>(),
            output, error));

        var emitFile = new Argument<string>("file") { Description = "The .mix file" };
        var ns = new Option<string>("--namespace", "-n") { Description = "Namespace of the generated classes", DefaultValueFactory = _ => "Mix.Models" };
        var all = new Option<bool>("--all") { Description = "Also print the classes generated for imported files" };
        var emit = new Command("emit", "Print the C# the Mix source generator produces for a .mix file (TorchSharp module classes).") { emitFile, ns, all };
        emit.SetAction(p => Emit(p.GetValue(emitFile)!, p.GetValue(ns)!, p.GetValue(all), output, error));

        root.Subcommands.Add(check);
        root.Subcommands.Add(summary);
        root.Subcommands.Add(emit);
        var config = new InvocationConfiguration { Output = output, Error = error };
        return root.Parse(args).Invoke(config);
    }

    /// <summary>The [Mixer] classes of <paramref name="project"/> and <paramref name="assemblies"/>; null (after an error
    /// line) when one cannot be read.</summary>
    static List<ExternalMixer>? Mixers(string? project, string[] assemblies, TextWriter error)
    {
        var mixers = new List<ExternalMixer>();
        try
        {
            if (project is not null) mixers.AddRange(CSharpMixers.FromProject(project));
            foreach (var a in assemblies) mixers.AddRange(CSharpMixers.FromAssembly(a));
        }
        catch (Exception e) when (e is IOException or BadImageFormatException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: {e.Message}");
            return null;
        }
        return mixers;
    }

    /// <summary>The .mix files below a project's folder (outside bin and obj), relative to the current directory.</summary>
    static string[] ProjectMixFiles(string project)
    {
        var full = Path.GetFullPath(project);
        var dir = File.Exists(full) ? Path.GetDirectoryName(full)! : full;
        if (!Directory.Exists(dir)) return Array.Empty<string>();
        return Directory.EnumerateFiles(dir, "*.mix", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(dir, f).Split('/', '\\').Any(p => p is "bin" or "obj"))
            .OrderBy(f => f, StringComparer.Ordinal).ToArray();
    }

    static int Check(string[] files, string? project, string[] assemblies, TextWriter output, TextWriter error)
    {
        if (files.Length == 0)
        {
            if (project is null)
            {
                error.WriteLine("error: mix check needs .mix files, or --project to check a project's .mix files");
                return 2;
            }
            files = ProjectMixFiles(project);
            if (files.Length == 0 && (File.Exists(project) || Directory.Exists(project)))
            {
                error.WriteLine($"error: {DisplayPath(project)} holds no .mix files");
                return 2;
            }
        }
        if (Mixers(project, assemblies, error) is not { } mixers) return 2;
        if (!TryLoad(files, error, out var sources)) return 2;
        var compilation = MixCompilation.Create(sources, mixers);
        foreach (var d in compilation.Diagnostics) output.WriteLine(d.ToString());
        int errors = compilation.Diagnostics.Count(d => d.Severity == Severity.Error);
        int warnings = compilation.Diagnostics.Count(d => d.Severity == Severity.Warning);
        int definitions = compilation.Definitions.Count(d => files.Any(f => SamePath(d.Path, DisplayPath(f))));
        output.WriteLine($"{files.Length} file{(files.Length == 1 ? "" : "s")} checked ({sources.Count - files.Length} imported), " +
                         $"{definitions} definitions: {errors} error{(errors == 1 ? "" : "s")}, {warnings} warning{(warnings == 1 ? "" : "s")}.");
        return errors > 0 ? 1 : 0;
    }

    static int Summary(string file, string? model, string[] sizeArgs, int depth, string? kvCache, int kvGroup, int kvResidual,
        string? project, string[] assemblies, TextWriter output, TextWriter error)
    {
        KvCacheFormat? format = null;
        if (kvCache is not null)
        {
            try { format = KvCacheFormat.Parse(kvCache, kvGroup, kvResidual); }
            catch (Exception e) when (e is FormatException or ArgumentOutOfRangeException)
            {
                error.WriteLine($"error: --kv-cache: {e.Message}");
                return 2;
            }
        }
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var s in sizeArgs.SelectMany(a => a.Split(',', StringSplitOptions.RemoveEmptyEntries)))
        {
            var kv = s.Split('=');
            if (kv.Length != 2 || !long.TryParse(kv[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            {
                error.WriteLine($"error: --size expects NAME=VALUE (e.g. H=224), not '{s}'");
                return 2;
            }
            sizes[kv[0].Trim()] = v;
        }
        if (Mixers(project, assemblies, error) is not { } mixers) return 2;
        if (!TryLoad(new[] { file }, error, out var sources)) return 2;
        var compilation = MixCompilation.Create(sources, mixers);
        foreach (var d in compilation.Diagnostics) error.WriteLine(d.ToString());
        if (compilation.HasErrors) return 1;
        var path = DisplayPath(file);
        var defs = model is null
            ? compilation.Definitions.Where(d => d.Kind == DefinitionKind.Model && SamePath(d.Path, path)).ToList()
            : compilation.Definitions.Where(d => d.Name == model).Take(1).ToList();
        if (defs.Count == 0)
        {
            var models = compilation.Definitions.Where(d => SamePath(d.Path, path)).Select(d => d.Name);
            error.WriteLine(model is null
                ? $"error: {path} defines no model"
                : $"error: no definition '{model}' in {path} or its imports; {path} defines: {string.Join(", ", models)}");
            return 2;
        }
        // A size the models do not have is a typo (it would silently leave their sizes symbolic).
        var known = defs.SelectMany(ModelSummary.SizeNames).ToHashSet(StringComparer.Ordinal);
        var unknown = sizes.Keys.Where(k => !known.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            error.WriteLine($"error: --size: {string.Join(", ", unknown.Select(u => $"'{u}'"))} {(unknown.Count == 1 ? "is not a size" : "are not sizes")} of " +
                            $"{string.Join(", ", defs.Select(d => d.Name))}; {(known.Count == 0 ? "it has no symbolic sizes" : "its sizes are " + string.Join(", ", known.OrderBy(k => k, StringComparer.Ordinal)))}");
            return 2;
        }
        foreach (var d in defs)
            foreach (var warning in ModelSummary.SizeWarnings(d, sizes))
                error.WriteLine($"warning: {d.Name}: {warning}");
        for (int i = 0; i < defs.Count; i++)
        {
            if (i > 0) output.WriteLine();
            output.Write(ModelSummary.Create(defs[i], sizes, Math.Max(1, depth), format).ToText());
        }
        return 0;
    }

    static int Emit(string file, string ns, bool all, TextWriter output, TextWriter error)
    {
        if (!TryLoad(new[] { file }, error, out var sources)) return 2;
        var compilation = MixCompilation.Create(sources, Array.Empty<ExternalMixer>());
        foreach (var d in compilation.Diagnostics) error.WriteLine(d.ToString());
        if (compilation.HasErrors) return 1;
        var result = GeneratorRunner.Run(sources.Select(t => t.Source), ns, Path.GetDirectoryName(Path.GetFullPath(file))!);
        // The generator reports the front end's diagnostics too (MIX0xxx, printed above): only its own are new here.
        foreach (var d in result.Diagnostics.Where(d => !System.Text.RegularExpressions.Regex.IsMatch(d, @" MIX0\d{3}: "))) error.WriteLine(d);
        var wanted = Path.GetFileName(file);
        var printed = 0;
        foreach (var (hint, text) in result.Sources)
        {
            bool own = hint.EndsWith(wanted + ".g.cs", StringComparison.OrdinalIgnoreCase);
            if (!all && !own) continue;
            if (all) output.WriteLine($"// ===== {hint} =====");
            output.Write(text);
            printed++;
        }
        if (printed == 0)
        {
            error.WriteLine($"error: the generator produced nothing for {DisplayPath(file)} (does it define anything?)");
            return 1;
        }
        return result.Diagnostics.Any(d => d.Contains(": error ", StringComparison.Ordinal)) ? 1 : 0;
    }

    /// <summary>Reads <paramref name="files"/> and, transitively, the files they import (relative to each file).</summary>
    static bool TryLoad(IEnumerable<string> files, TextWriter error, out List<MixSyntaxTree> sources)
    {
        sources = new List<MixSyntaxTree>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var queue = new Queue<(string Path, bool Explicit)>(files.Select(f => (f, true)));
        while (queue.Count > 0)
        {
            var (file, isExplicit) = queue.Dequeue();
            var display = DisplayPath(file);
            if (!seen.Add(display)) continue;
            if (!File.Exists(file))
            {
                if (isExplicit)
                {
                    error.WriteLine($"error: file not found: {display}");
                    return false;
                }
                continue; // the checker reports the missing import at its span
            }
            // Parsed once: the compilation checks these trees.
            var tree = MixSyntaxTree.Parse(new SourceText(display, File.ReadAllText(file)));
            sources.Add(tree);
            var dir = Path.GetDirectoryName(file) ?? "";
            foreach (var import in tree.File.Imports)
                queue.Enqueue((Path.Combine(dir, import.Path), false));
        }
        return true;
    }

    /// <summary>Relative to the current directory when inside it, with forward slashes.</summary>
    static string DisplayPath(string file)
    {
        var full = Path.GetFullPath(file);
        var rel = Path.GetRelativePath(Directory.GetCurrentDirectory(), full);
        var p = rel.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(rel) ? full : rel;
        return MixCompilation.NormalizePath(p.Replace('\\', '/'));
    }

    static bool SamePath(string a, string b) => string.Equals(MixCompilation.NormalizePath(a), MixCompilation.NormalizePath(b), StringComparison.Ordinal);
}
