using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Mix.Dsl;

namespace Mix.Cli;

/// <summary>
/// The <c>[Mixer]</c> C# classes a project declares, as the checker's <see cref="ExternalMixer"/>s, so that <c>mix</c>
/// checks .mix files that use them as the build does. Read from a project's C# sources (no build needed: the files are
/// parsed and bound just enough to read the attribute's constant arguments) or from a built assembly's metadata.
/// </summary>
public static class CSharpMixers
{
    const string AttributeName = "Mix.MixerAttribute";

    // The generator emits the attribute into every project; a project's sources alone do not hold it.
    const string AttributeDeclaration =
        "namespace Mix { [System.AttributeUsage(System.AttributeTargets.Class)] internal sealed class MixerAttribute : System.Attribute " +
        "{ public MixerAttribute(string name, string parameters, string signature) { } } }";

    /// <summary>The mixers of the project <paramref name="path"/> (a project file or its folder): every <c>.cs</c> file
    /// below the folder, outside <c>bin</c> and <c>obj</c>.</summary>
    /// <exception cref="FileNotFoundException">Neither a file nor a folder.</exception>
    public static IReadOnlyList<ExternalMixer> FromProject(string path)
    {
        var full = Path.GetFullPath(path);
        var dir = File.Exists(full) ? Path.GetDirectoryName(full)! : Directory.Exists(full) ? full
            : throw new FileNotFoundException($"project not found: {path}");
        var trees = Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories)
            .Where(f => !InBuildOutput(Path.GetRelativePath(dir, f)))
            .OrderBy(f => f, StringComparer.Ordinal)
            .Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), path: f))
            .Append(CSharpSyntaxTree.ParseText(AttributeDeclaration))
            .ToList();
        var compilation = CSharpCompilation.Create("MixProject", trees, CoreLibrary(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        var found = new List<ExternalMixer>();
        foreach (var tree in trees)
        {
            var model = compilation.GetSemanticModel(tree);
            foreach (var declaration in tree.GetRoot().DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.ClassDeclarationSyntax>())
                if (model.GetDeclaredSymbol(declaration) is INamedTypeSymbol type) Add(type, found);
        }
        return found;
    }

    /// <summary>The mixers of a built assembly (the <c>[Mixer]</c> attribute stays in its metadata).</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="BadImageFormatException">Not a .NET assembly.</exception>
    public static IReadOnlyList<ExternalMixer> FromAssembly(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new FileNotFoundException($"assembly not found: {path}");
        var reference = MetadataReference.CreateFromFile(full);
        var compilation = CSharpCompilation.Create("MixInspect", Array.Empty<SyntaxTree>(), CoreLibrary().Append(reference),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, metadataImportOptions: MetadataImportOptions.All));
        if (compilation.GetAssemblyOrModuleSymbol(reference) is not IAssemblySymbol assembly)
            throw new BadImageFormatException($"not a .NET assembly: {path}");
        var found = new List<ExternalMixer>();
        var stack = new Stack<INamespaceOrTypeSymbol>();
        stack.Push(assembly.GlobalNamespace);
        while (stack.Count > 0)
        {
            foreach (var member in stack.Pop().GetMembers())
            {
                if (member is INamespaceSymbol ns) stack.Push(ns);
                else if (member is INamedTypeSymbol type) { Add(type, found); stack.Push(type); }
            }
        }
        return found;
    }

    static void Add(INamedTypeSymbol type, List<ExternalMixer> found)
    {
        foreach (var attribute in type.GetAttributes())
        {
            if (attribute.AttributeClass?.ToDisplayString() != AttributeName || attribute.ConstructorArguments.Length != 3) continue;
            var values = attribute.ConstructorArguments.Select(a => a.Value as string).ToArray();
            // A malformed attribute is the build's error (MIX9110); the checker then simply does not know the name.
            if (values.Any(v => v is null)) continue;
            found.Add(new ExternalMixer(values[0]!, values[1]!, values[2]!, type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat)));
        }
    }

    static bool InBuildOutput(string relative) =>
        relative.Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar).Any(p => p is "bin" or "obj");

    static IEnumerable<MetadataReference> CoreLibrary() => new[] { MetadataReference.CreateFromFile(typeof(object).Assembly.Location) };
}
