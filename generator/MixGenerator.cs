using System;
using System.Collections.Immutable;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;

namespace Mix.Generator;

/// <summary>
/// Generates a TorchSharp module class for every definition in the project's <c>.mix</c> files (AdditionalFiles):
/// all files are checked together (imports resolve within the set), then each file's spec is emitted on its own,
/// so an edit regenerates only the files whose spec changed.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class MixGenerator : IIncrementalGenerator
{
    /// <summary>Tracking names of the pipeline steps (for incremental tests).</summary>
    public static class Steps
    {
        /// <summary>Each .mix file's path and text.</summary>
        public const string Inputs = "MixInputs";
        /// <summary>MSBuild settings.</summary>
        public const string Settings = "MixSettings";
        /// <summary>Each file's syntax tree.</summary>
        public const string Parsed = "MixParsed";
        /// <summary>Each file with the files it imports.</summary>
        public const string Units = "MixCheckUnits";
        /// <summary>Each file checked and translated.</summary>
        public const string UnitSpecs = "MixUnitSpecs";
        /// <summary>All specs: hint names and skipping decided over the project.</summary>
        public const string Specs = "MixSpecs";
        /// <summary>One spec per file.</summary>
        public const string FileSpecs = "MixFileSpecs";
        /// <summary>[MixModel] classes.</summary>
        public const string Bindings = "MixModelBindings";
        /// <summary>[MixModel] classes with their resolved specs.</summary>
        public const string BoundModels = "MixBoundModels";
        /// <summary>[Mixer] classes (C# mixers usable from .mix).</summary>
        public const string Mixers = "MixMixers";
    }

    const string AttributeName = "Mix.MixModelAttribute";
    /// <summary>Metadata name of the <c>[Mixer]</c> attribute (generated into every project).</summary>
    public const string MixerAttributeName = "Mix.MixerAttribute";

    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        context.RegisterPostInitializationOutput(ctx => ctx.AddSource("Mix.Attributes.g.cs", SourceText.From(AttributesSource, Encoding.UTF8)));

        var inputs = context.AdditionalTextsProvider
            .Where(t => t.Path.EndsWith(".mix", StringComparison.OrdinalIgnoreCase))
            .Combine(context.AnalyzerConfigOptionsProvider)
            .Select((pair, ct) =>
            {
                var ns = pair.Right.GetOptions(pair.Left).TryGetValue("build_metadata.AdditionalFiles.MixNamespace", out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;
                return new MixInput(pair.Left.Path, pair.Left.GetText(ct)?.ToString() ?? "", ns);
            })
            .WithTrackingName(Steps.Inputs);

        var settings = context.AnalyzerConfigOptionsProvider
            .Select((o, _) =>
            {
                string Get(string key) => o.GlobalOptions.TryGetValue(key, out var v) ? v.Trim() : "";
                var ns = Get("build_property.MixNamespace");
                if (ns.Length == 0) ns = Get("build_property.RootNamespace");
                if (ns.Length == 0) ns = "Mix.Models";
                var fused = !string.Equals(Get("build_property.MixFused"), "false", StringComparison.OrdinalIgnoreCase);
                var root = Get("build_property.MixRoot");
                return new GeneratorSettings(ns, root.Length > 0 ? root : Get("build_property.ProjectDir"), fused);
            })
            .WithTrackingName(Steps.Settings);

        var mixers = context.SyntaxProvider.ForAttributeWithMetadataName(MixerAttributeName,
                (node, _) => node is ClassDeclarationSyntax,
                (ctx, _) => MixerOf((INamedTypeSymbol)ctx.TargetSymbol, ctx.Attributes[0]))
            .Where(m => m is not null)
            .Select((m, _) => m!)
            .WithTrackingName(Steps.Mixers);

        // Each file is parsed when it changes, and checked (with its imports) when it or an import changes; the
        // last step only names and skips, so an edit re-checks one file, not the project.
        var parsed = inputs.Select((input, _) => SpecBuilder.Parse(input)).WithTrackingName(Steps.Parsed);
        var units = parsed.Combine(parsed.Collect())
            .Select((pair, _) => SpecBuilder.Unit(pair.Left, pair.Right))
            .WithTrackingName(Steps.Units);
        var unitSpecs = units.Combine(mixers.Collect())
            .Select((pair, _) => SpecBuilder.BuildUnit(pair.Left, pair.Right))
            .WithTrackingName(Steps.UnitSpecs);
        var specs = unitSpecs.Collect().Combine(settings)
            .Select((pair, _) => SpecBuilder.Finish(pair.Left, pair.Right))
            .WithTrackingName(Steps.Specs);

        var files = specs.SelectMany((all, _) => all).WithTrackingName(Steps.FileSpecs);

        context.RegisterSourceOutput(files, (spc, file) =>
        {
            foreach (var d in file.Diagnostics)
            {
                spc.ReportDiagnostic(Diagnostic.Create(Descriptors.Unsupported, Location.Create(file.MixPath, new TextSpan(d.SpanStart, d.SpanLength),
                    new LinePositionSpan(new LinePosition(d.StartLine, d.StartColumn), new LinePosition(d.EndLine, d.EndColumn))), d.Message));
            }
            if (!file.Skipped && file.Classes.Count > 0) spc.AddSource(file.HintName, SourceText.From(Emitter.Emit(file), Encoding.UTF8));
        });

        context.RegisterSourceOutput(settings, (spc, s) =>
        {
            if (s.FusedDefault) return;
            spc.AddSource("Mix.Settings.g.cs", SourceText.From(
                "// <auto-generated/>\n#nullable enable\nnamespace Mix.Generated\n{\n    internal static class MixSettings\n    {\n" +
                "        /// <summary>MixFused=false: the fused kernels start off.</summary>\n" +
                "        [global::System.Runtime.CompilerServices.ModuleInitializer]\n" +
                "        internal static void Initialize() => global::Mix.Runtime.Builtins.MixDispatch.FusedEnabled = false;\n    }\n}\n", Encoding.UTF8));
        });

        var bindings = context.SyntaxProvider.ForAttributeWithMetadataName(AttributeName,
                (node, _) => node is ClassDeclarationSyntax,
                (ctx, _) => Bind(ctx))
            .WithTrackingName(Steps.Bindings);

        var bound = bindings.Combine(specs.Combine(settings))
            .Select((pair, _) => Resolve(pair.Left, pair.Right.Left, pair.Right.Right))
            .WithTrackingName(Steps.BoundModels);

        context.RegisterSourceOutput(bound, (spc, item) =>
        {
            var (binding, cls, problem, modelsNamespace) = item;
            if (problem is not null)
            {
                var location = Location.Create(binding.FilePath, new TextSpan(binding.SpanStart, binding.SpanLength),
                    new LinePositionSpan(new LinePosition(binding.StartLine, binding.StartColumn), new LinePosition(binding.EndLine, binding.EndColumn)));
                spc.ReportDiagnostic(Diagnostic.Create(problem.Value.Descriptor, location, problem.Value.Message));
                return;
            }
            if (cls is null) return;
            var file = new FileSpec(binding.Namespace + "." + binding.ClassName + ".MixModel.g.cs", binding.MixPath, binding.Namespace, false,
                new[] { cls }.ToEquatableArray(), EquatableArray<GenDiagnostic>.Empty);
            spc.AddSource(file.HintName, SourceText.From(Emitter.Emit(file, binding.Accessibility, modelsNamespace), Encoding.UTF8));
        });
    }

    /// <summary>The <c>[Mixer]</c> declaration of a class, or null when its arguments are not constant strings.</summary>
    public static MixerBinding? MixerOf(INamedTypeSymbol type, AttributeData attr)
    {
        var args = attr.ConstructorArguments;
        if (args.Length != 3 || args.Any(a => a.Value is not string)) return null;
        var typeName = type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
        return new MixerBinding((string)args[0].Value!, (string)args[1].Value!, (string)args[2].Value!, typeName);
    }

    static ModelBinding Bind(GeneratorAttributeSyntaxContext ctx)
    {
        var symbol = (INamedTypeSymbol)ctx.TargetSymbol;
        var attr = ctx.Attributes[0];
        var syntax = attr.ApplicationSyntaxReference?.GetSyntax() ?? ctx.TargetNode;
        var span = syntax.GetLocation().GetLineSpan();
        var args = attr.ConstructorArguments;
        var path = args.Length > 0 ? args[0].Value as string ?? "" : "";
        var name = args.Length > 1 ? args[1].Value as string ?? "" : "";
        string? problem = null;
        var decl = (ClassDeclarationSyntax)ctx.TargetNode;
        if (!decl.Modifiers.Any(m => m.Text == "partial")) problem = "partial";
        else if (symbol.ContainingType is not null || symbol.IsGenericType) problem = "nested";
        else if (symbol.BaseType is { SpecialType: not SpecialType.System_Object }) problem = "base";
        var ns = symbol.ContainingNamespace.IsGlobalNamespace ? "" : symbol.ContainingNamespace.ToDisplayString();
        var access = symbol.DeclaredAccessibility == Accessibility.Public ? "public" : "internal";
        return new ModelBinding(symbol.Name, ns, access, path, name, problem, span.Path, syntax.Span.Start, syntax.Span.Length,
            span.StartLinePosition.Line, span.StartLinePosition.Character, span.EndLinePosition.Line, span.EndLinePosition.Character);
    }

    static (ModelBinding, ClassSpec?, (DiagnosticDescriptor Descriptor, string Message)?, string) Resolve(ModelBinding b, EquatableArray<FileSpec> specs, GeneratorSettings settings)
    {
        switch (b.Problem)
        {
            case "partial": return (b, null, (Descriptors.NotPartial, $"class {b.ClassName} must be partial to receive the .mix model '{b.ModelName}'"), settings.Namespace);
            case "nested": return (b, null, (Descriptors.NotPartial, $"class {b.ClassName} must be a top-level, non-generic class to receive a .mix model"), settings.Namespace);
            case "base": return (b, null, (Descriptors.NotPartial, $"class {b.ClassName} must not declare a base class: the generated part derives it from TorchSharp's Module"), settings.Namespace);
        }
        var want = SpecBuilder.FrontEndPath(b.MixPath).TrimStart('/');
        var file = specs.FirstOrDefault(f => SpecBuilder.RelativePath(f.MixPath, settings.ProjectDir).Equals(want, StringComparison.OrdinalIgnoreCase))
                   ?? specs.FirstOrDefault(f => SpecBuilder.FrontEndPath(f.MixPath).EndsWith("/" + want, StringComparison.OrdinalIgnoreCase));
        if (file is null)
        {
            var known = string.Join(", ", specs.Select(f => SpecBuilder.RelativePath(f.MixPath, settings.ProjectDir)));
            return (b, null, (Descriptors.ModelFileNotFound, $"'{b.MixPath}' is not among the project's .mix files" + (known.Length > 0 ? $" ({known})" : "")), settings.Namespace);
        }
        if (file.Skipped) return (b, null, null, settings.Namespace); // the analyzer reports the file's errors
        var cls = file.Classes.FirstOrDefault(c => c.MixName == b.ModelName);
        if (cls is null)
        {
            var models = string.Join(", ", file.Classes.Where(c => c.Kind == "model").Select(c => c.MixName));
            return (b, null, (Descriptors.ModelNotFound, $"'{b.MixPath}' has no model '{b.ModelName}'" + (models.Length > 0 ? $"; its models are {models}" : "")), settings.Namespace);
        }
        return (b, cls with { Name = b.ClassName }, null, settings.Namespace);
    }

    const string AttributesSource = @"// <auto-generated/>
#nullable enable
namespace Mix
{
    /// <summary>Makes this partial class the TorchSharp module of a model defined in a .mix file.</summary>
    [global::System.AttributeUsage(global::System.AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    internal sealed class MixModelAttribute : global::System.Attribute
    {
        /// <summary>Binds the class to <paramref name=""model""/> in <paramref name=""path""/> (relative to the project).</summary>
        /// <param name=""path"">The .mix file, e.g. <c>models/poolformer.mix</c>.</param>
        /// <param name=""model"">The model's name in that file, e.g. <c>poolformer_s12</c>.</param>
        public MixModelAttribute(string path, string model)
        {
            Path = path;
            Model = model;
        }

        /// <summary>The .mix file.</summary>
        public string Path { get; }
        /// <summary>The model's name.</summary>
        public string Model { get; }
    }

    /// <summary>
    /// Makes this C# module a token mixer of .mix: <c>[Mixer(""gated_tokens"", ""expansion: int = 2"", ""(x: [B, N, dim]) -> [B, N, dim]"")]</c>.
    /// The class derives from <c>nn.Module&lt;Tensor, Tensor&gt;</c> and has a constructor <c>(long dim, ...)</c> whose
    /// other parameters are the .mix parameters in camelCase (<c>expansion</c>); generated code calls
    /// <c>new T(dim, expansion: 4)</c>.
    /// </summary>
    [global::System.AttributeUsage(global::System.AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    internal sealed class MixerAttribute : global::System.Attribute
    {
        /// <summary>Declares the mixer.</summary>
        /// <param name=""name"">Its .mix name.</param>
        /// <param name=""parameters"">Its parameters in .mix syntax, without <c>dim</c> (implicit for every mixer), e.g. <c>expansion: int = 2</c>; empty for none.</param>
        /// <param name=""signature"">Its shape contract in .mix syntax, e.g. <c>(x: [B, N, dim]) -> [B, N, dim]</c>.</param>
        public MixerAttribute(string name, string parameters, string signature)
        {
            Name = name;
            Parameters = parameters;
            Signature = signature;
        }

        /// <summary>The .mix name.</summary>
        public string Name { get; }
        /// <summary>The parameters (.mix syntax).</summary>
        public string Parameters { get; }
        /// <summary>The shape contract (.mix syntax).</summary>
        public string Signature { get; }
    }
}
";
}
